"""A picture of what the loader feeds the model: original + mask, weak view, strong view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..utils.figures import save_panel_grid, wrap
from .augment import StrongAugment, WeakAugConfig
from .dataset import LabeledRefDataset, collate_labeled
from .refer import ReferDataset


def overlay(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Darken everything but the mask and outline it in yellow, readable on any colour."""
    out = img.astype(np.float32).copy()
    m = mask == 1
    out[~m] *= 0.45
    inner = m.copy()
    inner[1:, :] &= m[:-1, :]
    inner[:-1, :] &= m[1:, :]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    out[m & ~inner] = (255, 255, 0)
    return out.clip(0, 255).astype(np.uint8)


def save_preview(
    ds: ReferDataset, out: str | Path, split: str = "train", n: int = 6, size: int = 128, seed: int = 0
) -> Path:
    """Write a PNG grid: one row per sample (original+GT, weak view+mask, strong view)."""
    recs = ds.samples(split)
    rng = np.random.default_rng(seed)
    pick = [recs[int(i)] for i in rng.choice(len(recs), size=min(n, len(recs)), replace=False)]
    lab = LabeledRefDataset(ds, pick, WeakAugConfig(size=size, scale_range=(0.85, 1.15)), seed=seed)
    batch = collate_labeled([lab[i] for i in range(len(pick))])
    strong = StrongAugment()(batch.images, torch.Generator().manual_seed(seed))
    rows: list[list[tuple[np.ndarray, str, dict[str, Any]]]] = []
    for r, rec in enumerate(pick):
        img = ds.load_image(rec.image_id)
        weak = (batch.images[r].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        rows.append(
            [
                (
                    overlay(img, ds.mask(rec.ann_id).astype(np.uint8)),
                    f"original [{rec.kind or ds.name}]\n{wrap(rec.sentence, 30)}",
                    {},
                ),
                (overlay(weak, batch.masks[r].numpy()), f"weak view + mask\n{wrap(batch.texts[r], 30)}", {}),
                ((strong[r].permute(1, 2, 0).numpy() * 255).astype(np.uint8), "strong view (appearance only)", {}),
            ]
        )
    return save_panel_grid(rows, out, 3.0, 3.1)
