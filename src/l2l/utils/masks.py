"""Mask and box helpers shared by every package: IoU of two masks, a mask's box, IoU of two boxes."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks of one shape; 0 when both are empty (the metrics' convention)."""
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 0.0


def mask_box(mask: np.ndarray, fmt: str = "xyxy") -> list[float]:
    """The tight box of a non-empty mask's pixels, in pixels with exclusive ends: ``xyxy`` = [x0, y0, x1, y1]
    (the prompt and crop convention), ``xywh`` = [x0, y0, w, h] (COCO's ``bbox``)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("an empty mask has no box")
    x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    if fmt == "xyxy":
        return [x0, y0, x1, y1]
    if fmt == "xywh":
        return [x0, y0, x1 - x0, y1 - y0]
    raise ValueError(f"box format must be xyxy or xywh, got {fmt!r}")


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``xyxy`` boxes; 0 when their union is empty."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
