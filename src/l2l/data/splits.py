"""Image-level labeled / unlabeled partition of a training split (docs/spec.md §1).

Every ref of a labeled image is labeled; no image is on both sides. The partition is a
pure function of (sorted image ids, fraction, seed): images are ranked by
``sha256(f"{seed}:{image_id}")`` and the first ``max(1, floor(fraction × n))`` are
labeled (none at a 0 % budget: the zero-shot and weakly supervised settings). The floor is the
paper's count: 0.1 % of RefCOCO's 16,994 training images is 16, of RefCOCOg's 21,899 is 21
(``count="round"`` gives 17 and 22, the rule before issue 33). Hash ranking (rather than a library RNG) keeps the files byte-identical across
numpy / Python versions. Split files are JSON with a format version and a content hash.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MissingFileError, UsageError
from ..utils.io import atomic_write_text

SPLIT_FORMAT = 1
# named label budgets of the paper (fractions of training images)
PRESETS: dict[str, float] = {"0%": 0.0, "0.1%": 0.001, "1%": 0.01, "5%": 0.05, "10%": 0.10, "100%": 1.0}


def parse_fraction(value: str | float) -> float:
    """'5%', '0.05' or 0.05 → 0.05; a fraction must lie in [0, 1]."""
    if isinstance(value, str):
        v = value.strip()
        if v in PRESETS:
            return PRESETS[v]
        try:
            frac = float(v[:-1]) / 100 if v.endswith("%") else float(v)
        except ValueError:
            raise UsageError(f"label fraction {value!r} is not a number: write 5%, 0.05 or 0%") from None
    else:
        frac = float(value)
    if not 0 <= frac <= 1:
        raise UsageError(f"label fraction must be in [0, 1] (e.g. 5%, 0.05, 0%), got {value!r}")
    return frac


def rank_key(seed: int, image_id: int) -> str:
    """The hash that orders images for a split: the first of the sorted keys are labeled."""
    return hashlib.sha256(f"{seed}:{image_id}".encode()).hexdigest()


@dataclass(frozen=True)
class LabelSplit:
    """Labeled and unlabeled image ids of one training split."""

    dataset: str
    fraction: float
    seed: int
    labeled: tuple[int, ...]
    unlabeled: tuple[int, ...]

    def __post_init__(self) -> None:
        both = set(self.labeled) & set(self.unlabeled)
        if both:
            raise UsageError(f"label split of {self.dataset}: images on both sides: {sorted(both)[:10]}")
        if not self.labeled and self.fraction > 0:
            raise UsageError(f"label split of {self.dataset}: no labeled image at fraction {self.fraction}")

    def payload(self) -> dict[str, Any]:
        return {
            "format": SPLIT_FORMAT,
            "dataset": self.dataset,
            "fraction": self.fraction,
            "seed": self.seed,
            "n_labeled": len(self.labeled),
            "n_unlabeled": len(self.unlabeled),
            "labeled": list(self.labeled),
            "unlabeled": list(self.unlabeled),
        }

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.payload(), sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def is_labeled(self, image_id: int) -> bool:
        return image_id in self._labeled_set

    @property
    def _labeled_set(self) -> frozenset[int]:
        cache = self.__dict__.get("_ls")
        if cache is None:
            cache = frozenset(self.labeled)
            object.__setattr__(self, "_ls", cache)
        return cache

    def save(self, path: str | Path) -> str:
        """Write the split file; returns its content hash."""
        doc = {**self.payload(), "sha256": self.content_hash}
        atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
        return self.content_hash

    @classmethod
    def load(cls, path: str | Path) -> "LabelSplit":
        path = Path(path)
        if not path.exists():
            raise MissingFileError(f"label split file not found: {path}")
        doc = json.loads(path.read_text())
        if doc.get("format") != SPLIT_FORMAT:
            raise UsageError(f"{path}: split format {doc.get('format')!r}, this version reads {SPLIT_FORMAT}")
        split = cls(
            doc["dataset"],
            float(doc["fraction"]),
            int(doc["seed"]),
            tuple(int(i) for i in doc["labeled"]),
            tuple(int(i) for i in doc["unlabeled"]),
        )
        if split.content_hash != doc.get("sha256"):
            raise UsageError(f"{path}: content hash mismatch (file edited or corrupt)")
        return split


COUNT_RULES = ("floor", "round")


def label_count(frac: float, n: int, count: str = "floor") -> int:
    """How many of ``n`` training images a budget ``frac`` labels: ``max(1, floor(frac · n))`` (or
    ``round``), none at 0 %."""
    if count not in COUNT_RULES:
        raise UsageError(f"data.label_count must be one of {COUNT_RULES}, got {count!r}")
    if frac == 0:
        return 0
    x = frac * n
    k = math.floor(x + 1e-9) if count == "floor" else int(round(x))  # 0.05 · 1,600 may be 79.99…
    return min(n, max(1, k))


def make_split(
    dataset: str, image_ids: list[int] | tuple[int, ...], fraction: float | str, seed: int, count: str = "floor"
) -> LabelSplit:
    """Partition ``image_ids`` (the images of the training split) at the image level."""
    frac = parse_fraction(fraction)
    ids = sorted(set(int(i) for i in image_ids))
    if not ids:
        raise UsageError(f"{dataset}: no training images to split")
    n_lab = label_count(frac, len(ids), count)
    ranked = sorted(ids, key=lambda i: rank_key(seed, i))
    return LabelSplit(dataset, frac, int(seed), tuple(sorted(ranked[:n_lab])), tuple(sorted(ranked[n_lab:])))


def resolve_split(
    dataset: str,
    image_ids: list[int] | tuple[int, ...],
    fraction: float | str,
    seed: int,
    split_file: str | Path | None = None,
    count: str = "floor",
) -> LabelSplit:
    """The split a run uses: ``split_file`` when given (checked against the dataset, its training
    images and the configured fraction), else the hash-ranked :func:`make_split`."""
    if split_file is None:
        return make_split(dataset, image_ids, fraction, seed, count)
    split = LabelSplit.load(split_file)
    if split.dataset != dataset:
        raise UsageError(f"data.split_file {split_file} is a split of {split.dataset!r}, the data is {dataset!r}")
    have = set(split.labeled) | set(split.unlabeled)
    ids = set(int(i) for i in image_ids)
    if have != ids:
        raise UsageError(
            f"data.split_file {split_file} covers {len(have)} images, the training split has {len(ids)} "
            f"({len(ids - have)} missing from the file, {len(have - ids)} not in the data)"
        )
    if abs(parse_fraction(fraction) - split.fraction) > 1e-12:
        raise UsageError(
            f"data.split_file {split_file} holds a {split.fraction:.4%} split, "
            f"data.label_fraction is {fraction}: set them alike"
        )
    return split


def split_filename(fraction: float, seed: int) -> str:
    """Canonical file name, e.g. ``label_split_5pct_seed22.json``."""
    pct = f"{fraction * 100:g}".replace(".", "p")
    return f"label_split_{pct}pct_seed{seed}.json"
