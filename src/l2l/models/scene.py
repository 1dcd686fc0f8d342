"""Scene reasoning [ours, issue 32]: a vision–language transformer over one stage's whole grid and the words.

Per-stage fusion (LAVT's pixel-word attention, SESM) gives every pixel its own attended text vector:
a pixel sees the sentence and its receptive field, but not the other objects. "The second circle from
the left" and "the square left of the heart" are decided by comparing objects across the scene.
This block lets every grid cell and every word attend to each other — ``position: encoder``: after
the fusion of stage ``stage`` (1-based) and before the next stage, so that the stages after it and the
decoder read scene-aware features; ``position: decoder``: on the decoder's stride-8 map (all four
fused stages merged), before it meets stage 1, so that the pretrained encoder's stages never see a
changed input (as CRIS and ReLA place their vision–language transformer after the encoder):

    X = [V_l W_v + P(x, y) + e_vis ; T W_t + e_txt]             (N + L tokens, width d)
    X ← TransformerLayer(X)  × ``layers``  (pre-norm, padding words masked)
    V'_l = V_l + W_o X[:N]                                      (W_o zero-initialised)

``P`` embeds each cell's centre (x, y) in [-1, 1] with Fourier features; ``W_o`` starts at zero, so
a model with this block is, at initialisation, exactly the model without it (tested). The paper's
structure is kept: a hierarchical encoder, language fused at every stage (and SESM's guidance
entering at every stage); the block adds global reasoning at one scale, where the issue's
measurements showed the student weakest (relation and ordinal expressions, docs/model.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import UsageError


@dataclass
class SceneConfig:
    enabled: bool = False
    position: str = "encoder"  # encoder: after stage ``stage``'s fusion | decoder: on the decoder's stride-8 map
    stage: int = 2  # 1-based (position encoder): the block runs after stage ``stage``'s fusion (2 = stride 8)
    layers: int = 3
    dim: int = 128
    heads: int = 4
    ffn: int = 256
    freqs: int = 4  # Fourier frequencies of the (x, y) embedding

    def __post_init__(self) -> None:
        if self.position not in ("encoder", "decoder"):
            raise UsageError(f"model.scene.position must be encoder or decoder, got {self.position!r}")
        if self.stage not in (1, 2, 3, 4):
            raise UsageError(f"model.scene.stage must be 1, 2, 3 or 4 (a 1-based encoder stage), got {self.stage}")
        for key in ("layers", "dim", "heads", "ffn", "freqs"):
            if int(getattr(self, key)) < 1:
                raise UsageError(f"model.scene.{key} must be ≥ 1, got {getattr(self, key)}")
        if self.dim % self.heads:
            raise UsageError(f"model.scene.dim ({self.dim}) must be a multiple of model.scene.heads ({self.heads})")


def fourier_positions(h: int, w: int, freqs: int, device, dtype) -> torch.Tensor:
    """(H·W, 4·freqs) sin/cos features of the cell centres' (x, y) in [-1, 1], row-major."""
    ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h * 2 - 1
    xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(h * w, 2)  # (N, 2): x, y
    scales = (2.0 ** torch.arange(freqs, device=device, dtype=dtype)) * (math.pi / 2)
    ang = grid[:, :, None] * scales  # (N, 2, F)
    return torch.cat([ang.sin(), ang.cos()], -1).flatten(1)


class SceneReasoner(nn.Module):
    """Joint self-attention over a stage's grid cells and the sentence's tokens (module docstring)."""

    def __init__(self, channels: int, text_dim: int, cfg: SceneConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.vis_in = nn.Linear(channels, d)
        self.txt_in = nn.Linear(text_dim, d)
        self.pos = nn.Linear(4 * cfg.freqs, d)
        self.kind = nn.Parameter(torch.zeros(2, d))  # e_vis, e_txt
        nn.init.normal_(self.kind, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d, cfg.heads, cfg.ffn, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, channels)  # W_o, zero at start: the block begins as the identity
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, v: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """``v`` (B, C, H, W), ``text`` (B, L, C_t), ``text_mask`` (B, L) true for real tokens → (B, C, H, W)."""
        b, c, h, w = v.shape
        n = h * w
        pos = self.pos(fourier_positions(h, w, self.cfg.freqs, v.device, v.dtype))
        xv = self.vis_in(v.flatten(2).transpose(1, 2)) + pos + self.kind[0]
        xt = self.txt_in(text.to(xv.dtype)) + self.kind[1]
        x = torch.cat([xv, xt], 1)
        pad = torch.cat([torch.zeros(b, n, dtype=torch.bool, device=v.device), ~text_mask.to(v.device)], 1)
        x = self.layers(x, src_key_padding_mask=pad)
        delta = self.out(self.norm(x[:, :n]))  # (B, N, C)
        return v + delta.transpose(1, 2).reshape(b, c, h, w)
