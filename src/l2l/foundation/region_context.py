"""Region embeddings that see their scene: how the dual encoder tells which of a scene's objects a
sentence means (``DualEncoderConfig.regions``; ``DualEncoder.encode_regions``).

A crop shows what its object looks like, never where it stands or what is around it, so "the
left-most ring", "the second star from the top" or "the ring left of the blue star" are guesses
among look-alikes for a crop encoder (text → crop top-1 40.6 % on SynthRef val, docs/foundation.md).
Real models answer this with a region prompt on the whole image — Alpha-CLIP (Sun et al., CVPR 2024)
feeds CLIP the region as an extra alpha channel, red-circle prompting (Shtedritski et al., ICCV
2023) draws it. Ours pools the whole scene's features *relative to the region's box*:

* the scene goes through the image tower once (``scene_size`` px); its stage features at 1/8,
  1/16 and 1/32 are brought to the 1/8 grid and reduced to ``context_dim`` channels (a 1×1
  convolution), giving ``M`` (``context_dim`` × g × g);
* for a box, seven cell weightings of the grid: *inside* (each cell's overlap with the box), the
  four half-planes beyond its edges (*left* of x0, *right* of x1, *above* y0, *below* y1; cells
  by their centres), the *whole* scene and *near* (a Gaussian of the distance from the box, zero
  inside it: "beside", "closest to");
* pooled: inside, whole and near by their weighted mean; inside and the half-planes also by their
  masked maximum (is there such a thing over there?), near by the maximum of the weighted features,
  and the half-planes by their sum over cells ÷ (g²/16) (how many — an ordinal counts the
  look-alikes before it);
* with the crop's own features (the crop tower's pooled stages: appearance at ``crop_size``) and
  the box geometry (centre, width, height in [-1, 1]), a three-layer MLP maps all of it to the
  shared embedding space.

Training pairs a region with a sentence of the pretraining world's shifted dialect
(:func:`l2l.foundation.language.expressions`: never SynthRef's templates) and scores it with
:func:`region_loss` — the sentence must pick its region among its own scene's regions (the
retrieval the issue measures) and among the whole batch's.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

GEOMETRY = 4  # centre x, centre y, width, height
NEAR = 0.12  # σ of the near weighting, as a fraction of the image side


def region_weights(boxes: torch.Tensor, grid: int, near: float = NEAR) -> torch.Tensor:
    """Cell weightings R×7×g² of boxes R×4 (x0, y0, x1, y1 as fractions of the image side): inside
    (overlap of each cell with the box, as a fraction of the cell), left, right, above, below (cells
    whose centre lies beyond that edge), whole (all ones) and near (exp(−d²/2σ²) of the distance d
    of a cell's centre from the box, σ = ``near`` side; zero inside it)."""
    edges = torch.arange(grid + 1, dtype=boxes.dtype, device=boxes.device) / grid
    lo, hi, centre = edges[:-1], edges[1:], (edges[:-1] + edges[1:]) / 2
    x0, y0, x1, y1 = (boxes[:, i : i + 1] for i in range(4))
    ox = (torch.minimum(x1, hi) - torch.maximum(x0, lo)).clamp(min=0) * grid  # R×g
    oy = (torch.minimum(y1, hi) - torch.maximum(y0, lo)).clamp(min=0) * grid
    inside = oy[:, :, None] * ox[:, None, :]
    ones = torch.ones_like(inside)
    left = ones * (centre < x0)[:, None, :]
    right = ones * (centre > x1)[:, None, :]
    above = ones * (centre < y0)[:, :, None]
    below = ones * (centre > y1)[:, :, None]
    dx = (x0 - centre).clamp(min=0) + (centre - x1).clamp(min=0)  # R×g: distance of each column from the box
    dy = (y0 - centre).clamp(min=0) + (centre - y1).clamp(min=0)
    d2 = dy[:, :, None] ** 2 + dx[:, None, :] ** 2
    close = torch.exp(-d2 / (2 * near**2)) * (d2 > 0)
    return torch.stack([inside, left, right, above, below, ones, close], 1).flatten(2)


class RegionContext(nn.Module):
    """Scene stage features + crop features + boxes → unit region embeddings (module docstring)."""

    def __init__(self, channels: tuple[int, ...], crop_dim: int, context_dim: int, fuse_dim: int, embed_dim: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels[1] + channels[2] + channels[3], context_dim, 1)
        # inside, whole and near means, 5 maxima (inside + half-planes), the near-weighted maximum, 4 half-plane counts
        n_in = 13 * context_dim + crop_dim + GEOMETRY
        self.fuse = nn.Sequential(
            nn.Linear(n_in, fuse_dim),
            nn.GELU(),
            nn.Linear(fuse_dim, fuse_dim),
            nn.GELU(),
            nn.Linear(fuse_dim, embed_dim),
        )

    def context_map(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """B×C×g×g at the 1/8 grid of the scene's stage features."""
        g = feats[1].shape[-1]
        up = [feats[1]] + [F.interpolate(f, size=(g, g), mode="bilinear", align_corners=False) for f in feats[2:]]
        return self.reduce(torch.cat(up, 1))

    def forward(
        self, feats: list[torch.Tensor], crop_feats: torch.Tensor, boxes: torch.Tensor, owner: torch.Tensor
    ) -> torch.Tensor:
        """Unit embeddings R×D of boxes R×4 (fractions of the side) in scenes ``owner`` (R indices into
        the B scenes whose stage features are ``feats``); ``crop_feats`` R×crop_dim."""
        ctx = self.context_map(feats)
        g = ctx.shape[-1]
        m = ctx.flatten(2)[owner]  # R×C×g²
        w = region_weights(boxes, g)  # R×7×g²
        sums = torch.einsum("rkn,rcn->rkc", w, m)
        inside_mean = sums[:, 0] / w[:, 0].sum(-1, keepdim=True).clamp(min=1e-6)
        whole_mean = sums[:, 5] / (g * g)
        near_mean = sums[:, 6] / w[:, 6].sum(-1, keepdim=True).clamp(min=1e-6)
        near_max = (m * w[:, 6:7]).amax(-1)  # features are weighted before the maximum: near things count more
        counts = sums[:, 1:5] / (g * g / 16)
        present = (w[:, :5] > 0).unsqueeze(2)  # R×5×1×g²
        maxima = m.unsqueeze(1).masked_fill(~present, float("-inf")).amax(-1)
        maxima = torch.where(torch.isfinite(maxima), maxima, torch.zeros_like(maxima))  # an empty half-plane
        geom = torch.stack(
            [
                boxes[:, 0] + boxes[:, 2] - 1,
                boxes[:, 1] + boxes[:, 3] - 1,
                boxes[:, 2] - boxes[:, 0],
                boxes[:, 3] - boxes[:, 1],
            ],
            1,
        )
        x = torch.cat(
            [inside_mean, whole_mean, near_mean, near_max, maxima.flatten(1), counts.flatten(1), crop_feats, geom], 1
        )
        return F.normalize(self.fuse(x), dim=-1)


def region_loss(
    regions: torch.Tensor,
    texts: torch.Tensor,
    scale: torch.Tensor,
    target: torch.Tensor,
    region_owner: torch.Tensor,
    text_owner: torch.Tensor,
    batch_weight: float = 0.5,
) -> torch.Tensor:
    """Cross-entropy of each sentence (T×D) choosing its ``target`` region (indices into R×D) among
    its own scene's regions, plus ``batch_weight`` × the symmetric InfoNCE among the whole batch's
    (sentence → region over all regions; region → sentence for the regions that have a sentence)."""
    logits = scale.exp().clamp(max=100) * texts @ regions.t()
    same = text_owner[:, None] == region_owner[None, :]
    within = F.cross_entropy(logits.masked_fill(~same, float("-inf")), target)
    t2r = F.cross_entropy(logits, target)
    r2t = F.cross_entropy(logits[:, target].t(), torch.arange(len(target), device=logits.device))
    return within + batch_weight * 0.5 * (t2r + r2t)
