"""SPM — calibration of the semantic-spatial prior with the model's weak prediction (docs/spec.md §3).

For one unlabeled sample with weak prediction ``p_w`` and stored prior ``P†`` (maps in [0, 1]):

* pixel certainty            ``c(p) = |2p − 1|``                                     [paper: margin-based]
* image agreement  (Eq. 4)   ``a = Σ_k min(p_w,k, P†_k) / (Σ_k max(p_w,k, P†_k) + ε)``   [ours: soft IoU]
* fusion weight    (Eq. 5)   ``w_k = clip(a^κ · (γ + α(1 − c(p_w,k)) + β c(P†_k)), 0, w_max)``
* logit fusion     (Eq. 6)   ``P̃_k = σ(w_k ℓ(P†_k) + (1 − w_k) ℓ(p_w,k))``, ``ℓ(p) = log(p̄/(1 − p̄))``,
                             ``p̄ = clamp(p, ε, 1 − ε)``

Defaults α = 0.40, β = 0.25, γ = 0.20, κ = 1.0, w_max = 0.95 [ours; the paper's best row of
Table 6 / App. B.3 lost its numbers].

The paper's text fixes what Eq. 5 does — more prior where the model is uncertain, less where it is
confident "or when the global agreement is low" — but not how the agreement enters. Three forms
(``damping``), all [ours]:

* ``power`` (default): ``w = a^κ · (γ + α(1 − c(p_w)) + β c(P†))``. When an unguided ``p_w``
  disagrees with the prior, ``a → 0`` and the prior is switched off (``a = 0.1`` → w ≤ 0.085);
* ``floor``: ``w = (a₀ + (1 − a₀) a^κ) · (γ + α(1 − c(p_w)) + β c(P†))``, ``a₀`` = ``a_floor``
  = 0.5: disagreement halves the prior's weight at most;
* ``additive``: ``w = γ + α(1 − c(p_w)) + β c(P†) + δ (a^κ − 1)``, δ = ``delta`` = 0.15:
  disagreement subtracts at most δ from the weight, whatever the certainties.

Each is clipped to ``[0, w_max]``. All maps are (B, 1, H, W) or (B, H, W); sums run over
everything but the batch. Probabilities of exactly 0 or 1 are safe (clamped before the logit).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UsageError

EPS = 1e-6


@dataclass
class SPMConfig:
    alpha: float = 0.40  # weight of the model's uncertainty
    beta: float = 0.25  # weight of the prior's certainty
    gamma: float = 0.20  # base weight of the prior
    kappa: float = 1.0  # sharpness of the agreement damping
    w_max: float = 0.95  # the prior never fully overrides the model
    damping: str = "power"  # how the agreement a enters Eq. 5: power | floor | additive (module docstring)
    a_floor: float = 0.5  # floor: the share of the weight that disagreement cannot remove
    delta: float = 0.15  # additive: the most that disagreement subtracts

    def __post_init__(self) -> None:
        if self.damping not in ("power", "floor", "additive"):
            raise UsageError(f"semi.spm.damping must be power, floor or additive, got {self.damping!r}")
        if not 0.0 <= self.a_floor <= 1.0:
            raise UsageError(f"semi.spm.a_floor must be in [0, 1], got {self.a_floor}")


def certainty(p: torch.Tensor) -> torch.Tensor:
    """``c(p) = |2p − 1|``: 0 at p = 0.5, 1 at p ∈ {0, 1}."""
    return (2 * p - 1).abs()


def agreement(p_w: torch.Tensor, prior: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Eq. 4: soft IoU of the two maps, one value per sample (B,)."""
    dims = tuple(range(1, p_w.dim()))
    return torch.minimum(p_w, prior).sum(dims) / (torch.maximum(p_w, prior).sum(dims) + eps)


def fusion_weight(
    p_w: torch.Tensor, prior: torch.Tensor, a: torch.Tensor, cfg: SPMConfig = SPMConfig()
) -> torch.Tensor:
    """Eq. 5: the prior's per-pixel weight, in the form ``cfg.damping`` (module docstring)."""
    a = a.clamp(0, 1).view(-1, *([1] * (p_w.dim() - 1)))
    base = cfg.gamma + cfg.alpha * (1 - certainty(p_w)) + cfg.beta * certainty(prior)
    damp = a.pow(cfg.kappa)
    if cfg.damping == "power":
        w = damp * base
    elif cfg.damping == "floor":
        w = (cfg.a_floor + (1 - cfg.a_floor) * damp) * base
    else:
        w = base + cfg.delta * (damp - 1)
    return w.clamp(0.0, cfg.w_max)


def logit(p: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


def calibrate(
    p_w: torch.Tensor, prior: torch.Tensor, cfg: SPMConfig = SPMConfig()
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eqs. 4–6: (calibrated prior P̃, pixel weights w, agreement a)."""
    if p_w.shape != prior.shape:
        raise UsageError(f"weak prediction {tuple(p_w.shape)} and prior {tuple(prior.shape)} differ in shape")
    p_w, prior = p_w.float(), prior.float()
    a = agreement(p_w, prior)
    w = fusion_weight(p_w, prior, a, cfg)
    fused = torch.sigmoid(w * logit(prior) + (1 - w) * logit(p_w))
    return fused, w, a
