"""A query-based referring head [ours, issue 32]: object queries that attend to the pixels and compare
with each other and with the words, one mask per query, and a referring score that picks among them.

The pixel-level heads (LAVT's, ``decoder.py``) decide every pixel from its own neighbourhood and its own
attended text vector; "the second circle from the left" needs the circles as things that can be
counted. This head follows the RES query heads (ReLA's region queries, Mask2Former-style decoders in
RES): ``N`` learned queries, each ``layers`` times

    Q ← Q + CrossAttn(Q, [M + P(x, y)])          (M: the decoder's stride-8 map, all stages fused)
    [Q; T'] ← SelfAttn([Q; T'])                    (queries with each other and with the words)
    Q ← Q + FFN(Q)

then a mask per query from the stride-4 pixel embedding ``E`` and a referring score per query:

    M_q = <MLP(q), E>,   s_q = w · q,   p(x) = Σ_q softmax(s)_q σ(M_q(x))

The head's output is the segmenter's usual 2-class logits, ``[0, logit p]`` (so the cross-entropy
of L_s is the binary cross-entropy of ``p``). No instance masks are used: which query takes which
object is learned from the referring masks alone. The encoder, the per-stage fusion (and SESM's
guidance) and the decoder's top-down path stay as they are; only the 1×1 head is replaced.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError
from .scene import fourier_positions


@dataclass
class QueryConfig:
    enabled: bool = False
    queries: int = 8
    layers: int = 3
    dim: int = 128
    heads: int = 4
    ffn: int = 256
    freqs: int = 4  # Fourier frequencies of the memory's (x, y) embedding

    def __post_init__(self) -> None:
        for key in ("queries", "layers", "dim", "heads", "ffn", "freqs"):
            if int(getattr(self, key)) < 1:
                raise UsageError(f"model.query.{key} must be ≥ 1, got {getattr(self, key)}")
        if self.dim % self.heads:
            raise UsageError(f"model.query.dim ({self.dim}) must be a multiple of model.query.heads ({self.heads})")


class _Layer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int):
        super().__init__()
        self.n1, self.n2, self.n3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.cross = nn.MultiheadAttention(d, heads, batch_first=True)
        self.self_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.GELU(), nn.Linear(ffn, d))

    def forward(self, q, mem, words, pad):
        q = q + self.cross(self.n1(q), mem, mem, need_weights=False)[0]
        x = self.n2(torch.cat([q, words], 1))
        n = q.shape[1]
        q = q + self.self_attn(x[:, :n], x, x, key_padding_mask=pad, need_weights=False)[0]
        return q + self.ffn(self.n3(q))


class QueryHead(nn.Module):
    """Queries → masks and referring scores → 2-class logits (module docstring)."""

    def __init__(self, channels: int, text_dim: int, cfg: QueryConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.queries = nn.Parameter(torch.randn(cfg.queries, d) * 0.02)
        self.mem_in = nn.Linear(channels, d)
        self.pix_in = nn.Conv2d(channels, d, 1)
        self.txt_in = nn.Linear(text_dim, d)
        self.pos = nn.Linear(4 * cfg.freqs, d)
        self.layers = nn.ModuleList([_Layer(d, cfg.heads, cfg.ffn) for _ in range(cfg.layers)])
        self.norm = nn.LayerNorm(d)
        self.mask_mlp = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, d))
        self.score = nn.Linear(d, 1)

    def forward(
        self,
        stride8: torch.Tensor,
        stride4: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        out_size: tuple[int, int],
    ) -> torch.Tensor:
        """``stride8`` (B, C, h, w) memory, ``stride4`` (B, C, H/4, W/4) pixel features, ``text`` (B, L, C_t),
        ``text_mask`` (B, L) true for real tokens → logits (B, 2, *out_size)."""
        b, _, h, w = stride8.shape
        pos = self.pos(fourier_positions(h, w, self.cfg.freqs, stride8.device, stride8.dtype))
        mem = self.mem_in(stride8.flatten(2).transpose(1, 2)) + pos
        words = self.txt_in(text.to(mem.dtype))
        pad = torch.cat(
            [torch.zeros(b, self.cfg.queries, dtype=torch.bool, device=mem.device), ~text_mask.to(mem.device)], 1
        )
        q = self.queries[None].expand(b, -1, -1)
        for layer in self.layers:
            q = layer(q, mem, words, pad)
        q = self.norm(q)
        emb = self.pix_in(stride4)  # (B, d, H4, W4)
        masks = torch.einsum("bqd,bdhw->bqhw", self.mask_mlp(q), emb) / self.cfg.dim**0.5
        weights = self.score(q).squeeze(-1).softmax(-1)  # (B, N)
        prob = (weights[:, :, None, None] * masks.sigmoid()).sum(1, keepdim=True)
        prob = F.interpolate(prob, size=out_size, mode="bilinear", align_corners=False).clamp(1e-6, 1 - 1e-6)
        return torch.cat([torch.zeros_like(prob), torch.logit(prob)], 1)
