"""An overlay grid of stored priors: image + sentence, the prior as a heat map, the ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.preview import overlay
from ..data.refer import ReferDataset
from ..errors import UsageError
from ..utils.figures import save_panel_grid, wrap
from .store import PriorStore


def save_prior_grid(store: PriorStore, ds: ReferDataset, out: str | Path, n: int = 8, seed: int = 0) -> Path:
    ids = list(store.sample_ids())
    if not ids:
        raise UsageError(f"the prior store {store.root} is empty")
    rng = np.random.default_rng(seed)
    pick = sorted(int(i) for i in rng.choice(ids, size=min(n, len(ids)), replace=False))
    provider = store.meta.get("provider", "?")
    label = f"{provider} prior" + (" (SIMULATED)" if provider == "simulated" else "")
    rows = []
    for sid in pick:
        rec = ds.sample(sid)
        img, gt, p = ds.load_image(rec.image_id), ds.mask(rec.ann_id), store.get(sid)
        meta = store.record(sid)
        if p is None or meta is None:  # listed by sample_ids() a moment ago: removed by a concurrent writer
            raise UsageError(f"the prior store {store.root} lost sample {sid} while it was read")
        iou = ((p >= 0.5) & gt).sum() / max(((p >= 0.5) | gt).sum(), 1)
        events = ", ".join(meta["provenance"].get("events", [])) or "-"
        rows.append(
            [
                (img, wrap(rec.sentence), {}),
                (p, f"{label}\nIoU {iou:.2f}; {events}", {"cmap": "magma", "vmin": 0, "vmax": 1}),
                (overlay(img, gt.astype(np.uint8)), "ground truth", {}),
            ]
        )
    return save_panel_grid(rows, out)
