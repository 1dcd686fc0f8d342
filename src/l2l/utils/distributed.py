"""Process groups and a resumable, rank-aware batch sampler.

Launch with ``torchrun --nproc_per_node N -m l2l.cli train ...``: ``RANK``/``WORLD_SIZE``
come from the environment. ``batch_size`` in the configs is **per process**; the global batch
is ``batch_size × world_size``.

:class:`ResumableBatchSampler` draws one global permutation per epoch from ``(seed, epoch)``
and gives rank r the r-th slice of every global batch, so N processes see exactly the
samples one process sees with an N× larger batch, and a run resumed at step k of an epoch
continues with the very same batches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import UsageError
from .seeding import mix_seed


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device: str) -> DistInfo:
    """Join the process group when launched by torchrun (gloo on CPU, NCCL on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if device.startswith("cuda"):
        torch.cuda.set_device(info.local_rank)
    return info


def all_gather_objects(obj, info: DistInfo) -> list:
    if not info.enabled:
        return [obj]
    out = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def permutation(n: int, seed: int, epoch: int, salt: int = 0) -> list[int]:
    """The seeded permutation of epoch (or cycle) ``epoch`` shared by the sampler and the step stream."""
    g = torch.Generator().manual_seed(mix_seed(seed, epoch + salt))
    return torch.randperm(n, generator=g).tolist()


class ResumableBatchSampler:
    """Per-rank batches of a seeded global permutation; ``start_step`` skips done batches."""

    def __init__(self, n: int, batch_size: int, info: DistInfo, seed: int, shuffle: bool = True):
        if n < batch_size * info.world:
            raise UsageError(f"{n} samples cannot fill one global batch of {batch_size} × {info.world} processes")
        self.n, self.batch_size, self.info, self.seed, self.shuffle = n, batch_size, info, seed, shuffle
        self.epoch, self.start_step = 0, 0

    @property
    def steps_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.info.world)  # the incomplete last global batch is dropped

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = int(epoch), int(start_step)

    def __len__(self) -> int:
        return self.steps_per_epoch - self.start_step

    def __iter__(self):
        if self.shuffle:
            perm = permutation(self.n, self.seed, self.epoch)
        else:
            perm = list(range(self.n))
        gb = self.batch_size * self.info.world
        for step in range(self.start_step, self.steps_per_epoch):
            start = step * gb + self.info.rank * self.batch_size
            yield perm[start : start + self.batch_size]


def shard(n: int, info: DistInfo) -> list[int]:
    """Indices of an evaluation set for this rank (strided, no padding, no duplicates)."""
    return list(range(info.rank, n, info.world))
