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
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} requested but no GPU is available")
    return device
