"""Typed samples and torch datasets for training and evaluation.

Three sample types, three datasets:

* :class:`LabeledSample` — weak view of a labeled image, its (flipped) sentence, its mask
  (ignore = 255) and optional prior map.
* :class:`UnlabeledSample` — weak view, weak sentence, strong sentence, optional prior.
  **It has no mask field**, and :class:`UnlabeledRefDataset` never reads a mask, so a
  training loss cannot receive the ground truth of an unlabeled sample. Telemetry that
  needs it (prior IoU, pseudo-label accuracy) goes through :class:`HiddenMasks`, a
  separate object that the trainer's loss path is never given.
* :class:`EvalSample` — the image resized for the model plus the mask at the original
  resolution (the default for evaluation) and the resized mask (LAVT-style evaluation).

Augmentation randomness is a pure function of ``(seed, epoch, index)``: the same run
gives the same samples whatever the number of loader workers or their scheduling.
The strong *image* view is not made here: it is batched on the training device
(:class:`~l2l.data.augment.StrongAugment`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import UsageError
from ..utils.tensors import image_tensor
from .augment import IGNORE_INDEX, Geometry, WeakAugConfig, sample_geometry
from .refer import ReferDataset, SampleRecord
from .splits import LabelSplit
from .text_augment import flip_directions

PriorLookup = Callable[[int], "np.ndarray | None"]  # sample_id -> float map in [0,1] at image size


@dataclass(frozen=True, slots=True)
class LabeledSample:
    sample_id: int
    image: torch.Tensor  # (3, S, S) float in [0, 1]
    text: str
    mask: torch.Tensor  # (S, S) uint8: 0 / 1 / 255 ignore
    prior: torch.Tensor | None  # (S, S) float in [0, 1]


@dataclass(frozen=True, slots=True)
class UnlabeledSample:
    sample_id: int
    image: torch.Tensor  # weak view (3, S, S)
    text: str  # weak sentence t_w
    text_strong: str  # strong sentence t_s = A_s(t_w)
    prior: torch.Tensor | None
    geometry: Geometry  # the weak view's transform (no label information)


@dataclass(frozen=True, slots=True)
class EvalSample:
    sample_id: int
    image: torch.Tensor  # (3, S, S)
    text: str
    mask: torch.Tensor  # (S, S) uint8 at the training resolution
    mask_orig: torch.Tensor  # (H, W) bool at the original resolution
    prior: torch.Tensor | None


@dataclass(frozen=True, slots=True)
class LabeledBatch:
    sample_ids: list[int]
    images: torch.Tensor  # (B, 3, S, S)
    texts: list[str]
    masks: torch.Tensor  # (B, S, S) long, 255 = ignore
    priors: torch.Tensor | None  # (B, 1, S, S) or None
    has_prior: torch.Tensor  # (B,) bool


@dataclass(frozen=True, slots=True)
class UnlabeledBatch:
    sample_ids: list[int]
    images: torch.Tensor
    texts: list[str]
    texts_strong: list[str]
    priors: torch.Tensor | None
    has_prior: torch.Tensor
    geometries: list[Geometry]
    # frozen text features computed in the loader worker for sentences the model has not seen yet
    # (:class:`~l2l.nets.text_encoders.PackedFeatures`; engine/stream.py), else None
    text_features: Any = None


@dataclass(frozen=True, slots=True)
class EvalBatch:
    sample_ids: list[int]
    images: torch.Tensor
    texts: list[str]
    masks: torch.Tensor
    masks_orig: list[torch.Tensor]
    priors: torch.Tensor | None
    has_prior: torch.Tensor


def _sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


class _RefDatasetBase(Dataset):
    def __init__(
        self,
        ds: ReferDataset,
        records: Sequence[SampleRecord],
        aug: WeakAugConfig,
        seed: int = 0,
        prior_lookup: PriorLookup | None = None,
    ):
        self.ds, self.records, self.aug, self.seed = ds, list(records), aug, int(seed)
        self.prior_lookup = prior_lookup
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Call at the start of every epoch (as with DistributedSampler)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        """Index ``i + c·N`` (N = len) is sample ``i`` with the augmentation of epoch ``self.epoch + c``,
        so one sampler can run over several epochs or cycles of the set."""
        cycle, j = divmod(int(i), len(self.records))
        return self.item(j, self.epoch + cycle)

    def item(self, i: int, epoch: int):
        raise NotImplementedError

    def _prior(self, rec: SampleRecord, shape: tuple[int, int]) -> torch.Tensor | None:
        if self.prior_lookup is None:
            return None
        p = self.prior_lookup(rec.sample_id)
        if p is None:
            return None
        p = np.asarray(p, dtype=np.float32)
        if p.shape != shape:
            raise UsageError(f"prior of sample {rec.sample_id} is {p.shape}, image {rec.image_id} is {shape}")
        return torch.from_numpy(p)


class LabeledRefDataset(_RefDatasetBase):
    def item(self, i: int, epoch: int) -> LabeledSample:
        rec = self.records[i]
        rng = _sample_rng(self.seed, epoch, i)
        img = self.ds.load_image(rec.image_id)
        geo = sample_geometry(img.shape[:2], self.aug, rng)
        mask = torch.from_numpy(self.ds.mask(rec.ann_id).astype(np.uint8))
        prior = self._prior(rec, img.shape[:2])
        return LabeledSample(
            rec.sample_id,
            geo.apply(image_tensor(img), "image"),
            flip_directions(rec.sentence) if geo.flip else rec.sentence,
            geo.apply(mask, "mask"),
            None if prior is None else geo.apply(prior, "prior"),
        )


class UnlabeledRefDataset(_RefDatasetBase):
    """Unlabeled samples: never touches a mask (see the module docstring)."""

    def __init__(
        self,
        ds: ReferDataset,
        records: Sequence[SampleRecord],
        aug: WeakAugConfig,
        seed: int = 0,
        prior_lookup: PriorLookup | None = None,
        text_strong: Callable[[str, np.random.Generator], str] | None = None,
    ):
        super().__init__(ds, records, aug, seed, prior_lookup)
        self.text_strong = text_strong

    def item(self, i: int, epoch: int) -> UnlabeledSample:
        rec = self.records[i]
        rng = _sample_rng(self.seed, epoch, i)
        img = self.ds.load_image(rec.image_id)
        geo = sample_geometry(img.shape[:2], self.aug, rng)
        text_w = flip_directions(rec.sentence) if geo.flip else rec.sentence
        # A_s(t_w): EDA never edits direction words, so drawing from the pool of the original
        # sentence and flipping the result equals augmenting the flipped sentence, with half the pools
        text_s = self.text_strong(rec.sentence, rng) if self.text_strong else rec.sentence
        text_s = flip_directions(text_s) if geo.flip else text_s
        prior = self._prior(rec, img.shape[:2])
        return UnlabeledSample(
            rec.sample_id,
            geo.apply(image_tensor(img), "image"),
            text_w,
            text_s,
            None if prior is None else geo.apply(prior, "prior"),
            geo,
        )


class EvalRefDataset(_RefDatasetBase):
    """No randomness: plain resize, no flip."""

    def item(self, i: int, epoch: int = 0) -> EvalSample:
        rec = self.records[i]
        img = self.ds.load_image(rec.image_id)
        geo = sample_geometry(img.shape[:2], self.aug, None)
        m = self.ds.mask(rec.ann_id)
        prior = self._prior(rec, img.shape[:2])
        return EvalSample(
            rec.sample_id,
            geo.apply(image_tensor(img), "image"),
            rec.sentence,
            geo.apply(torch.from_numpy(m.astype(np.uint8)), "mask"),
            torch.from_numpy(m),
            None if prior is None else geo.apply(prior, "prior"),
        )


def _stack_priors(items: Sequence, size: tuple[int, ...]) -> tuple[torch.Tensor | None, torch.Tensor]:
    has = torch.tensor([it.prior is not None for it in items], dtype=torch.bool)
    if not has.any():
        return None, has
    pri = torch.stack([it.prior if it.prior is not None else torch.zeros(size) for it in items])[:, None]
    return pri, has


def collate_labeled(items: Sequence[LabeledSample]) -> LabeledBatch:
    images = torch.stack([it.image for it in items])
    priors, has = _stack_priors(items, tuple(images.shape[-2:]))
    return LabeledBatch(
        [it.sample_id for it in items],
        images,
        [it.text for it in items],
        torch.stack([it.mask for it in items]).long(),
        priors,
        has,
    )


def collate_unlabeled(items: Sequence[UnlabeledSample]) -> UnlabeledBatch:
    images = torch.stack([it.image for it in items])
    priors, has = _stack_priors(items, tuple(images.shape[-2:]))
    return UnlabeledBatch(
        [it.sample_id for it in items],
        images,
        [it.text for it in items],
        [it.text_strong for it in items],
        priors,
        has,
        [it.geometry for it in items],
    )


def collate_eval(items: Sequence[EvalSample]) -> EvalBatch:
    images = torch.stack([it.image for it in items])
    priors, has = _stack_priors(items, tuple(images.shape[-2:]))
    return EvalBatch(
        [it.sample_id for it in items],
        images,
        [it.text for it in items],
        torch.stack([it.mask for it in items]).long(),
        [it.mask_orig for it in items],
        priors,
        has,
    )


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoader: seeds numpy/random from torch's per-worker seed.

    The datasets above do not depend on it (their randomness is keyed by sample index),
    but user code and third-party transforms may.
    """
    import random

    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def train_records(
    ds: ReferDataset, split: LabelSplit, train_split: str = "train"
) -> tuple[list[SampleRecord], list[SampleRecord]]:
    """(labeled, unlabeled) sample records of the training split under a label split.

    Raises if the label split does not cover exactly the training images of ``ds``."""
    recs = ds.samples(train_split)
    ids = {r.image_id for r in recs}
    known = set(split.labeled) | set(split.unlabeled)
    if ids != known:
        raise UsageError(
            f"label split ({split.dataset}, {len(known)} images) does not match the "
            f"{len(ids)} {train_split} images of {ds.name}: make it with `l2l data split` for this dataset"
        )
    lab = [r for r in recs if split.is_labeled(r.image_id)]
    unl = [r for r in recs if not split.is_labeled(r.image_id)]
    return lab, unl


class HiddenMasks:
    """Ground truth of unlabeled samples, for telemetry only (prior IoU, pseudo-label accuracy).

    Kept apart from every dataset and batch type that reaches a loss. With the sample's
    weak-view :class:`Geometry`, the mask comes back aligned with the weak view
    (255 where the view was padded); without it, at the original resolution.
    """

    def __init__(self, ds: ReferDataset):
        self._ds = ds

    def get(self, sample_id: int, geometry: Geometry | None = None) -> torch.Tensor:
        rec = self._ds.sample(sample_id)
        m = torch.from_numpy(self._ds.mask(rec.ann_id).astype(np.uint8))
        return m if geometry is None else geometry.apply(m, "mask")


__all__ = [
    "LabeledSample",
    "UnlabeledSample",
    "EvalSample",
    "LabeledBatch",
    "UnlabeledBatch",
    "EvalBatch",
    "LabeledRefDataset",
    "UnlabeledRefDataset",
    "EvalRefDataset",
    "collate_labeled",
    "collate_unlabeled",
    "collate_eval",
    "seed_worker",
    "train_records",
    "HiddenMasks",
    "IGNORE_INDEX",
]
