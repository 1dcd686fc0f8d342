"""Which device a command runs on."""

from __future__ import annotations

import torch

from ..errors import UsageError


def best_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; an explicit device is checked."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} requested but no GPU is available")
    return device
