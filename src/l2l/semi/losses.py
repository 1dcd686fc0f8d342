"""Unlabeled losses (docs/spec.md §2 and Eq. 22), one value per sample.

* ``masked_ce`` (docs/spec.md §2): ``L_u = Σ_k m_k CE(p_s,k, ŷ_k) / (Σ_k m_k + ε)``, the mask ``m`` being the
  selected (non-ignored) pixels of the pseudo-label.
* ``dice_on_selected`` (Eq. 22's second term) [ours: the paper's exact form was lost]:
  ``1 − (2 Σ_{k∈S} p_s,k ŷ_k + ε) / (Σ_{k∈S} p_s,k + Σ_{k∈S} ŷ_k + ε)`` over the selected pixels S,
  for samples whose selection holds some foreground (0 for the others, which the CE term covers).
* ``eq22`` = masked CE + λ_dice · Dice, λ_dice = 0.5 [ours].

Per-sample values (B,) are averaged over the batch by the caller, so N processes with batch B
give the gradient of one process with batch N·B.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.augment import IGNORE_INDEX as IGNORE  # the one ignore index
from ..errors import UsageError

EPS = 1e-6


def masked_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) mean CE over each sample's selected pixels (labels 0/1; 255 = not selected)."""
    sel = labels != IGNORE
    t = torch.where(sel, labels, torch.zeros_like(labels))
    ce = F.cross_entropy(logits, t, reduction="none")
    m = sel.to(ce.dtype)
    return (ce * m).flatten(1).sum(1) / (m.flatten(1).sum(1) + EPS)


def dice_on_selected(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) soft Dice loss of the foreground probability over the selected pixels."""
    sel = (labels != IGNORE).to(logits.dtype).flatten(1)
    y = (labels == 1).to(logits.dtype).flatten(1)
    p = logits.softmax(1)[:, 1].flatten(1) * sel
    inter = (p * y).sum(1)
    d = 1 - (2 * inter + EPS) / (p.sum(1) + y.sum(1) + EPS)
    return torch.where(y.sum(1) > 0, d, torch.zeros_like(d))


def unlabeled_loss(
    logits: torch.Tensor, labels: torch.Tensor, kind: str = "ce", dice_weight: float = 0.5
) -> torch.Tensor:
    """(B,) ``ce`` (docs/spec.md §2) or ``ce_dice`` (Eq. 22)."""
    if kind == "ce":
        return masked_ce(logits, labels)
    if kind == "ce_dice":
        return masked_ce(logits, labels) + dice_weight * dice_on_selected(logits, labels)
    raise UsageError(f"unknown unlabeled loss {kind!r}; choose ce or ce_dice")
