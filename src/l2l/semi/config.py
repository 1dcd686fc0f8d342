"""Settings of the weak-to-strong self-training methods (``semi.*`` of a training config).

A field left at ``None`` takes the value of the method's preset (the table in
:mod:`l2l.semi.methods.selftrain`); every field can be set to build the ablations of
Tables 3–7, 14, 15 and Fig. 5. Plain dataclasses: importing this module imports no method.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..data.augment import StrongAugConfig
from ..errors import UsageError
from . import selection
from .rple import RPLEConfig
from .spm import SPMConfig

SOURCES = ("weak", "linear", "spm")
SELECTORS = ("static", "catm", "catm-sample", "agreement", "rple")


def presets() -> dict[str, dict[str, Any]]:
    """Every registered self-training method's preset, by method name."""
    from ..registry import METHODS

    out: dict[str, dict[str, Any]] = {}
    for name in METHODS:
        cls = METHODS.get(name)
        out.update({k: v for k, v in getattr(cls, "PRESETS", {}).items() if k == name})
    return out


@dataclass
class SemiConfig:
    """Semi-supervised settings; ``None`` = the method's preset (table in the module docstring)."""

    priors: str | None = None  # prior store folder (l2l priors generate); needed by every source but `weak`
    lambda_u: float = 1.0  # [ours]
    unlabeled_batch_size: int | None = None  # per process; None = batch_size
    source: str | None = None  # weak | linear | spm
    selector: str | None = None  # static | catm | catm-sample | agreement | rple
    tau_fg: float | None = None  # static thresholds (and RPLE's reference in Eq. 8 via rple.init_thresholds)
    tau_bg: float | None = None
    band: int | None = None  # width of the ignored band around region boundaries, pixels at `band_at` [paper: 3]
    band_at: int | None = 480  # resolution the band is given at [paper: 3 px at 480²]; scaled to data.size
    band_regions: str = "all"  # all: around fg/bg/ignored boundaries [paper]; foreground: the fg region's only
    loss: str | None = None  # ce | ce_dice (Eq. 22)
    dice_weight: float = 0.5  # λ_dice [ours]
    fusion_weight: float = 0.5  # linear source: weight of the prior (Table 14 sweeps 0.1…0.9)
    agreement_min: float = 0.7  # agreement filter [paper]
    confidence_min: float = 0.6  # agreement filter: mean certainty of each source [ours]
    catm_range: tuple[float, float] = (0.60, 0.95)  # [ours]
    catm_momentum: float = 0.99  # class-wise thresholds' moving average (selector catm) [ours]
    warmup_steps: int = 0  # labeled loss only for the first steps (unlabeled branch skipped) [ours; 0 = the spec]
    bank: bool = True  # the guidance bank conditions SESM (only when the model takes guidance)
    prior_guidance: bool | None = None  # the prior store also guides SESM where no pseudo-label source reads it
    #   (labeled samples' guidance, e.g. semi.source=weak under l2l); false: no prior anywhere (fixmatch)
    strong_guidance: str = "bank"  # bank: the strong pass sees the updated G_i [spec]; none: the null map [ours]
    weak_prior_dropout: bool = False  # [fix] True = the weak (teacher) pass also drops its guidance with
    #                                    sesm.prior_dropout (the earlier defect: docs/semi.md)
    bank_size: int | None = None  # side of the stored maps; None = data.size // 4 [spec: 1/4]
    spm: SPMConfig = field(default_factory=SPMConfig)
    rple: RPLEConfig = field(default_factory=RPLEConfig)
    strong: StrongAugConfig = field(default_factory=StrongAugConfig)

    def validate(self) -> None:
        """Refuse values that would run but compute nonsense (called by ``TrainConfig.validate``)."""
        for ok, what in (
            (self.lambda_u >= 0, f"semi.lambda_u must be ≥ 0, got {self.lambda_u}"),
            (self.warmup_steps >= 0, f"semi.warmup_steps must be ≥ 0, got {self.warmup_steps}"),
            (
                self.unlabeled_batch_size is None or self.unlabeled_batch_size >= 1,
                f"semi.unlabeled_batch_size must be ≥ 1 (or null), got {self.unlabeled_batch_size}",
            ),
            *(
                (v is None or 0 <= v <= 1, f"semi.{key} must lie in [0, 1], got {v}")
                for key, v in (("tau_fg", self.tau_fg), ("tau_bg", self.tau_bg))
            ),
        ):
            if not ok:
                raise UsageError(what)

    def resolved(self, method: str | dict[str, Any]) -> "SemiConfig":
        """Fields left at None take the preset's value (a preset dict, or a registered method's name)."""
        if isinstance(method, str):
            preset = presets().get(method)
            if preset is None:
                raise UsageError(f"unknown semi-supervised method {method!r}; available: {sorted(presets())}")
        else:
            preset = method
        fill = {k: v for k, v in preset.items() if getattr(self, k) is None}
        out = replace(self, **fill)
        if out.source not in SOURCES:
            raise UsageError(f"semi.source must be one of {SOURCES}, got {out.source!r}")
        if out.selector not in SELECTORS:
            raise UsageError(f"semi.selector must be one of {SELECTORS}, got {out.selector!r}")
        if out.loss not in ("ce", "ce_dice"):
            raise UsageError(f"semi.loss must be ce or ce_dice, got {out.loss!r}")
        if out.strong_guidance not in ("bank", "none"):
            raise UsageError(f"semi.strong_guidance must be bank or none, got {out.strong_guidance!r}")
        if out.band_regions not in ("all", "foreground"):
            raise UsageError(f"semi.band_regions must be all or foreground, got {out.band_regions!r}")
        if not 0 <= out.fusion_weight <= 1:
            raise UsageError(f"semi.fusion_weight must be in [0, 1], got {out.fusion_weight}")
        if out.tau_fg is None or out.tau_bg is None:
            raise UsageError("semi.tau_fg and semi.tau_bg must be set (the preset gives them)")
        selection.static_thresholds(1, out.tau_fg, out.tau_bg)  # validates
        return out

    @property
    def uses_prior(self) -> bool:
        return self.source != "weak" or self.selector == "agreement"

    @property
    def reads_priors(self) -> bool:
        """Whether the run opens the prior store at all (``semi.priors``)."""
        return self.uses_prior or bool(self.prior_guidance)
