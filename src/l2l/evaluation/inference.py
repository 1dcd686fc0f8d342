"""Evaluate any predictor on a split: the same code on 1 or N processes.

:func:`inference_on_dataset` (in the manner of detectron2's) runs a :class:`Predictor` — anything
with ``predict(images, texts, guidance, prior, has_prior) -> (B, H, W) probabilities`` and
``eval()``/``train()``, e.g. :class:`~l2l.models.segmenter.Segmenter` or a model another method
trains — over dataset records and returns the RES metrics.

Resolution: ``original`` (default) upsamples each predicted probability map to the image's
own size and compares with the full-resolution mask; ``train`` compares at the training
resolution with the resized mask (the LAVT code's protocol). The output names which, and with ``guidance="prior"`` how many samples had a prior (the
others use the model's learned "no guidance" map).
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..data.augment import IGNORE_INDEX, WeakAugConfig
from ..data.dataset import EvalRefDataset, PriorLookup, collate_eval
from ..data.refer import ReferDataset, SampleRecord
from ..errors import UsageError
from ..utils.distributed import DistInfo, all_gather_objects, shard
from ..utils.progress import progress
from .metrics import RESEvaluator

RESOLUTIONS = ("original", "train")


@runtime_checkable
class Predictor(Protocol):
    """What the evaluator, ``l2l eval`` and ``l2l predict`` need of a model."""

    training: bool

    def predict(
        self,
        images: torch.Tensor,
        texts: Sequence[str],
        guidance: str = "none",
        prior: torch.Tensor | None = None,
        has_prior: torch.Tensor | None = None,
    ) -> torch.Tensor: ...

    def eval(self) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...


@torch.no_grad()
def inference_on_dataset(
    model: Predictor,
    ds: ReferDataset,
    records: Sequence[SampleRecord],
    size: int,
    device: str = "cpu",
    info: DistInfo = DistInfo(),
    guidance: str = "none",
    resolution: str = "original",
    prior_lookup: PriorLookup | None = None,
    batch_size: int = 16,
    workers: int = 0,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Metrics of ``model`` on ``records`` (every rank evaluates its share; results gathered)."""
    if resolution not in RESOLUTIONS:
        raise UsageError(f"resolution must be one of {RESOLUTIONS}, got {resolution!r}")
    if guidance == "prior" and prior_lookup is None:
        raise UsageError("guidance 'prior' needs priors (a prior store: `l2l eval --priors DIR`)")
    was_training = model.training
    model.eval()
    mine = [records[i] for i in shard(len(records), info)]
    eval_ds = EvalRefDataset(ds, mine, WeakAugConfig(size=size), prior_lookup=prior_lookup)
    loader = DataLoader(eval_ds, batch_size=batch_size, num_workers=workers, collate_fn=collate_eval)
    ev = RESEvaluator()
    with_prior = 0
    by_id = {r.sample_id: r for r in mine}
    for batch in progress(loader, desc=f"eval {resolution}", disable=not (show_progress and info.is_main)):
        prior = batch.priors.to(device) if batch.priors is not None else None
        with_prior += int(batch.has_prior.sum())
        if guidance == "prior" and prior is None:  # no sample of this batch has a prior: all use the null map
            prob = model.predict(batch.images.to(device), batch.texts, "none").float()
        else:
            prob = model.predict(batch.images.to(device), batch.texts, guidance, prior, batch.has_prior).float()
        recs = [by_id[i] for i in batch.sample_ids]
        if resolution == "train":
            m = batch.masks
            ev.process(
                batch.sample_ids,
                (prob >= 0.5).cpu(),
                m == 1,
                [r.n_words for r in recs],
                [r.kind for r in recs],
                ignore=m == IGNORE_INDEX,
            )
        else:
            for j, r in enumerate(recs):
                gt = batch.masks_orig[j]
                p = F.interpolate(prob[j][None, None], size=gt.shape, mode="bilinear", align_corners=False)[0, 0]
                ev.process_one(r.sample_id, (p >= 0.5).cpu(), gt, r.n_words, r.kind)
    out = ev.evaluate()
    with_prior = sum(all_gather_objects(with_prior, info))
    model.train(was_training)
    return {"resolution": resolution, "guidance": guidance, "samples_with_prior": with_prior, **out}
