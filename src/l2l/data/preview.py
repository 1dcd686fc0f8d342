"""A picture of what the loader feeds the model: original + mask, weak view, strong view."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

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


def _wrap(text: str, width: int = 30) -> str:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if len(cur) + len(w) + 1 > width and cur:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    lines.append(cur)
    return "\n".join(lines)


def save_preview(ds: ReferDataset, out: str | Path, split: str = "train", n: int = 6, size: int = 128,
                 seed: int = 0) -> Path:
    """Write a PNG grid: one row per sample (original+GT, weak view+mask, strong view)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = ds.samples(split)
    rng = np.random.default_rng(seed)
    pick = [recs[int(i)] for i in rng.choice(len(recs), size=min(n, len(recs)), replace=False)]
    lab = LabeledRefDataset(ds, pick, WeakAugConfig(size=size, scale_range=(0.85, 1.15)), seed=seed)
    batch = collate_labeled([lab[i] for i in range(len(pick))])
    strong = StrongAugment()(batch.images, torch.Generator().manual_seed(seed))
    fig, axes = plt.subplots(len(pick), 3, figsize=(9, 3.1 * len(pick)), squeeze=False)
    for r, rec in enumerate(pick):
        img = ds.load_image(rec.image_id)
        weak = (batch.images[r].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        panels = [(overlay(img, ds.mask(rec.ann_id).astype(np.uint8)), f"original [{rec.kind or ds.name}]\n{_wrap(rec.sentence)}"),
                  (overlay(weak, batch.masks[r].numpy()), f"weak view + mask\n{_wrap(batch.texts[r])}"),
                  ((strong[r].permute(1, 2, 0).numpy() * 255).astype(np.uint8), "strong view (appearance only)")]
        for c, (im, title) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(im, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
