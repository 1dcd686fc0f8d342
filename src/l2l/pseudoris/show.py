"""``l2l pseudo-ris show``: a PNG of pseudo-labels — each mask with its kept and rejected captions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.preview import overlay
from ..data.refer import ReferDataset
from ..errors import UsageError
from ..utils.figures import save_panel_grid, wrap
from .generate import _read_records, record_masks


def save_show(folder: str | Path, out: str | Path, n: int = 4, seed: int = 0, per_mask: int = 3) -> Path:
    """Rows of ``n`` labelled images (seeded choice): the image, then each mask (up to 4) titled with
    its best kept captions (✓, DoS) and its best rejected ones (✗)."""
    folder = Path(folder)
    recs = [r for r in _read_records(folder / "records") if r["masks"]]
    if not recs:
        raise UsageError(f"{folder}/records holds no image with masks")
    ds = ReferDataset.pseudoris(folder)
    rng = np.random.default_rng(seed)
    pick = [recs[int(i)] for i in sorted(rng.choice(len(recs), size=min(n, len(recs)), replace=False))]
    rows = []
    for rec in pick:
        img = ds.load_image(int(rec["image_id"]))
        row: list[tuple[np.ndarray, str, dict]] = [(img, f"image {rec['image_id']} ({rec['status']})", {})]
        for m, mask in list(zip(rec["masks"], record_masks(rec)))[:4]:
            caps = sorted(m["captions"], key=lambda c: -_f(c["dos"]))
            kept = [c for c in caps if c["kept"]][:per_mask]
            rej = [c for c in caps if not c["kept"]][:2]
            lines = [f"+ {c['text']} ({_fmt(c['dos'])})" for c in kept] + [
                f"- {c['text']} ({_fmt(c['dos'])})" for c in rej
            ]
            title = "\n".join(wrap(t, 34) for t in lines) or "no caption"
            row.append((overlay(img, mask.astype(np.uint8)), title, {}))
        rows.append(row)
    return save_panel_grid(rows, out, panel_w=3.4, panel_h=5.4)


def _f(v: float | str) -> float:
    return float("inf") if v == "inf" else float(v)


def _fmt(v: float | str) -> str:
    return "DoS inf" if v == "inf" else f"DoS {float(v):.2f}"
