"""Checkpoints: safe formats, atomic folders, exact resume of weights, optimizer, scheduler and RNGs."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from l2l.engine import checkpoint as ck


def _setup(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=20, power=0.9)
    return model, opt, sched


def _step(model, opt, sched):
    # randomness from every source a trainer might use
    x = torch.randn(8, 4) + float(np.random.rand()) + random.random()
    loss = model(x).pow(2).mean()  # dropout draws from torch's RNG too
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()


def test_resume_continues_exactly(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    model, opt, sched = _setup()
    for _ in range(5):
        _step(model, opt, sched)
    path = ck.save(tmp_path, 5, model, opt, sched, extra={"epoch": 1, "order": torch.arange(6)}, meta={"oIoU": 0.5})
    for _ in range(5):
        _step(model, opt, sched)
    reference = {k: v.clone() for k, v in model.state_dict().items()}

    # a new process would start from scratch: other weights, other RNG states
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    model2, opt2, sched2 = _setup(seed=7)
    info = ck.load(path, model2, opt2, sched2)
    assert info["step"] == 5 and info["extra"]["epoch"] == 1 and info["meta"]["oIoU"] == 0.5
    assert torch.equal(info["extra"]["order"], torch.arange(6))
    for _ in range(5):
        _step(model2, opt2, sched2)
    for k, v in model2.state_dict().items():
        assert torch.equal(v, reference[k]), k
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_files_are_safe_formats(tmp_path):
    model, opt, sched = _setup()
    path = ck.save(tmp_path, 1, model, opt, sched)
    assert (path / "model.safetensors").exists()
    torch.load(path / "state.pt", weights_only=True)  # plain tensors and containers only


def test_atomic_listing_and_pruning(tmp_path):
    model, _, _ = _setup()
    paths = [ck.save(tmp_path, s, model) for s in (1, 2, 3, 4)]
    (tmp_path / ".tmp_step_000000005_1").mkdir()  # a crashed write: never listed
    assert ck.list_checkpoints(tmp_path) == paths and ck.latest(tmp_path) == paths[-1]
    gone = ck.prune(tmp_path, keep_last=2, protect=(paths[0],))
    assert gone == [paths[1]] and ck.list_checkpoints(tmp_path) == [paths[0], paths[2], paths[3]]
    assert ck.latest(tmp_path / "none") is None


def test_incomplete_checkpoint_is_refused(tmp_path):
    model, opt, _ = _setup()
    path = ck.save(tmp_path, 1, model)
    with pytest.raises(ValueError, match="no optimizer"):
        ck.load(path, model, opt)
    (path / "state.pt").unlink()
    with pytest.raises(FileNotFoundError, match="state.pt is missing"):
        ck.load(path, model)
