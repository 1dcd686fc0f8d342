"""The step stream: the (labeled, unlabeled) batches of global step ``t`` as a pure function of (seed, t).

Spec §6: labeled and unlabeled batches are drawn together at every step, the labeled set being
cycled. One *epoch* is one pass over the **driver** set — the unlabeled set for semi-supervised
methods, the labeled set for ``supervised`` — with the incomplete last global batch dropped
(as :class:`~l2l.utils.distributed.ResumableBatchSampler`, whose batches the driver reproduces
exactly). The other set is **cycled**: its samples are read in a fresh seeded permutation per
cycle, continuing across epochs without dropping anything.

Rank ``r`` of ``W`` processes with per-process batch ``B`` takes positions ``t·B·W + r·B + j`` of
the global stream, so W processes see the samples that one process sees with batch ``B·W``.
Augmentation is keyed by (seed, epoch or cycle, sample index) through the datasets' ``i + c·N``
indexing. A resumed run therefore needs only the step number to continue with identical batches,
whatever the number of loader workers.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Sequence

from torch.utils.data import Dataset

from ..errors import UsageError
from ..utils.distributed import DistInfo, permutation


class _Order:
    """Indices (with the epoch/cycle encoded as ``i + c·N``) of one stream for a step and rank."""

    def __init__(self, n: int, batch: int, info: DistInfo, seed: int, driver: bool, salt: int):
        self.n, self.batch, self.info, self.seed, self.driver, self.salt = n, batch, info, seed, driver, salt
        self._perms: dict[int, list[int]] = {}

    @property
    def steps_per_epoch(self) -> int:
        return self.n // (self.batch * self.info.world)

    def _perm(self, c: int) -> list[int]:
        if c not in self._perms:
            if len(self._perms) > 4:
                self._perms.pop(min(self._perms))
            self._perms[c] = permutation(self.n, self.seed, c, self.salt)
        return self._perms[c]

    def indices(self, step: int) -> list[int]:
        gb = self.batch * self.info.world
        if self.driver:  # epoch-aligned, last incomplete global batch dropped
            e, s = divmod(step, self.steps_per_epoch)
            start = s * gb + self.info.rank * self.batch
            return [i + e * self.n for i in self._perm(e)[start : start + self.batch]]
        out = []
        for j in range(self.batch):
            c, k = divmod(step * gb + self.info.rank * self.batch + j, self.n)
            out.append(self._perm(c)[k] + c * self.n)
        return out


class StepStream(Dataset):
    """``stream[t]`` = (labeled batch or None, unlabeled batch or None) of global step ``t`` for this rank.

    Use with ``DataLoader(stream, batch_size=None, sampler=range(start, total), collate_fn=identity)``.
    The datasets must index epochs/cycles as ``i + c·N`` (see :mod:`l2l.data.dataset`) and have
    ``set_epoch(0)``."""

    def __init__(
        self,
        labeled: Any,
        unlabeled: Any,
        batch_labeled: int,
        batch_unlabeled: int,
        info: DistInfo,
        seed: int,
        collate_labeled: Callable,
        collate_unlabeled: Callable,
    ):
        if labeled is None and unlabeled is None:
            raise UsageError("the step stream needs at least one dataset")
        self.labeled, self.unlabeled = labeled, unlabeled
        self.collate_l, self.collate_u = collate_labeled, collate_unlabeled
        drive_unl = unlabeled is not None
        for name, ds, b, driver in (
            ("labeled", labeled, batch_labeled, not drive_unl),
            ("unlabeled", unlabeled, batch_unlabeled, drive_unl),
        ):
            if ds is not None and driver and len(ds) < b * info.world:
                raise UsageError(
                    f"{len(ds)} {name} samples cannot fill one global batch of {b} × {info.world} processes"
                )
            if ds is not None and len(ds) == 0:
                raise UsageError(f"the {name} set is empty: check the label split (data.label_fraction)")
        self.order_l = (
            _Order(len(labeled), batch_labeled, info, seed, not drive_unl, 0) if labeled is not None else None
        )
        self.order_u = (
            _Order(len(unlabeled), batch_unlabeled, info, seed, True, 7919) if unlabeled is not None else None
        )
        # a frozen, caching text encoder (``features_for``): set by the trainer when loader workers run,
        # so that the sentences new to the model are encoded in the worker, beside the step
        self.text_encoder: Any = None

    @property
    def steps_per_epoch(self) -> int:
        return (self.order_u or self.order_l).steps_per_epoch  # type: ignore[union-attr]

    def __len__(self) -> int:
        return 1 << 40

    def indices(self, step: int) -> tuple[Sequence[int] | None, Sequence[int] | None]:
        return (
            self.order_l.indices(step) if self.order_l else None,
            self.order_u.indices(step) if self.order_u else None,
        )

    def __getitem__(self, step: int):
        il, iu = self.indices(int(step))
        lab = self.collate_l([self.labeled[i] for i in il]) if il is not None else None
        unl = self.collate_u([self.unlabeled[i] for i in iu]) if iu is not None else None
        if self.text_encoder is not None and unl is not None:
            texts = [*(lab.texts if lab is not None else []), *unl.texts, *unl.texts_strong]
            unl = replace(unl, text_features=self.text_encoder.features_for(texts))
        return lab, unl


def identity(x):
    return x
