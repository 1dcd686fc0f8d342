"""Pseudo-RIS configuration (``l2l pseudo-ris generate``); the paper's values as defaults where it gives them."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError


@dataclass
class MaskConfig:
    """§3.1. The paper keeps ~5 of SAM's ~120 masks per image by overlap with CutLER's; we keep the
    ``max_masks`` best by the mask model's predicted IoU × stability, after NMS (our objectness filter)."""

    source: str = "model"  # model | gt (the paper's Table 6: ground-truth masks instead, an upper bound)
    select: str = "score"  # score [ours] | ncut: the paper's App. F overlap selection, MaskCut-style cuts for CutLER
    ncut_encoder: str = "builtin:synthpool-conv"  # the features the cuts are made on (select: ncut)
    ncut_tau: float = 0.15  # MaskCut's affinity threshold
    points_per_side: int = 12
    pred_iou_thresh: float = 0.75
    stability_thresh: float = 0.85
    nms_thresh: float = 0.7
    max_masks: int = 5
    min_area_frac: float = 0.002  # of the image
    max_area_frac: float = 0.5  # background-like masks are left out


@dataclass
class CaptionConfig:
    """§3.2 and §4: four crop kinds × (beam + 5 top-k + 5 top-p) = 44 candidates per mask."""

    margins: list[Any] = field(default_factory=lambda: [0.0, 0.1, 0.2, "masked"])
    top_k: list[int] = field(default_factory=lambda: [5, 7, 9, 11, 13])
    top_p: list[float] = field(default_factory=lambda: [0.4, 0.5, 0.6, 0.7, 0.8])
    beams: int = 3  # 0: no beam-search candidate
    distinctive: bool = True  # False: the naive sampler (Table 5)
    aggregation: str = "average"  # Eq. 2's mean over the other patches; weighted_sum: App. H, Table 14
    temperature: float = 0.02  # [ours, measured: docs/results.md] on probability differences (docs/pseudo_ris.md)


@dataclass
class FilterConfig:
    """§3.3: keep a caption when its distinctiveness DoS (Eq. 6) reaches ``tau``.

    ``score: cos`` (Table 12's correctness row) thresholds CoS (Eq. 5), a CLIP score (logit scale ×
    cosine), not a ratio: ``tau`` is then in those units; ``l2l pseudo-ris quality`` prints the CoS and
    UoS thresholds that keep as many captions as DoS ≥ 1.3 does (``thresholds_matching``)."""

    enabled: bool = True
    score: str = "dos"  # dos (Eq. 6) | uos (Eq. 4: uniqueness only) | cos (Eq. 5: correctness only)
    tau: float = 1.3
    context_margin: float = 0.1  # the crop x_i of θ(x_i, y) in Eqs. 4 and 6 [ours: the paper does not say]


@dataclass
class PseudoRISConfig:
    masks: MaskConfig = field(default_factory=MaskConfig)
    captions: CaptionConfig = field(default_factory=CaptionConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        for name, sub in (("masks", MaskConfig), ("captions", CaptionConfig), ("filter", FilterConfig)):
            if isinstance(getattr(self, name), dict):
                setattr(self, name, sub(**getattr(self, name)))
        m, c, f = self.masks, self.captions, self.filter
        if m.source not in ("model", "gt"):
            raise UsageError(f"masks.source must be model or gt, got {m.source!r}")
        if m.select not in ("score", "ncut"):
            raise UsageError(f"masks.select must be score or ncut, got {m.select!r}")
        if m.max_masks < 1:
            raise UsageError("masks.max_masks must be ≥ 1")
        for g in c.margins:
            if g != "masked" and not (isinstance(g, (int, float)) and 0 <= g < 1):
                raise UsageError(f"captions.margins: each is a share in [0, 1) or 'masked', got {g!r}")
        if not c.margins or c.temperature <= 0 or c.beams < 0:
            raise UsageError("captions: at least one margin, temperature > 0, beams ≥ 0")
        if any(not 0 < p <= 1 for p in c.top_p) or any(k < 1 for k in c.top_k):
            raise UsageError("captions: top_p values in (0, 1], top_k values ≥ 1")
        if c.aggregation not in ("average", "weighted_sum"):
            raise UsageError(f"captions.aggregation must be average or weighted_sum, got {c.aggregation!r}")
        if f.score not in ("dos", "uos", "cos"):
            raise UsageError(f"filter.score must be dos, uos or cos, got {f.score!r}")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @property
    def candidates_per_mask(self) -> int:
        c = self.captions
        return len(c.margins) * ((1 if c.beams else 0) + len(c.top_k) + len(c.top_p))
