"""Pseudo-label selection rules other than RPLE (docs/spec.md §2, §7; paper Tables 14–15, Fig. 5).

Every rule turns a soft target ``q`` (B, H, W) into per-sample thresholds ``(τ_fg, τ_bg)`` (B, 2);
:func:`l2l.semi.rple.pseudo_label` then labels foreground where ``q ≥ τ_fg``, background where
``q ≤ τ_bg`` and ignores the rest (plus an optional boundary band).

* ``static`` — fixed thresholds. FixMatch's confidence rule ``max(q, 1 − q) ≥ 0.95`` is
  ``(0.95, 0.05)``; L2L's static default is ``(0.70, 0.20)`` [paper] (Fig. 5 sweeps τ_fg).
* ``catm`` — a CATM-style adaptive threshold (Moon et al., 2024) [ours: the paper gives no
  formula]: per sample, the confidence ``c_k = max(q_k, 1 − q_k)`` of its pixels is summarised
  by its mean, clipped to ``[lo, hi]`` = (0.60, 0.95), and used as ``τ_fg = t``, ``τ_bg = 1 − t``:
  a sample whose prediction is confident overall must be confident per pixel too, an uncertain
  sample keeps its relatively confident pixels.
* ``agreement`` — agreement filtering (Table 15): static thresholds, but a sample's
  pseudo-label is kept only when the weak prediction and the prior are both confident (mean
  certainty ``|2p − 1|`` ≥ 0.6 each [ours]) and their agreement (Eq. 4, soft IoU) exceeds 0.7
  [paper]; otherwise the whole sample is ignored.
"""

from __future__ import annotations

import torch

from ..errors import UsageError
from .spm import agreement, certainty


def static_thresholds(b: int, tau_fg: float, tau_bg: float, device=None) -> torch.Tensor:
    if not 0.0 <= tau_bg <= tau_fg <= 1.0:
        raise UsageError(f"thresholds need 0 ≤ τ_bg ≤ τ_fg ≤ 1, got τ_fg={tau_fg}, τ_bg={tau_bg}")
    return torch.tensor([tau_fg, tau_bg], device=device).expand(b, 2).clone()


def catm_thresholds(q: torch.Tensor, lo: float = 0.60, hi: float = 0.95) -> torch.Tensor:
    """(B, 2) per-sample thresholds from the confidence distribution of ``q`` (B, H, W)."""
    conf = torch.maximum(q, 1 - q).flatten(1).mean(1).clamp(lo, hi)
    return torch.stack([conf, 1 - conf], -1)


def agreement_keep(
    p_w: torch.Tensor,
    prior: torch.Tensor,
    has_prior: torch.Tensor,
    min_agreement: float = 0.7,
    min_confidence: float = 0.6,
) -> torch.Tensor:
    """(B,) bool: keep the sample's pseudo-label (both sources confident and in agreement)."""
    a = agreement(p_w, prior)
    cw = certainty(p_w).flatten(1).mean(1)
    cp = certainty(prior).flatten(1).mean(1)
    return has_prior.to(a.device) & (a > min_agreement) & (cw >= min_confidence) & (cp >= min_confidence)
