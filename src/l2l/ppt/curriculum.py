"""The multi-source curriculum (§3.3, Eqs. 5–7) as a plan of phases, and Select.

Phases (``curriculum.enabled``; the paper's 10 / 30 / 10 epochs, ``ris_split`` of the 30 first)::

    semantic   H_sem ∪ D_sem                            (Eq. 5)  → θ_sem
    ris_d      H_sem ∪ D_sem ∪ D_ref                             → θ_refD
    ris        H_sem ∪ D_sem ∪ D_ref ∪ H'_ref,  H'_ref = Select(H_ref; θ_refD)   (Eq. 6) → θ_ref
    refine     H_sem ∪ H_ref^(i), re-selected before every epoch i (Eq. 7)

``last_stage`` 1 or 2 stops after the semantic or the RIS stage (Table 3 rows 3, 4); ``use_d_sem`` /
``use_d_ref`` drop an object-centric source (rows 8, 7; both: row 9); without the curriculum one
phase trains on every source for all epochs with H_ref re-selected before each epoch (row 6; with
no object-centric data, row 2).

Select (the paper does not define it further): the model's answer for the pair — the mask of its
most confident query — and the candidate with the highest IoU with it becomes the referent (ĉ = 1),
the others context (ĉ = 0) [ours].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..utils.masks import masks_iou
from .config import CurriculumConfig

SOURCES = ("h_sem", "d_sem", "d_ref", "h_ref")


@dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    sources: tuple[str, ...]
    select: str  # "" (none), "start" (once, before its first epoch), "epoch" (before every epoch)


def plan(cfg: CurriculumConfig) -> list[Phase]:
    """The phases of the curriculum (module docstring); phases with no epoch or no source are left out."""
    d = tuple(s for s, on in (("d_sem", cfg.use_d_sem), ("d_ref", cfg.use_d_ref)) if on)
    e1, e2, e3 = cfg.epochs
    if not cfg.enabled:
        phases = [Phase("joint", e1 + e2 + e3, ("h_sem", *d, "h_ref"), "epoch")]
    else:
        sem = tuple(s for s in ("h_sem", "d_sem") if s == "h_sem" or cfg.use_d_sem)
        phases = [Phase("semantic", e1, sem, "")]
        if cfg.last_stage >= 2:
            phases += [
                Phase("ris_d", cfg.ris_split, ("h_sem", *d), ""),
                Phase("ris", e2 - cfg.ris_split, ("h_sem", *d, "h_ref"), "start"),
            ]
        if cfg.last_stage >= 3:
            phases.append(Phase("refine", e3, ("h_sem", "h_ref"), "epoch"))
    return [p for p in phases if p.epochs > 0 and p.sources]


@torch.no_grad()
def select(answers: Sequence[torch.Tensor], candidates: Sequence[torch.Tensor]) -> list[int]:
    """Select: per pair, the candidate (C×H×W bool) closest to the model's answer (H×W bool)."""
    return [int(masks_iou(a, c).argmax()) for a, c in zip(answers, candidates)]
