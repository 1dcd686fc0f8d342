"""Quality of stored priors against ground truth (the paper's Fig. 9 reports 68.48 IoU for its raw prior)."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..data.refer import ReferDataset
from ..evaluation.metrics import RESEvaluator
from .store import PriorStore


def evaluate_priors(
    store: PriorStore, ds: ReferDataset, sample_ids: Sequence[int] | None = None, threshold: float = 0.5
) -> dict[str, Any]:
    """IoU of ``prior ≥ threshold`` with each sample's mask: mean IoU, overall IoU, P@X, per kind."""
    ids = list(sample_ids) if sample_ids is not None else list(store.sample_ids())
    ev = RESEvaluator()
    missing = 0
    for sid in ids:
        p = store.get(sid)
        if p is None:
            missing += 1
            continue
        rec = ds.sample(sid)
        ev.process_one(
            sid, torch.from_numpy(p >= threshold), torch.from_numpy(ds.mask(rec.ann_id)), rec.n_words, rec.kind
        )
    out = ev.evaluate()
    return {
        "provider": store.meta.get("provider"),
        "threshold": threshold,
        "missing": missing,
        "mean_IoU": out.pop("mIoU"),
        **out,
    }
