"""The prior-provider interface (docs/spec.md §3: the semantic-spatial prior ``P†``).

A provider turns (image, sentence, sample id) into a soft mask in [0, 1] at the image's
resolution, plus the grounding cue it used (a box and/or points), a confidence, and its
provenance (provider name, model ids or paths, a hash of its configuration). Priors are made
once, offline, stored by :class:`~l2l.priors.store.PriorStore`, and never updated.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from ..errors import UsageError


@dataclass(frozen=True)
class PriorInput:
    sample_id: int
    image: np.ndarray  # H×W×3 uint8
    sentence: str


@dataclass
class PriorRecord:
    sample_id: int
    prob: np.ndarray  # H×W float32 in [0, 1]
    cue: dict[str, Any] = field(default_factory=dict)  # {"box": [x, y, w, h]} and/or {"points": [[x, y], ...]}
    confidence: float = 0.0
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = np.asarray(self.prob, dtype=np.float32)
        if p.ndim != 2:
            raise UsageError(f"prior of sample {self.sample_id} must be H×W, got shape {p.shape}")
        if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
            raise UsageError(f"prior of sample {self.sample_id} has values outside [0, 1]")
        self.prob = p


class PriorProvider(Protocol):
    name: str

    def config(self) -> dict[str, Any]:
        """Everything that determines the output (model paths, knobs, seed)."""

    def __call__(self, batch: Sequence[PriorInput]) -> list[PriorRecord]:
        """One record per input, in order."""


def config_hash(cfg: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]
