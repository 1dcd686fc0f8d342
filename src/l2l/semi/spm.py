"""SPM — calibration of the semantic-spatial prior with the model's weak prediction (docs/spec.md §3).

For one unlabeled sample with weak prediction ``p_w`` and stored prior ``P†`` (maps in [0, 1]):

* pixel certainty            ``c(p) = |2p − 1|``                                     [paper: margin-based]
* image agreement  (Eq. 4)   ``a = Σ_k min(p_w,k, P†_k) / (Σ_k max(p_w,k, P†_k) + ε)``   [ours: soft IoU]
* fusion weight    (Eq. 5)   ``w_k = clip(a^κ · (γ + α(1 − c(p_w,k)) + β c(P†_k)), 0, w_max)``
* logit fusion     (Eq. 6)   ``P̃_k = σ(w_k ℓ(P†_k) + (1 − w_k) ℓ(p_w,k))``, ``ℓ(p) = log(p̄/(1 − p̄))``,
                             ``p̄ = clamp(p, ε, 1 − ε)``

Defaults α = 0.40, β = 0.25, γ = 0.20, κ = 1.0, w_max = 0.95 [ours; the paper's best row of
Table 6 / App. B.3 lost its numbers]. All maps are (B, 1, H, W) or (B, H, W); sums run over
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
    """Eq. 5: the prior's per-pixel weight."""
    a = a.clamp(0, 1).view(-1, *([1] * (p_w.dim() - 1)))
    w = a.pow(cfg.kappa) * (cfg.gamma + cfg.alpha * (1 - certainty(p_w)) + cfg.beta * certainty(prior))
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
