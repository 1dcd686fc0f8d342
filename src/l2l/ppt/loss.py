"""Hungarian matching and the PPT objective (§3.1.2, Eq. 4).

Pseudo-labels ŷ_e = (ŝ_e, P̂_e, ĉ_e) of a sample are matched one-to-one to the K predictions y_k by
``scipy.optimize.linear_sum_assignment`` on a cost of the point and score terms of Eq. 4 (the mask
term is left out of the *cost* so that only the E matched queries are decoded, not all K: [ours]).
For a matched pair (Eq. 4)::

    ℓ = ℓ_mask(s, ŝ) + ℓ_pt(P, P̂) + ℓ_bce(c, ĉ),   ℓ_mask = BCE + Dice,   ℓ_pt = L1 + BCE(r, labels)

P̂ is M points drawn uniformly in ŝ's box (labels: inside ŝ). The paper does not say how its M
predicted points meet the M drawn ones in the L1; regressing point m onto a fresh random point m
would pull every point to the box centre, so the two *sets* are matched first — an inner
Hungarian on the same cost, L1 distance plus the label BCE, so that a point the head calls
negative is matched to a drawn point outside the mask — before the L1 and the label BCE [ours].
(Matching on position alone let the labels average out to "positive" everywhere: no negative
point was ever predicted; docs/ppt.md.) Unmatched queries learn c = 0 (DETR's
"no object", ``loss.unmatched_score``; off: Eq. 4 alone, on matched pairs only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from .config import LossConfig
from .generator import Output


@dataclass
class Target:
    """The pseudo-labels of one sample: masks E×S×S (float 0/1), points E×M×2 in [0, 1], point labels
    E×M (0/1), referent scores E (0/1)."""

    masks: torch.Tensor
    points: torch.Tensor
    point_labels: torch.Tensor
    scores: torch.Tensor


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = logits.sigmoid().flatten(1)
    t = target.flatten(1)
    return 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)


@torch.no_grad()
def match(out: Output, targets: list[Target], cfg: LossConfig) -> list[tuple[np.ndarray, np.ndarray, list[np.ndarray]]]:
    """Per sample: (pseudo-label indices e, query indices σ(e), inner point permutation per pair)."""
    res: list[tuple[np.ndarray, np.ndarray, list[np.ndarray]]] = []
    for b, t in enumerate(targets):
        e_n = t.points.shape[0]
        if e_n == 0:
            res.append((np.zeros(0, int), np.zeros(0, int), []))
            continue
        pred = out.points[b].detach().float().cpu()  # K×M×2
        r = out.point_logits[b].detach().float().cpu()  # K×M
        c = out.scores[b].detach().float().cpu()
        lab = t.point_labels.float()
        k_n, m_n = r.shape
        # inner cost (E×K×M×M): drawn point m ↔ predicted point m', by position and by label
        d = (t.points[:, None, :, None, :] - pred[None, :, None, :, :]).abs().sum(-1)
        bce = F.binary_cross_entropy_with_logits(
            r[None, :, None, :].expand(e_n, k_n, m_n, m_n),
            lab[:, None, :, None].expand(e_n, k_n, m_n, m_n),
            reduction="none",
        )
        inner = (cfg.point_l1 * d + (cfg.point_bce * bce if cfg.point_label_matching else 0 * bce)).numpy()
        perms = np.zeros((e_n, k_n, m_n), int)
        cost = np.zeros((e_n, k_n))
        for e in range(e_n):
            for k in range(k_n):
                rows, cols = linear_sum_assignment(inner[e, k])
                perms[e, k, rows] = cols
                cost[e, k] = inner[e, k, rows, cols].mean()
            cost[e] += (
                cfg.score_bce
                * F.binary_cross_entropy_with_logits(c, t.scores[e].float().expand_as(c), reduction="none").numpy()
            )
        rows, cols = linear_sum_assignment(cost)
        res.append((rows, cols, [perms[e, k] for e, k in zip(rows, cols)]))
    return res


def ppt_loss(
    model, state, out: Output, targets: list[Target], cfg: LossConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 4 summed over matched pairs (averaged over them), plus the unmatched queries' score term."""
    matches = match(out, targets, cfg)
    bi, qi, ei = [], [], []
    for b, (rows, cols, _) in enumerate(matches):
        bi += [b] * len(rows)
        qi += list(cols)
        ei += list(rows)
    dev = out.points.device
    if not bi:
        zero = out.scores.sum() * 0
        return zero, {"loss": 0.0}
    index, query = torch.tensor(bi, device=dev), torch.tensor(qi, device=dev)
    logits = model.decode(state, out, index, query)  # P×S×S, only the matched queries
    tmask = torch.stack([targets[b].masks[e] for b, e in zip(bi, ei)]).to(dev)
    if tmask.shape[-2:] != logits.shape[-2:]:
        tmask = F.interpolate(tmask[:, None], size=logits.shape[-2:], mode="nearest")[:, 0]
    l_bce = F.binary_cross_entropy_with_logits(logits, tmask, reduction="none").mean((1, 2))
    l_dice = dice_loss(logits, tmask)
    # point terms on the inner-matched point sets
    l1, pb = [], []
    for b, (rows, cols, perms) in enumerate(matches):
        for e, k, perm in zip(rows, cols, perms):
            p = out.points[b, k, torch.from_numpy(perm).to(dev)]
            r = out.point_logits[b, k, torch.from_numpy(perm).to(dev)]
            l1.append((p - targets[b].points[e].to(dev)).abs().sum(-1).mean())
            pb.append(F.binary_cross_entropy_with_logits(r, targets[b].point_labels[e].float().to(dev)))
    l_l1, l_pb = torch.stack(l1), torch.stack(pb)
    # score term: matched pairs get ĉ_e; unmatched queries 0 (module docstring)
    score_t = torch.zeros_like(out.scores)
    weight = torch.zeros_like(out.scores) if not cfg.unmatched_score else torch.ones_like(out.scores)
    for b, (rows, cols, _) in enumerate(matches):
        for e, k in zip(rows, cols):
            score_t[b, k] = float(targets[b].scores[e])
            weight[b, k] = 1.0
    l_score = (F.binary_cross_entropy_with_logits(out.scores, score_t, reduction="none") * weight).sum() / weight.sum()
    total = (cfg.mask_bce * l_bce + cfg.mask_dice * l_dice + cfg.point_l1 * l_l1 + cfg.point_bce * l_pb).mean()
    total = total + cfg.score_bce * l_score
    parts = {
        "loss": total,
        "mask_bce": l_bce.mean(),
        "dice": l_dice.mean(),
        "point_l1": l_l1.mean(),
        "point_bce": l_pb.mean(),
        "score": l_score,
    }
    logs = {k: float(v.detach()) for k, v in parts.items()}
    return total, logs
