"""Checkpoints that load safely and resume exactly.

A checkpoint is a folder ``step_000123/`` holding

* ``model.safetensors`` — the weights (safetensors: no code can hide in it); a part of the model
  whose every parameter is frozen (e.g. the frozen MiniLM text encoder, 90 MB) is left out and
  named in ``meta.json`` (``frozen``): it is rebuilt from its source when the model is built;
* ``state.pt`` — optimizer, scheduler, step, RNG states (torch, numpy, python; CUDA when
  present) and any extra training state, made only of tensors and plain containers, so
  it loads with ``torch.load(..., weights_only=True)``;
* ``meta.json`` — step, time, and free-form metadata (metrics, config hash).

It is written to a temporary folder and renamed into place, so a crash never leaves a
half-written checkpoint under a valid name. :func:`latest` finds the newest complete one;
:func:`prune` keeps the last K (plus any listed as protected, e.g. the best on val).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from ..errors import MissingFileError, UsageError
from ..utils.io import save_safetensors

_NAME = re.compile(r"^step_(\d{9})$")


def rng_state() -> dict[str, Any]:
    """Every RNG this process uses, as tensors and plain containers."""
    py = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": py[0], "state": list(py[1]), "gauss": py[2]},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def frozen_prefixes(model: torch.nn.Module) -> list[str]:
    """State-dict prefixes (``"text."``) of the model's direct children whose parameters are all frozen."""
    return [
        f"{name}."
        for name, child in model.named_children()
        if any(True for _ in child.parameters()) and not any(p.requires_grad for p in child.parameters())
    ]


def save(
    root: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    extra: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    files: Any | None = None,
) -> Path:
    """Write checkpoint ``root/step_{step:09d}`` atomically; returns its folder.

    ``files(folder)`` may add files (e.g. a guidance-bank snapshot) before the folder is renamed."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:09d}"
    tmp = root / f".tmp_step_{step:09d}_{time.time_ns()}"
    tmp.mkdir()
    try:
        frozen = frozen_prefixes(model)
        weights = {
            k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if not k.startswith(tuple(frozen))
        }
        save_safetensors(weights, str(tmp / "model.safetensors"))
        meta = {**(meta or {}), "frozen": frozen}
        state = {
            "step": int(step),
            "rng": rng_state(),
            "extra": extra or {},
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
        }
        torch.save(state, tmp / "state.pt")
        (tmp / "meta.json").write_text(
            json.dumps({"step": int(step), "time": time.time(), **(meta or {})}, indent=2, sort_keys=True, default=str)
        )
        if files is not None:
            files(tmp)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Restore a checkpoint folder into the given objects; returns ``{"step", "extra", "meta"}``."""
    path = Path(path)
    for f in ("model.safetensors", "state.pt", "meta.json"):
        if not (path / f).exists():
            raise MissingFileError(f"checkpoint {path} is incomplete: {f} is missing")
    meta = json.loads((path / "meta.json").read_text())
    frozen = tuple(meta.get("frozen", ()))
    missing, unexpected = model.load_state_dict(load_file(str(path / "model.safetensors")), strict=False)
    absent = [k for k in missing if not (frozen and k.startswith(frozen))]
    if absent or unexpected:
        raise UsageError(
            f"checkpoint {path} does not fit the model: missing {absent[:5]}, unexpected {unexpected[:5]}"
            + (f" (left out as frozen: {list(frozen)})" if frozen else "")
        )
    if frozen and set(frozen) != set(frozen_prefixes(model)):
        raise UsageError(
            f"checkpoint {path} left out {list(frozen)} as frozen, but in this model the frozen parts are "
            f"{frozen_prefixes(model)}: the run's config changed (model.text.freeze?)"
        )
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    if optimizer is not None:
        if state["optimizer"] is None:
            raise UsageError(f"checkpoint {path} holds no optimizer state")
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    if restore_rng:
        set_rng_state(state["rng"])
    return {"step": int(state["step"]), "extra": state["extra"], "meta": meta}


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    root = Path(root)
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name) and (p / "meta.json").exists())


def latest(root: str | Path) -> Path | None:
    ckpts = list_checkpoints(root)
    return ckpts[-1] if ckpts else None


def prune(root: str | Path, keep_last: int, protect: tuple[Path, ...] = ()) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints and the protected ones; returns the deleted."""
    ckpts = list_checkpoints(root)
    keep = set(ckpts[-keep_last:] if keep_last > 0 else []) | {Path(p) for p in protect}
    gone = [p for p in ckpts if p not in keep]
    for p in gone:
        shutil.rmtree(p)
    return gone
