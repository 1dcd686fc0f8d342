"""uint8 images → float tensors: the one conversion every package uses."""

from __future__ import annotations

import numpy as np
import torch


def image_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 H×W×C → float C×H×W, or N×H×W×C → N×C×H×W, in [0, 1]. The result is a permuted view of the
    (contiguous) array's data, channels-last in memory, as every caller had it."""
    a = np.ascontiguousarray(images)
    if not a.flags.writeable:  # a read-only cache or memory map: torch wants memory it may write
        a = a.copy()
    t = torch.from_numpy(a)
    if t.dim() == 3:
        t = t.permute(2, 0, 1)
    elif t.dim() == 4:
        t = t.permute(0, 3, 1, 2)
    else:
        raise ValueError(f"expected H×W×C or N×H×W×C images, got shape {tuple(images.shape)}")
    return t.float() / 255
