"""The point generator and the PPT model f_θ (§3.1.1, Eqs. 1–3).

Per visited encoder stage n: V_n (projected to ``dim``, with a learned embedding of each
location's coordinates) and the words T are fused both ways — V'_n = V_n + CrossAttn(V_n, T),
T_n = T + CrossAttn(T, V_n), the bidirectional bridge of ETRIS [63] in its simplest form — then the
point queries read both (Eq. 1)::

    Q_{n+1} = CrossAttn(CrossAttn(Q_n, V'_n), T_n)

(each cross-attention a residual, layer-normed multi-head attention, followed by a feed-forward
layer). Q_1 is a learned K×dim embedding. On the last queries (Eq. 2): PointHead → M points
(p_k^m ∈ [0, 1]², sigmoid) with positive-point logits r_k^m; ScoreHead → referent logit c_k.

``reference_points`` [ours, in the manner of Deformable DETR, one of the detectors the paper
builds on]: each query also attends (one head) over the finest visited stage's V'_n, the
attention-weighted cell centre is its reference point, and PointHead's coordinates are offsets
from it in logit space — p = σ(logit(ref) + Δ). A plain MLP regression of absolute coordinates
(``reference_points: false``, the paper's wording) learns localisation far more slowly on our
CPU budget (docs/ppt.md).
The frozen mask decoder prompted with P_k gives s_k (Eq. 3); at inference the mask of argmax c_k
is the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn as nn

from ..errors import UsageError
from .config import GeneratorConfig
from .encoders import FrozenDualEncoder, FrozenMaskDecoder


class CrossAttn(nn.Module):
    """Residual multi-head cross-attention + layer norm (Vaswani et al.)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, q: torch.Tensor, kv: torch.Tensor, kv_pad: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm(q + self.attn(q, kv, kv, key_padding_mask=kv_pad, need_weights=False)[0])


class FFN(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.net(x))


def _mlp(dim: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, out))


@dataclass
class Output:
    """K predictions per sample (Eq. 3) before decoding: points B×K×M×2 in [0, 1], point logits
    r B×K×M, score logits c B×K."""

    points: torch.Tensor
    point_logits: torch.Tensor
    scores: torch.Tensor


class PointGenerator(nn.Module):
    """Eqs. 1–2: the only trained part of PPT."""

    def __init__(self, cfg: GeneratorConfig, channels: Sequence[int], word_dim: int):
        super().__init__()
        if max(cfg.stages) >= len(channels):
            raise UsageError(
                f"generator.stages {list(cfg.stages)}: the dual encoder has {len(channels)} stages "
                f"(0..{len(channels) - 1})"
            )
        self.cfg = cfg
        d = cfg.dim
        self.v_proj = nn.ModuleList([nn.Conv2d(channels[i], d, 1) for i in cfg.stages])
        self.pos = nn.Sequential(nn.Linear(2, d), nn.GELU(), nn.Linear(d, d))
        self.t_proj = nn.Linear(word_dim, d)
        n = len(cfg.stages)
        self.v_from_t = nn.ModuleList([CrossAttn(d, cfg.heads) for _ in range(n)])
        self.t_from_v = nn.ModuleList([CrossAttn(d, cfg.heads) for _ in range(n)])
        self.q_from_v = nn.ModuleList([CrossAttn(d, cfg.heads) for _ in range(n)])
        self.q_from_t = nn.ModuleList([CrossAttn(d, cfg.heads) for _ in range(n)])
        self.ffn = nn.ModuleList([FFN(d) for _ in range(n)])
        self.queries = nn.Parameter(torch.randn(cfg.queries, d) * 0.1)
        self.point_head = _mlp(d, cfg.points * 3)
        if cfg.reference_points:
            self.ref_q, self.ref_k = nn.Linear(d, d), nn.Linear(d, d)
        self.score_head = _mlp(d, 1)

    @staticmethod
    def _coords(h: int, w: int, device: torch.device) -> torch.Tensor:
        """Cell centres (h·w)×2, xy in [0, 1]."""
        ys, xs = torch.meshgrid(
            (torch.arange(h, device=device) + 0.5) / h, (torch.arange(w, device=device) + 0.5) / w, indexing="ij"
        )
        return torch.stack([xs, ys], -1).view(h * w, 2)

    def forward(self, feats: Sequence[torch.Tensor], words: torch.Tensor, word_mask: torch.Tensor) -> Output:
        b = words.shape[0]
        t0 = self.t_proj(words)
        pad = ~word_mask
        q = self.queries[None].expand(b, -1, -1)
        finest: tuple[torch.Tensor, torch.Tensor] | None = None
        for j, stage in enumerate(self.cfg.stages):
            f = self.v_proj[j](feats[stage])
            h, w = f.shape[-2:]
            xy = self._coords(h, w, f.device)
            v = f.flatten(2).transpose(1, 2) + self.pos(xy)[None]
            v2 = self.v_from_t[j](v, t0, pad)  # V'_n
            t_n = self.t_from_v[j](t0, v)  # T_n
            q = self.ffn[j](self.q_from_t[j](self.q_from_v[j](q, v2), t_n, pad))  # Eq. 1
            if finest is None or h * w > finest[0].shape[1]:
                finest = (v2, xy)
        pts = self.point_head(q).view(b, self.cfg.queries, self.cfg.points, 3)  # Eq. 2
        xy_logit = pts[..., :2]
        if self.cfg.reference_points and finest is not None:  # offsets from an attended reference point
            v2, xy = finest
            att = torch.einsum("bkd,bnd->bkn", self.ref_q(q), self.ref_k(v2)) / q.shape[-1] ** 0.5
            ref = (att.softmax(-1) @ xy).clamp(1e-3, 1 - 1e-3)  # B×K×2
            xy_logit = xy_logit + torch.logit(ref)[:, :, None]
        return Output(xy_logit.sigmoid(), pts[..., 2], self.score_head(q)[..., 0])


class PPTModel(nn.Module):
    """f_θ (Eq. 3): frozen encoders → point generator → frozen mask decoder. Only ``generator`` is
    a submodule (trained and checkpointed); the frozen parts are loaded by path."""

    def __init__(self, cfg: GeneratorConfig, encoders: FrozenDualEncoder, decoder: FrozenMaskDecoder):
        super().__init__()
        self.encoders, self.decoder = encoders, decoder
        self.generator = PointGenerator(cfg, encoders.channels, encoders.word_dim)
        self.image_size = decoder.image_size

    def forward(self, images: torch.Tensor, texts: Sequence[str]) -> tuple[Output, Any]:
        """The K predictions (before decoding) and the mask decoder's embedding of ``images``."""
        feats = self.encoders.dense(images)
        words, mask = self.encoders.words(texts)
        return self.generator(feats, words.to(images.device), mask.to(images.device)), self.decoder.embed(images)

    def decode(self, state: Any, out: Output, index: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Mask logits of query ``query[i]`` of sample ``index[i]`` (labels: r > 0 is positive)."""
        pts = out.points[index, query]
        lab = (out.point_logits[index, query] > 0).long()
        return self.decoder.decode(state, index, pts, lab)

    @torch.no_grad()
    def predict(
        self,
        images: torch.Tensor,
        texts: Sequence[str],
        guidance: str = "none",
        prior: Any = None,
        has_prior: Any = None,
    ) -> torch.Tensor:
        """The evaluator's interface: probabilities B×H×W of the most confident query's mask."""
        h, w = images.shape[-2:]
        x = (
            images
            if (h, w) == (self.image_size,) * 2
            else torch.nn.functional.interpolate(
                images, size=(self.image_size,) * 2, mode="bilinear", align_corners=False
            )
        )
        out, state = self(x, texts)
        idx = torch.arange(x.shape[0], device=x.device)
        logits = self.decode(state, out, idx, out.scores.argmax(1))
        prob = logits.sigmoid()[:, None]
        if (h, w) != tuple(prob.shape[-2:]):
            prob = torch.nn.functional.interpolate(prob, size=(h, w), mode="bilinear", align_corners=False)
        return prob[:, 0]
