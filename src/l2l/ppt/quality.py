"""Pseudo-label quality against the ground truth (``l2l ppt quality``): analysis only, never part of
training. For the RES pairs: how often the referent is among the candidates, how often H_sem's
single candidate is the referent, and — given a run — how often Select chose the referent in H_ref;
broken down by expression kind. A candidate "is" the referent when its IoU with the ground-truth
mask is ≥ 0.5."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..utils.masks import mask_iou
from ..utils.run_folder import RunFolder
from .data import load_labels


def label_quality(ds: Any, labels_dir: str | Path, run: str | Path | None = None) -> dict[str, Any]:
    from ..engine import checkpoint as ckpt
    from .config import PPTConfig

    labels = load_labels(labels_dir, PPTConfig())
    selection: list[int] | None = None
    if run is not None:
        last = ckpt.latest(RunFolder(run).checkpoints)
        if last is not None:
            import torch

            selection = list(torch.load(last / "state.pt", map_location="cpu", weights_only=True)["extra"]["selection"])
    rows: dict[str, list[dict[str, float]]] = {}
    h_ref_pos = 0
    for h in labels.h:
        rec = ds.sample(h.sample_id)
        gt = ds.mask(rec.ann_id).astype(bool)
        ious = [mask_iou(labels.mask(h.image_id, k), gt) for k in h.candidates]
        r: dict[str, float] = {"any": float(max(ious, default=0) >= 0.5), "n": float(len(ious))}
        if len(ious) == 1:
            r["sem_correct"] = float(ious[0] >= 0.5)
            r["sem_iou"] = ious[0]
        elif len(ious) > 1:
            if selection is not None and h_ref_pos < len(selection) and selection[h_ref_pos] >= 0:
                r["select_correct"] = float(ious[selection[h_ref_pos]] >= 0.5)
            h_ref_pos += 1
        rows.setdefault(rec.kind or "all", []).append(r)

    def summarise(rs: list[dict[str, float]]) -> dict[str, Any]:
        def mean(key: str) -> float | None:
            v = [r[key] for r in rs if key in r]
            return round(float(np.mean(v)), 4) if v else None

        return {
            "sentences": len(rs),
            "h_sem": sum("sem_correct" in r for r in rs),
            "h_ref": sum(r["n"] > 1 for r in rs),
            "referent_among_candidates": mean("any"),
            "h_sem_correct": mean("sem_correct"),
            "h_sem_mean_iou": mean("sem_iou"),
            "h_ref_select_correct": mean("select_correct"),
        }

    everything = [r for rs in rows.values() for r in rs]
    return {
        "all": summarise(everything),
        "by_kind": {k: summarise(v) for k, v in sorted(rows.items())},
        "run": None if run is None else str(run),
        "d_sem_pool_iou": _d_sem(labels_dir),
    }


def _d_sem(labels_dir: str | Path) -> float | None:
    from .data import summary

    return summary(labels_dir)["d_sem_pool_iou"]
