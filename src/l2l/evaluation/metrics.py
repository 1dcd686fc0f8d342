"""Referring-segmentation metrics (docs/spec.md §1), the same code on 1 or N processes.

Per sample ``i`` with prediction ``P_i`` and ground truth ``G_i`` (boolean masks):
``I_i = |P_i ∧ G_i|``, ``U_i = |P_i ∨ G_i|``.

* overall IoU  ``oIoU = Σ_i I_i / Σ_i U_i`` (the paper's main metric);
* mean IoU     ``mIoU = mean_i I_i / U_i``, where an empty union (empty prediction of an empty
  target) counts as IoU 0, as the spec states;
* precision@X  share of samples with ``IoU_i ≥ X`` for X ∈ {0.3, 0.5, 0.6, 0.7, 0.8, 0.9} (0.3: PPT's tables);
* oIoU per expression-length bucket (1–3 / 4–6 / 7–10 / 11+ words, the paper's Table 10) and
  per expression kind (SynthRef).

:class:`RESEvaluator` follows the ``reset / process / evaluate`` pattern of ReLA/GRES.
Results are keyed by sample id, so a sample seen twice (a distributed sampler pads the last
batch with repeats) is counted once; ``evaluate`` gathers every rank's records with
``all_gather_object`` when ``torch.distributed`` is initialised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..data.refer import LENGTH_BUCKETS, length_bucket
from ..errors import UsageError

PRECISION_THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class SampleScore:
    """Intersection and union of one sample, with what the breakdowns need."""

    sample_id: int
    intersection: int
    union: int
    n_words: int = 0
    kind: str = ""

    @property
    def iou(self) -> float:
        return self.intersection / self.union if self.union > 0 else 0.0


def intersection_union(
    pred: torch.Tensor, gt: torch.Tensor, ignore: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (I, U) of boolean (B, H, W) masks; ``ignore`` pixels (bool) count for neither."""
    if pred.shape != gt.shape:
        raise UsageError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in shape")
    pred, gt = pred.bool(), gt.bool()
    if ignore is not None:
        keep = ~ignore.bool()
        pred, gt = pred & keep, gt & keep
    dims = tuple(range(1, pred.dim()))
    return (pred & gt).sum(dims).long(), (pred | gt).sum(dims).long()


def summarize(scores: Iterable[SampleScore]) -> dict[str, Any]:
    """oIoU, mIoU, P@X, and the per-bucket / per-kind oIoU of a set of sample scores."""
    scores = list(scores)
    out: dict[str, Any] = {"samples": len(scores)}
    if not scores:
        return out | {"oIoU": 0.0, "mIoU": 0.0, **{f"P@{t}": 0.0 for t in PRECISION_THRESHOLDS}}
    inter = np.array([s.intersection for s in scores], dtype=np.float64)
    union = np.array([s.union for s in scores], dtype=np.float64)
    ious = np.array([s.iou for s in scores])
    out["oIoU"] = float(inter.sum() / union.sum()) if union.sum() > 0 else 0.0
    out["mIoU"] = float(ious.mean())
    for t in PRECISION_THRESHOLDS:
        out[f"P@{t}"] = float((ious >= t).mean())

    def group_oiou(key) -> dict[str, dict[str, float]]:
        groups: dict[str, list[SampleScore]] = {}
        for s in scores:
            groups.setdefault(key(s), []).append(s)
        return {
            g: {
                "oIoU": (sum(s.intersection for s in v) / u) if (u := sum(s.union for s in v)) else 0.0,
                "samples": len(v),
            }
            for g, v in groups.items()
        }

    by_len = group_oiou(lambda s: length_bucket(s.n_words))
    out["oIoU_by_length"] = {b: by_len[b] for b, _, _ in LENGTH_BUCKETS if b in by_len}
    if any(s.kind for s in scores):
        out["oIoU_by_kind"] = dict(sorted(group_oiou(lambda s: s.kind or "-").items()))
    return out


class RESEvaluator:
    """Accumulates per-sample scores; ``evaluate()`` gathers ranks and summarises."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._scores: dict[int, SampleScore] = {}

    def process(
        self,
        sample_ids: Sequence[int],
        pred: torch.Tensor,
        gt: torch.Tensor,
        n_words: Sequence[int] | None = None,
        kinds: Sequence[str] | None = None,
        ignore: torch.Tensor | None = None,
    ) -> None:
        """Add a batch of boolean masks (B, H, W), all at one resolution."""
        inter, union = intersection_union(pred, gt, ignore)
        self._add(sample_ids, inter.tolist(), union.tolist(), n_words, kinds)

    def process_one(
        self, sample_id: int, pred: torch.Tensor, gt: torch.Tensor, n_words: int = 0, kind: str = ""
    ) -> None:
        """Add one sample (for evaluation at each image's own original resolution)."""
        inter, union = intersection_union(pred[None], gt[None])
        self._add([sample_id], inter.tolist(), union.tolist(), [n_words], [kind])

    def _add(self, ids, inter, union, n_words, kinds) -> None:
        n = len(ids)
        n_words = list(n_words) if n_words is not None else [0] * n
        kinds = list(kinds) if kinds is not None else [""] * n
        if not (len(inter) == len(n_words) == len(kinds) == n):
            raise UsageError(
                f"batch of {n} sample ids but {len(inter)} masks / {len(n_words)} lengths / {len(kinds)} kinds"
            )
        for sid, i, u, w, k in zip(ids, inter, union, n_words, kinds):
            self._scores[int(sid)] = SampleScore(int(sid), int(i), int(u), int(w), str(k))

    def scores(self) -> list[SampleScore]:
        """This rank's scores merged with every other rank's (each sample once), sorted by id."""
        local = list(self._scores.values())
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            parts: list[list[SampleScore]] = [None] * torch.distributed.get_world_size()  # type: ignore[list-item]
            torch.distributed.all_gather_object(parts, local)
            merged = {s.sample_id: s for part in parts for s in part}
        else:
            merged = {s.sample_id: s for s in local}
        return [merged[k] for k in sorted(merged)]

    def evaluate(self) -> dict[str, Any]:
        return summarize(self.scores())
