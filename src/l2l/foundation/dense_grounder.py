"""The grounder's retired dense bodies (``model.body=transformer`` — the first shipped grounder,
``builtin:synthpool-grounder-dense`` — and ``film``): image cells scored directly, a box per cell.

Kept out of the main path (issue 35 step 7) so that the results made with them can be reproduced;
the default body is ``objects`` (:mod:`l2l.foundation.object_grounder`), and the config and predictor
of every body are :mod:`l2l.foundation.grounder`'s.

Dense architecture: the pool-pretrained conv encoder (``builtin:synthpool-conv`` initialises it) gives
image tokens at 1/8 (12×12 at 96 px; stages 1/8, 1/16 and 1/32 concatenated) with a learned
position embedding; the sentence's frozen MiniLM-L6 token features (real pretrained weights,
cached per sentence) are projected to the same width; a transformer encoder reads the joint
sequence (relations and ordinals need every object and every word at once); before it, the
mean-pooled sentence modulates every image token (FiLM), and a direct match of each token with
the sentence is added to its score (attributes are learned fast through these two paths). Each image token
predicts a score (is the referred object's centre in my cell?) and a box (centre offset, log
width and height, in cells). Training: soft cross-entropy of the scores against a Gaussian
around the true centre, L1 of the boxes weighted by the same Gaussian. Inference: the box of
the best cell; the confidence is the score mass within one cell of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import normalize
from ..nets.backbones import ConvEncoder

if TYPE_CHECKING:
    from .grounder import GrounderConfig


class FiLMBlock(nn.Module):
    """A residual block at 1/8 whose features are modulated by the sentence (FiLM, Perez et al. 2018):
    each block attends over the words with its own learned query, so successive blocks can read
    different parts of the sentence (the noun, then the anchor, then the relation)."""

    def __init__(self, dim: int, text_dim: int, dilation: int):
        super().__init__()
        self.query = nn.Parameter(torch.randn(text_dim) * 0.02)
        self.film = nn.Linear(2 * text_dim, 2 * dim)
        self.conv1 = nn.Conv2d(2 * dim + 2, dim, 1)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=dilation, dilation=dilation)
        self.norm = nn.GroupNorm(8, dim, affine=False)

    def forward(self, x, words, word_mask, sentence, coords):
        a = (words @ self.query).masked_fill(~word_mask, float("-inf")).softmax(-1)
        picked = (a.unsqueeze(-1) * words).sum(1)
        gamma, beta = self.film(torch.cat([picked, sentence], -1))[..., None, None].chunk(2, 1)
        glob = x.amax((2, 3), keepdim=True).expand_as(x)  # what is elsewhere in the image
        h = F.relu(self.conv1(torch.cat([x, glob, coords], 1)))
        h = self.norm(self.conv2(h)) * (1 + gamma) + beta
        return x + F.relu(h)


class GrounderNet(nn.Module):
    def __init__(self, cfg: GrounderConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.conv_channels
        self.encoder = ConvEncoder(c)
        self.img_proj = nn.Conv2d(c[1] + c[2] + c[3], cfg.dim, 1)
        self.pos = nn.Parameter(torch.randn(cfg.grid * cfg.grid, cfg.dim) * 0.02)
        if cfg.body == "transformer":
            self.text_proj = nn.Linear(cfg.text_dim, cfg.dim)
            self.film = nn.Linear(cfg.text_dim, 2 * cfg.dim)  # the sentence modulates every image token
        self.match_txt = nn.Linear(cfg.text_dim, cfg.dim)  # a direct cell–sentence match added to the score
        if cfg.body == "film":
            self.blocks = nn.ModuleList([FiLMBlock(cfg.dim, cfg.text_dim, d) for d in cfg.dilations])
        else:
            self.kind = nn.Parameter(torch.zeros(2, cfg.dim))
            layer = nn.TransformerEncoderLayer(
                cfg.dim, cfg.heads, 2 * cfg.dim, dropout=0.0, batch_first=True, norm_first=True
            )
            self.body = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(cfg.dim), nn.Linear(cfg.dim, 5))

    def forward(
        self, images: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell scores B×G² and boxes B×G²×4 (dx, dy, log w, log h in cells) of images B×3×S×S."""
        return self.fuse(self.encoder(normalize(images)), words, word_mask)

    def fuse(
        self, feats: list[torch.Tensor], words: torch.Tensor, word_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores and boxes from the encoder's stage features (precomputed when the encoder is frozen)."""
        g = self.cfg.grid
        up = [F.interpolate(f, size=(g, g), mode="bilinear", align_corners=False) for f in feats[1:]]
        m = word_mask.unsqueeze(-1).float()
        sentence = (words * m).sum(1) / m.sum(1).clamp(min=1)
        img = self.img_proj(torch.cat(up, 1))
        if self.cfg.body == "film":
            c = (torch.arange(g, dtype=img.dtype, device=img.device) + 0.5) / g * 2 - 1
            coords = torch.stack(torch.meshgrid(c, c, indexing="ij")[::-1]).expand(img.shape[0], 2, g, g)
            h = img + self.pos.t().reshape(1, -1, g, g)
            for blk in self.blocks:
                h = blk(h, words, word_mask, sentence, coords)
            h = h.flatten(2).transpose(1, 2)
        else:
            gamma, beta = self.film(sentence).unsqueeze(1).chunk(2, -1)
            img = img.flatten(2).transpose(1, 2) * (1 + gamma) + beta + self.pos + self.kind[0]
            seq = torch.cat([img, self.text_proj(words) + self.kind[1]], 1)
            pad = torch.cat([torch.zeros(img.shape[:2], dtype=torch.bool, device=img.device), ~word_mask], 1)
            h = self.body(seq, src_key_padding_mask=pad)[:, : g * g]
        out = self.head(h)
        match = (h * self.match_txt(sentence).unsqueeze(1)).sum(-1) / self.cfg.dim**0.5
        return out[..., 0] + match, out[..., 1:]


def cell_centres(grid: int) -> torch.Tensor:
    c = torch.arange(grid, dtype=torch.float32) + 0.5
    ys, xs = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], 1)  # G²×2, in cells


def decode_boxes(raw: torch.Tensor, grid: int) -> torch.Tensor:
    """B×G²×4 raw outputs → boxes cx, cy, w, h in cells."""
    cc = cell_centres(grid).to(raw.device)
    return torch.cat([cc + raw[..., :2], raw[..., 2:].clamp(-4, 3).exp()], -1)


def boxes_from(score: torch.Tensor, raw: torch.Tensor, grid: int, sizes) -> list[tuple[list[float], float]]:
    prob = score.softmax(-1)
    boxes = decode_boxes(raw, grid)
    best = prob.argmax(-1)
    near = prob.view(-1, grid, grid)
    out = []
    for i, k in enumerate(best.tolist()):
        r, c = divmod(k, grid)
        conf = float(near[i, max(0, r - 1) : r + 2, max(0, c - 1) : c + 2].sum())
        cx, cy, w, h = boxes[i, k].tolist()
        H, W = sizes[i]
        sx, sy = W / grid, H / grid
        x0, y0 = max(0.0, (cx - w / 2) * sx), max(0.0, (cy - h / 2) * sy)
        x1, y1 = min(float(W), (cx + w / 2) * sx), min(float(H), (cy + h / 2) * sy)
        out.append(([x0, y0, x1, y1], min(conf, 1.0)))
    return out
