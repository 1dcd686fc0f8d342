"""``l2l ppt show``: a PNG of PPT's answers — per sample the image and sentence, the chosen query's
points on the image (positive green, negative red) with its mask, and the ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.preview import overlay
from ..utils.figures import save_panel_grid, wrap
from .data import square_mask, to_square


def draw_points(img: np.ndarray, points: np.ndarray, labels: np.ndarray, r: int = 2) -> np.ndarray:
    """Squares of side 2r + 1 at ``points`` (normalised xy) in green (label 1) or red (0)."""
    out = img.copy()
    h, w = out.shape[:2]
    for (x, y), lab in zip(points, labels):
        cx, cy = int(x * w), int(y * h)
        out[max(0, cy - r) : cy + r + 1, max(0, cx - r) : cx + r + 1] = (40, 230, 40) if lab else (240, 40, 40)
    return out


@torch.no_grad()
def save_show(model: Any, ds: Any, split: str, out: str | Path, n: int = 6, seed: int = 0) -> Path:
    recs = ds.samples(split)
    rng = np.random.default_rng(seed)
    pick = [recs[int(i)] for i in sorted(rng.choice(len(recs), size=min(n, len(recs)), replace=False))]
    s = model.image_size
    rows: list[list[tuple[np.ndarray, str, dict]]] = []
    for rec in pick:
        x, _ = to_square(ds.load_image(rec.image_id), s)
        img = (x[0].permute(1, 2, 0) * 255).round().byte().numpy()
        o, state = model(x, [rec.sentence])
        k = int(o.scores[0].argmax())
        mask = model.decode(state, o, torch.tensor([0]), torch.tensor([k]))[0].sigmoid().numpy() > 0.5
        pts, lab = o.points[0, k].numpy(), (o.point_logits[0, k] > 0).numpy()
        gt = square_mask(ds.mask(rec.ann_id).astype(bool), s).numpy() > 0.5
        inter, union = (mask & gt).sum(), (mask | gt).sum()
        rows.append(
            [
                (img, wrap(f'"{rec.sentence}"', 30), {}),
                (
                    draw_points(overlay(img, mask.astype(np.uint8)), pts, lab),
                    f"PPT (query {k}): IoU {inter / max(union, 1):.2f}",
                    {},
                ),
                (overlay(img, gt.astype(np.uint8)), "ground truth", {}),
            ]
        )
    return save_panel_grid(rows, out, panel_w=2.6, panel_h=2.9)
