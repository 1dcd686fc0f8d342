"""Mask and box helpers shared by every package — the one module for them (issue 35): IoU of two masks,
a mask's box, IoU of two boxes (NumPy), and the batched torch forms of the same three (PPT's Select,
the object-choice branch, the telemetry)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # torch is imported by the torch forms only: SynthRef's generator runs without it
    import torch


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


def masks_iou(pred: torch.Tensor, cands: torch.Tensor) -> torch.Tensor:
    """IoU of a boolean mask H×W with each of C×H×W (torch); 0 where both are empty."""
    inter = (pred[None] & cands).flatten(1).sum(1).float()
    union = (pred[None] | cands).flatten(1).sum(1).float()
    return inter / union.clamp(min=1)


def label_map_boxes(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes B×4 (x0, y0, x1, y1 in [0, 1], pixel edges) of label maps B×H×W (1 = the object; 0 and the
    ignore value 255 are not) and whether each mask has a pixel."""
    import torch

    fg = masks == 1
    h, w = fg.shape[-2:]
    rows, cols = fg.any(2), fg.any(1)  # B×H, B×W
    has = rows.any(1)
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    y0 = torch.where(rows, ar_h, h).amin(1)
    y1 = torch.where(rows, ar_h, -1).amax(1) + 1
    x0 = torch.where(cols, ar_w, w).amin(1)
    x1 = torch.where(cols, ar_w, -1).amax(1) + 1
    return torch.stack([x0 / w, y0 / h, x1 / w, y1 / h], -1).float(), has


def paired_box_iou(boxes: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """IoU B×K of boxes B×K×4 with one box B×4 each (x0, y0, x1, y1)."""
    import torch

    lt = torch.maximum(boxes[..., :2], box[:, None, :2])
    rb = torch.minimum(boxes[..., 2:], box[:, None, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = (boxes[..., 2:] - boxes[..., :2]).clamp(min=0).prod(-1)
    area1 = (box[:, 2:] - box[:, :2]).clamp(min=0).prod(-1)[:, None]
    return inter / (area + area1 - inter).clamp(min=1e-9)
