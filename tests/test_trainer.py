"""The trainer: exact resume after an interruption, 2-process DDP = 1 process, run folder contents."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from l2l.config import load_config
from l2l.engine.trainer import TrainConfig, Trainer

TINY = [
    "model.visual.name=conv",
    "model.visual.path=null",
    "model.visual.conv_channels=[8,16,16,32]",
    "model.text.name=tiny",
    "model.text.freeze=false",
    "model.text.tiny_dim=16",
    "model.text.tiny_layers=1",
    "model.decoder_dim=16",
    "model.sesm.heads=2",
    "data.size=64",
    "data.workers=0",
    "data.eval_max_samples=16",
    "optim.lr=1e-3",
    "log_every=1",
    "device=cpu",  # bit-exactness is asserted: pinned to the CPU also on GPU machines
]


def _cfg(root, *extra):
    return load_config(TrainConfig, None, [f"data.root={root}", *TINY, *extra])


def _weights(run: Path, sub="last"):
    return load_file(str(run / sub / "model.safetensors"))


def test_resume_is_bit_exact(synthref_dir, tmp_path):
    common = ["epochs=2", "batch_size=4", "ckpt_every=1000", "data.scale_range=[0.9,1.1]"]
    ref = Trainer(_cfg(synthref_dir, *common, "max_steps=7"), tmp_path / "ref", show_progress=False)
    ref.fit()
    # interrupted after 3 steps, then resumed to the same step
    Trainer(_cfg(synthref_dir, *common, "max_steps=3"), tmp_path / "cut", show_progress=False).fit()
    assert json.loads((tmp_path / "cut" / "env.json").read_text())["resumed_from"] is None
    # F5: a killed run had logged step 4 after its checkpoint (step 3) and torn the next line
    with open(tmp_path / "cut" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 4, "loss": 123.0}) + "\n" + '{"step": 5, "lo')
    Trainer(_cfg(synthref_dir, *common, "max_steps=7"), tmp_path / "cut", show_progress=False).fit()
    logged = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in logged if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6, 7] and 123.0 not in [r["loss"] for r in logged if "loss" in r]
    assert "step_000000003" in json.loads((tmp_path / "cut" / "env.json").read_text())["resumed_from"]
    a, b = _weights(tmp_path / "ref"), _weights(tmp_path / "cut")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # and the weights did move
    init = Trainer(_cfg(synthref_dir, *common, "max_steps=1"), tmp_path / "one", show_progress=False)
    init.fit()
    assert not all(torch.equal(a[k], _weights(tmp_path / "one")[k]) for k in a)


def test_full_run_writes_everything(synthref_dir, tmp_path):
    run = tmp_path / "run"
    out = Trainer(_cfg(synthref_dir, "epochs=1", "batch_size=8"), run, show_progress=False).fit()
    for f in (
        "config.yaml",
        "env.json",
        "label_split.json",
        "metrics.jsonl",
        "best/model.safetensors",
        "last/config.json",
        "eval_val.json",
    ):
        assert (run / f).exists(), f
    assert list((run / "tb").iterdir())
    res = json.loads((run / "eval_val.json").read_text())
    assert res["resolution"] == "original" and res["samples"] == 16 and 0 <= res["oIoU"] <= 1
    assert out["results"]["oIoU"] == res["oIoU"]
    env = json.loads((run / "env.json").read_text())
    assert env["global_batch"] == env["batch_per_process"] * env["world_size"] == 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_train(out, overrides, timeout=600):
    """``l2l train`` on two gloo processes (torch.distributed.run) into ``out``; returns the finished process."""
    env = {**os.environ, "L2L_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port",
        str(_free_port()),
        "-m",
        "l2l.cli",
        "train",
        "--out",
        str(out),
        *overrides,
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _relative_gap(a: dict, b: dict, start: dict) -> float:
    """‖a − b‖ over all weights, in units of how far ``a`` moved from ``start`` (‖a − start‖)."""
    gap = sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in a) ** 0.5
    moved = sum(float((a[k].double() - start[k].double()).pow(2).sum()) for k in a) ** 0.5
    assert moved > 0, "the weights did not move"
    return gap / moved


@pytest.mark.slow
def test_two_process_gloo_matches_one_process(synthref_dir, tmp_path):
    """Two processes with half the batch each train the same weights as one process with the whole batch.

    Compared under plain SGD, which is linear in the gradient: the float-order noise of a different
    reduction (2 × 4 samples summed by all-reduce vs 8 in one pass, other kernels on another CPU) stays
    a noise of the same small relative size in the weights. AdamW divides each gradient by its own
    magnitude, so on near-zero gradients that noise becomes a full-size step of either sign (an Intel
    machine showed 93 of 160 tensors off by ~1 lr after 4 steps) — that compares the CPU, not DDP.
    The control (one process, half the batch: other data per step) must be far off by the same measure."""
    common = [
        "total_steps=4",
        "ckpt_every=1000",
        "model.sesm.prior_dropout=0.0",
        "data.eval_max_samples=15",
        "optim.optimizer=sgd",
        "optim.lr=0.5",
        "optim.weight_decay=0",
    ]
    one = tmp_path / "one"
    Trainer(_cfg(synthref_dir, *common, "batch_size=8"), one, show_progress=False).fit()
    two = tmp_path / "two"
    r = torchrun_train(two, [f"data.root={synthref_dir}", *TINY, *common, "batch_size=4"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((two / "env.json").read_text())["world_size"] == 2
    init = Trainer(_cfg(synthref_dir, *common, "batch_size=8"), tmp_path / "init", show_progress=False)
    init.prepare(resume=False)  # the same seeded initial weights, before any step
    start = {k: v.detach().clone() for k, v in init.model.state_dict().items() if v.is_floating_point()}
    a, b = _weights(one), _weights(two)
    assert a.keys() == b.keys() and set(start) <= set(a)
    start = {k: start[k] for k in a if k in start}
    a, b = ({k: w[k] for k in start} for w in (a, b))
    gap = _relative_gap(a, b, start)
    print(f"2 processes vs 1: weight gap {gap:.3g} of the update")  # docs/training.md quotes it (pytest -s)
    assert gap < 1e-3
    # evaluation sharded over 2 ranks (8 + 7 samples) counts every sample once
    ea, eb = (json.loads((r / "eval_val.json").read_text()) for r in (one, two))
    assert ea["samples"] == eb["samples"] == 15
    assert abs(ea["oIoU"] - eb["oIoU"]) < 1e-3
    # control: one process with the per-process batch (other data per step) does not match
    half = tmp_path / "half"
    Trainer(_cfg(synthref_dir, *common, "batch_size=4"), half, show_progress=False).fit()
    c = {k: v for k, v in _weights(half).items() if k in start}
    control = _relative_gap(a, c, start)
    print(f"control (half batch, one process): {control:.3g} of the update")
    assert control > 0.05


def test_unknown_optimizer_is_refused(synthref_dir, tmp_path):
    from l2l.errors import UsageError

    with pytest.raises(UsageError, match="optim.optimizer must be adamw or sgd, got 'adam'"):
        Trainer(_cfg(synthref_dir, "optim.optimizer=adam", "total_steps=1"), tmp_path / "r", show_progress=False)


def test_finished_run_without_evaluation_is_evaluated_on_resume(synthref_dir, tmp_path):
    run = tmp_path / "run"
    cfg = ["epochs=1", "batch_size=8", "total_steps=2"]
    Trainer(_cfg(synthref_dir, *cfg), run, show_progress=False).fit()
    (run / "eval_val.json").unlink()  # as if the process died between the last step and the evaluation
    out = Trainer(_cfg(synthref_dir, *cfg), run, show_progress=False).fit()
    assert out["state"]["step"] == 2 and (run / "eval_val.json").exists() and out["results"]["samples"] == 16


def test_semi_supervised_training_writes_nothing_into_the_dataset(synthref_dir, tmp_path, monkeypatch):
    """F13: the EDA pool cache went into DATA/cache/ by default, so training on a dataset mounted
    read-only crashed; it now goes to the user cache folder (L2L_CACHE here)."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synthref_dir, data)
    before = sorted(str(p.relative_to(data)) for p in data.rglob("*"))
    monkeypatch.setenv("L2L_CACHE", str(tmp_path / "cache"))
    cfg = _cfg(
        data,
        "method=fixmatch",
        "data.label_fraction=50%",
        "data.strong_text=true",
        "batch_size=2",
        "semi.unlabeled_batch_size=2",
        "max_steps=2",
        "epochs=1",
    )
    Trainer(cfg, tmp_path / "run", show_progress=False).fit()
    assert sorted(str(p.relative_to(data)) for p in data.rglob("*")) == before
    assert list((tmp_path / "cache" / "eda").glob("eda_pools_*.json"))


def test_encoder_learning_rates_are_scaled_by_group():
    """optim.visual_lr_scale and optim.text_lr_scale: each encoder's parameters in a group of its own,
    every trainable parameter in exactly one group, frozen ones in none."""
    from l2l.engine.trainer import param_groups

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.visual, self.text, self.head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)

    net = Net()
    net.head.bias.requires_grad_(False)
    groups = param_groups(net, 0.3, 0.05)
    by_scale = {g["lr_scale"]: {id(p) for p in g["params"]} for g in groups}
    assert by_scale == {
        0.3: {id(p) for p in net.visual.parameters()},
        0.05: {id(p) for p in net.text.parameters()},
        1.0: {id(net.head.weight)},
    }
    assert [len(g["params"]) for g in param_groups(net, 1.0, 1.0)] == [5]
    assert {g["lr_scale"] for g in param_groups(net, 1.0, 0.1)} == {0.1, 1.0}
    # the same helper serves the stand-ins' training: a part at None is frozen (in no group)
    from l2l.utils.optim import param_groups as scaled

    frozen = scaled(net, {"encoder": net.visual}, {"encoder": None})
    assert [g["lr_scale"] for g in frozen] == [1.0]
    assert {id(p) for p in frozen[0]["params"]} == {id(net.text.weight), id(net.text.bias), id(net.head.weight)}


OBJECTS_TINY = [
    "model.objects.enabled=true",
    "model.objects.path=null",
    "model.objects.grounder={image_size: 64, conv_channels: [8, 8, 8, 8], dim: 16, heads: 2, layers: 1, "
    "text_dim: 16, dense_dim: 8, roi: 2, max_objects: 4, det_thresh: 0.0}",
    "model.objects.choice_loss=1.0",
    "model.objects.match_iou=0.0",  # a random detector: every sentence names its best-overlapping box
    "model.objects.prefit_epochs=2",
    "model.objects.prefit_batch=16",
]


def test_object_choice_is_prefit_once_and_the_run_resumes_exactly(synthref_dir, tmp_path):
    """A fresh run pre-fits the choice (two epochs, logged in env.json) and then trains with the choice
    loss; a run cut after 2 steps and resumed does not pre-fit again and ends bit-identical."""
    common = [*OBJECTS_TINY, "batch_size=4", "ckpt_every=1000", "epochs=2"]
    ref = tmp_path / "ref"
    Trainer(_cfg(synthref_dir, *common, "max_steps=5"), ref, show_progress=False).fit()
    env = json.loads((ref / "env.json").read_text())
    assert len(env["prefit_losses"]) == 2 and all(x > 0 for x in env["prefit_losses"])
    logged = [json.loads(x) for x in (ref / "metrics.jsonl").read_text().splitlines()]
    assert any("loss_choice" in r for r in logged)
    Trainer(_cfg(synthref_dir, *common, "max_steps=2"), tmp_path / "cut", show_progress=False).fit()
    Trainer(_cfg(synthref_dir, *common, "max_steps=5"), tmp_path / "cut", show_progress=False).fit()
    assert "prefit_losses" not in json.loads((tmp_path / "cut" / "env.json").read_text())  # resumed: no pre-fit
    a, b = _weights(ref), _weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    none = tmp_path / "none"
    Trainer(
        _cfg(synthref_dir, *common, "model.objects.prefit_epochs=0", "max_steps=1"), none, show_progress=False
    ).fit()
    c = _weights(none, "last")
    one = tmp_path / "one"
    Trainer(_cfg(synthref_dir, *common, "max_steps=1"), one, show_progress=False).fit()
    d = _weights(one, "last")
    assert not torch.equal(c["objects.net.score.1.weight"], d["objects.net.score.1.weight"])  # the pre-fit moved it
