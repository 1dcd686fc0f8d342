"""An overlay grid of stored priors: image + sentence, the prior as a heat map, the ground truth."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.preview import overlay
from ..data.refer import ReferDataset
from .store import PriorStore


def save_prior_grid(store: PriorStore, ds: ReferDataset, out: str | Path, n: int = 8, seed: int = 0) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import textwrap

    ids = list(store.sample_ids())
    if not ids:
        raise ValueError(f"the prior store {store.root} is empty")
    rng = np.random.default_rng(seed)
    pick = sorted(int(i) for i in rng.choice(ids, size=min(n, len(ids)), replace=False))
    provider = store.meta.get("provider", "?")
    label = f"{provider} prior" + (" (SIMULATED)" if provider == "simulated" else "")
    fig, axes = plt.subplots(len(pick), 3, figsize=(8.4, 2.9 * len(pick)), squeeze=False)
    for r, sid in enumerate(pick):
        rec = ds.sample(sid)
        img, gt, p = ds.load_image(rec.image_id), ds.mask(rec.ann_id), store.get(sid)
        iou = ((p >= 0.5) & gt).sum() / max(((p >= 0.5) | gt).sum(), 1)
        events = ", ".join(store.record(sid)["provenance"].get("events", [])) or "-"
        axes[r][0].imshow(img)
        axes[r][0].set_title("\n".join(textwrap.wrap(rec.sentence, 32)), fontsize=8)
        axes[r][1].imshow(p, cmap="magma", vmin=0, vmax=1)
        axes[r][1].set_title(f"{label}\nIoU {iou:.2f}; {events}", fontsize=8)
        axes[r][2].imshow(overlay(img, gt.astype(np.uint8)))
        axes[r][2].set_title("ground truth", fontsize=8)
        for ax in axes[r]:
            ax.axis("off")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
