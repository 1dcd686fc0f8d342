"""Which device a command runs on."""

from __future__ import annotations

import os

import torch

from ..errors import UsageError


def best_device(device: str = "auto") -> str:
    """``auto`` → the GPU when one is visible (``cuda:LOCAL_RANK`` under torchrun, so each rank
    takes its own; plain ``cuda`` otherwise), else ``cpu``; an explicit device is checked."""
    if device == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        rank = os.environ.get("LOCAL_RANK")
        return f"cuda:{rank}" if rank is not None else "cuda"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"device {device!r} is not a device: give auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} requested but no GPU is available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UsageError(f"device {device!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"device {device!r} is not supported: give auto, cpu, cuda or cuda:N")
    return device
