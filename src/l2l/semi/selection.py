"""Pseudo-label selection rules other than RPLE (docs/spec.md §2, §7; paper Tables 14–15, Fig. 5).

Every rule turns a soft target ``q`` (B, H, W) into per-sample thresholds ``(τ_fg, τ_bg)`` (B, 2);
:func:`l2l.semi.rple.pseudo_label` then labels foreground where ``q ≥ τ_fg``, background where
``q ≤ τ_bg`` and ignores the rest (plus an optional boundary band).

* ``static`` — fixed thresholds. FixMatch's confidence rule ``max(q, 1 − q) ≥ 0.95`` is
  ``(0.95, 0.05)``; L2L's static default is ``(0.70, 0.20)`` [paper] (Fig. 5 sweeps τ_fg).
* ``catm`` — CATM-style class-wise adaptive thresholds with momentum (Moon et al., 2024; the
  L2L paper gives no formula) [ours]: one confidence threshold per class, foreground and
  background, each an exponential moving average (momentum m = 0.99) of the mean confidence
  ``max(q_k, 1 − q_k)`` of the pixels the target assigns to that class (``q ≥ 0.5`` vs ``< 0.5``)
  over the mini-batches seen so far, clipped to ``[lo, hi]`` = (0.60, 0.95); the first batch sets
  them. Foreground where ``q ≥ t_fg``, background where ``1 − q ≥ t_bg``, i.e. ``τ_bg = 1 − t_bg``.
  A class the target is less sure of (the small foreground of RES) gets a lower bar than the
  background (:class:`ClassThresholds`).
* ``catm-sample`` — the per-sample variant used before issue 33: a sample's mean pixel confidence,
  clipped to ``[lo, hi]``, as ``τ_fg = t``, ``τ_bg = 1 − t``.
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


class ClassThresholds:
    """Class-wise confidence thresholds with momentum (``catm``; module docstring). State: (t_fg, t_bg)."""

    def __init__(self, lo: float = 0.60, hi: float = 0.95, momentum: float = 0.99):
        if not 0.0 <= lo <= hi <= 1.0 or not 0.0 <= momentum < 1.0:
            raise UsageError(f"CATM needs 0 ≤ lo ≤ hi ≤ 1 and 0 ≤ momentum < 1, got {lo}, {hi}, {momentum}")
        self.lo, self.hi, self.momentum = lo, hi, momentum
        self.t: torch.Tensor | None = None  # (2,) confidence thresholds of (foreground, background)

    @staticmethod
    def batch_stats(q: torch.Tensor) -> torch.Tensor:
        """(2, 2) float64 [[Σ conf, n] for foreground, for background] of the target ``q`` (B, H, W):
        summed over processes (all_gather) before :meth:`update`, so every rank keeps one threshold pair."""
        fg = q >= 0.5
        conf = torch.maximum(q, 1 - q).double()
        return torch.stack([torch.stack([(conf * m).sum(), m.sum().double()]) for m in (fg, ~fg)]).cpu()

    def update(self, stats: torch.Tensor) -> None:
        """One moving-average step from :meth:`batch_stats` (a class absent from the batch keeps its value)."""
        prev = self.t if self.t is not None else torch.full((2,), self.hi)
        means = torch.where(stats[:, 1] > 0, stats[:, 0] / stats[:, 1].clamp_min(1), prev.double()).float()
        self.t = means if self.t is None else self.momentum * self.t + (1 - self.momentum) * means

    def thresholds(self, b: int, device=None) -> torch.Tensor:
        """(B, 2) thresholds (τ_fg, τ_bg) = (t_fg, 1 − t_bg), clipped to [lo, hi] first."""
        if self.t is None:
            raise UsageError("CATM thresholds used before their first update")
        t = self.t.clamp(self.lo, self.hi)
        return torch.stack([t[0], 1 - t[1]]).to(device).expand(b, 2).clone()

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        """Update from ``q`` alone (one process) and return its (B, 2) thresholds."""
        self.update(self.batch_stats(q))
        return self.thresholds(q.shape[0], q.device)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"t": self.t.clone()} if self.t is not None else {}

    def load_state_dict(self, d: dict[str, torch.Tensor]) -> None:
        self.t = d["t"].clone() if "t" in d else None


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
