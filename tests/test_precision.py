"""The amp switch (utils/precision.py): bf16 where the hardware has it, refused cleanly where it does
not, and a bf16 training step that agrees with the fp32 one."""

from __future__ import annotations

import pytest
import torch

from l2l.errors import UsageError
from l2l.utils import precision


def test_auto_and_off_are_fp32_on_the_cpu():
    assert precision.use_bf16("off", "cpu") is False
    assert precision.use_bf16("auto", "cpu") is False  # measured slower on the CPUs we have
    with pytest.raises(UsageError, match="amp must be one of"):
        precision.use_bf16("fp16", "cpu")


def test_bf16_is_refused_where_the_cpu_lacks_it(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    ok, what = precision.cpu_bf16()
    assert not ok and "neither AMX nor AVX-512 BF16" in what
    with pytest.raises(UsageError, match=r"amp=bf16 on the CPU: .*use amp=off"):
        precision.use_bf16("bf16", "cpu")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert precision.cpu_bf16() == (True, "AVX-512 BF16") and precision.use_bf16("bf16", "cpu")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert precision.cpu_bf16() == (True, "AMX")


def test_the_trainer_refuses_bf16_before_any_work(monkeypatch, synthref_dir, tmp_path):
    from l2l.config import load_config
    from l2l.engine.trainer import TrainConfig, Trainer
    from tests.test_trainer import TINY

    monkeypatch.setattr(precision, "cpu_bf16", lambda: (False, "this CPU has neither AMX nor AVX-512 BF16"))
    cfg = load_config(TrainConfig, None, [f"data.root={synthref_dir}", *TINY, "total_steps=1", "amp=bf16"])
    tr = Trainer(cfg, tmp_path / "run", show_progress=False)
    with pytest.raises(UsageError, match="amp=bf16"):
        tr.prepare(resume=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not precision.cpu_bf16()[0], reason="this CPU has no native bf16 (AMX / AVX-512 BF16)")
def test_a_bf16_step_agrees_with_fp32(synthref_dir, tmp_path):
    """One supervised step from the same weights on the same batch: the loss and the gradient of bf16
    autocast are those of fp32 within bf16's precision (8 bits of mantissa)."""
    from l2l.config import load_config
    from l2l.engine.trainer import TrainConfig, Trainer
    from tests.test_trainer import TINY

    runs = {}
    for amp in ("off", "bf16"):
        cfg = load_config(
            TrainConfig, None, [f"data.root={synthref_dir}", *TINY, "total_steps=4", "batch_size=4", f"amp={amp!r}"]
        )
        tr = Trainer(cfg, tmp_path / amp, show_progress=False)
        tr.prepare(resume=False)
        assert tr.bf16 is (amp == "bf16")
        tr.model.train()
        lab, unl = tr.stream[0]
        out, _ = tr.train_step(lab, unl)
        params = [p for p in tr.model.parameters() if p.grad is not None]
        grad = torch.cat([p.grad.flatten() for p in params])
        runs[amp] = (
            float(out.loss.detach()),
            grad,
            {p.dtype for p in tr.model.parameters()} | {p.grad.dtype for p in params},
        )
    (l32, d32, t32), (l16, d16, t16) = runs["off"], runs["bf16"]
    assert t32 == t16 == {torch.float32}  # fp32 master weights and gradients
    assert abs(l16 - l32) <= 0.02 * abs(l32) + 1e-3, (l16, l32)
    cos = torch.nn.functional.cosine_similarity(d16, d32, dim=0)
    assert cos > 0.99, float(cos)
