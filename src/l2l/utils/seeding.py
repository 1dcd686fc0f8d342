"""The one way this package derives a seed from several integers (run seed, epoch, step, rank, salt).

``mix_seed(a, b, c, …) = ((a·P + b)·P + c)… mod (2⁶³ − 1)`` with ``P = 1,000,003``: distinct tuples
give distinct seeds for every value range used here, and a resumed run re-derives the same seed
from the same tuple. :func:`step_seed` is the seed the trainer sets at every step; its second
multiplier (1,009) predates this module and is kept so that earlier runs reproduce bit for bit.
"""

from __future__ import annotations

P = 1_000_003
M = 2**63 - 1


def mix_seed(*keys: int) -> int:
    h = 0
    for k in keys:
        h = (h * P + int(k)) % M
    return h


def step_seed(seed: int, step: int, rank: int) -> int:
    """The global torch seed of one training step of one process (prior dropout and any other draw)."""
    return (mix_seed(seed, step) * 1_009 + int(rank)) % M
