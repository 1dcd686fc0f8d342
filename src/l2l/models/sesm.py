"""SESM — the Self-Evolving Segmentation Module (docs/spec.md §4; paper §3.2, Eqs. 1–3).

The segmenter fuses language at every encoder stage (LAVT's pixel-word attention module, PWAM);
SESM *adds* two fields on top of that fusion (the paper's "injecting semantic and structural cues
into the encoder", Table 3: "+SESM" on top of a segmenter that already reads the sentence).

LAVT's fusion of stage l with visual features ``V_l`` (B, C, H, W) and text tokens ``T`` (B, L, C_t):

    V'_l = V_l + σ(g(V̂_l)) ⊙ W_o W_mm(W_vis V̂_l ⊙ CrossAttn(V̂_l, T))

SESM on the fused ``V'_l`` with a guidance map ``G`` (B, 1, H0, W0) in [0, 1]:

* semantic field   ``S_l = CrossAttn(Q = V̂'_l, K = V = T W_t)`` (the spec's plain cross-attention,
  multi-head, padding tokens masked);
* structural field ``R_l = resize_area(G)``, ``F_l = Conv1x1([V̂'_l ; R_l])`` (C+1 → C);
* structural stream (Eq. 2), per stage: local ``Φ_l = W_l F_l`` (1×1, keeps positions) or
  global ``Φ_l = softmax((V_l W_q)(F_l W_k)ᵀ / √d)(F_l W_v)``;
* dynamic gating (Eq. 1)  ``Z_l = α_l S_l + β_l Φ_l``, ``(α_l, β_l) = softmax(two learnable
  logits)``; ablations (Table 4): semantic only, structural only, fixed α = β = 0.5;
* gated residual (Eq. 3)  ``V''_l = V'_l + σ(g_l(V̂'_l)) ⊙ W_o Z_l`` with one gate per token
  (``g_l``: C → C/4 → 1) and ``W_o`` (the last layer of the Z-path) initialised to zero, so
  that the encoder starts exactly as the plain visual encoder [ours].

So "no SESM", "semantic only", "structural only", "fixed 0.5/0.5" and the full module are five
different models (tested). ``sesm.base_fusion: false`` builds the layout of versions before
2026-12-07 [ours, kept as a switch]: SESM's streams *replace* the fusion (its semantic stream is the
PWAM), which makes "semantic only" the no-SESM model and "structural only" a model that reads no
text (issue 33).

[ours] Every Z-path input uses ``V̂ = LayerNorm(V)`` (pre-norm; the residual adds to the raw
``V``): encoder features are large (mean |V| ≈ 9–18 for EfficientNet-Lite0), which saturated the
attention softmax (LAVT normalises its query path too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError


@dataclass
class SESMConfig:
    enabled: bool = True  # False = the baseline: semantic stream only, no guidance input
    streams: str = "both"  # both | semantic | structural   (Table 4)
    gating: str = "learned"  # learned | fixed              (Table 4: fixed α = β = 0.5)
    stage_modes: tuple[str, str, str, str] = ("local", "local", "global", "global")  # Table 5 best
    heads: int = 4  # heads of the semantic cross-attention [ours]
    prior_dropout: float = 0.2  # share of training samples whose guidance is replaced by "none" [ours]
    null_map_size: int = 16  # resolution of the learned "no guidance" map [ours]
    base_fusion: bool = True  # SESM added on top of LAVT's fusion (the paper); false: the layout before 2026-12-07

    def __post_init__(self) -> None:
        if self.streams not in ("both", "semantic", "structural"):
            raise UsageError(f"sesm.streams must be both | semantic | structural, got {self.streams!r}")
        if self.gating not in ("learned", "fixed"):
            raise UsageError(f"sesm.gating must be learned | fixed, got {self.gating!r}")
        self.stage_modes = tuple(self.stage_modes)  # type: ignore[assignment]
        if len(self.stage_modes) != 4 or any(m not in ("local", "global") for m in self.stage_modes):
            raise UsageError(f"sesm.stage_modes needs 4 of local | global, got {self.stage_modes}")
        if not self.enabled:
            self.streams = "semantic"

    @property
    def uses_guidance(self) -> bool:
        return self.enabled and self.streams != "semantic"


def _heads_for(c: int, wanted: int) -> int:
    h = max(1, min(wanted, c))
    while c % h:
        h -= 1
    return h


class StructuralStream(nn.Module):
    """Φ_l from V_l and the resized guidance R_l (Eq. 2)."""

    def __init__(self, c: int, mode: str):
        super().__init__()
        self.mode = mode
        self.field = nn.Conv2d(c + 1, c, 1)  # F_l = Conv1x1([V_l ; R_l])
        if mode == "local":
            self.w = nn.Conv2d(c, c, 1)
        else:
            self.q, self.k, self.v = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)

    def forward(self, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        f = self.field(torch.cat([v, r], dim=1))
        if self.mode == "local":
            return self.w(f)
        b, c, h, w = v.shape
        vt, ft = v.flatten(2).transpose(1, 2), f.flatten(2).transpose(1, 2)
        attn = torch.softmax(self.q(vt) @ self.k(ft).transpose(1, 2) / math.sqrt(c), dim=-1)
        return (attn @ self.v(ft)).transpose(1, 2).reshape(b, c, h, w)


class SESMFields(nn.Module):
    """SESM's semantic and structural fields, gated (Eqs. 1–3), added to an already fused stage."""

    def __init__(self, c: int, text_dim: int, mode: str, cfg: SESMConfig):
        super().__init__()
        self.streams, self.gating = cfg.streams, cfg.gating
        if self.streams in ("both", "semantic"):
            self.semantic = nn.MultiheadAttention(
                c, _heads_for(c, cfg.heads), kdim=text_dim, vdim=text_dim, batch_first=True
            )
        if self.streams in ("both", "structural"):
            self.structural = StructuralStream(c, mode)
        if self.streams == "both" and self.gating == "learned":
            self.gate_logits = nn.Parameter(torch.zeros(2))  # (α_l, β_l) = softmax(·) (Eq. 1)
        self.norm = nn.LayerNorm(c)
        self.token_gate = nn.Sequential(nn.Linear(c, max(c // 4, 1)), nn.ReLU(), nn.Linear(max(c // 4, 1), 1))
        self.out = nn.Conv2d(c, c, 1)  # W_o, zero-initialised
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)  # type: ignore[arg-type]  # Conv2d has a bias by default

    def stream_weights(self) -> tuple[float, float]:
        return _stream_weights(self)

    def forward(
        self, v: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor, guidance: torch.Tensor | None
    ) -> torch.Tensor:
        b, c, h, w = v.shape
        vt = self.norm(v.flatten(2).transpose(1, 2))
        vn = vt.transpose(1, 2).reshape(b, c, h, w)
        alpha, beta = _alpha_beta(self)
        z = torch.zeros_like(v)
        if hasattr(self, "semantic"):
            att, _ = self.semantic(vt, text, text, key_padding_mask=~text_mask, need_weights=False)
            z = z + alpha * att.transpose(1, 2).reshape(b, c, h, w)
        if hasattr(self, "structural"):
            if guidance is None:
                raise UsageError("the structural stream needs a guidance map")
            z = z + beta * self.structural(vn, F.adaptive_avg_pool2d(guidance, (h, w)))
        gate = torch.sigmoid(self.token_gate(vt)).transpose(1, 2).reshape(b, 1, h, w)
        return v + gate * self.out(z)  # Eq. 3


def _stream_weights(m: Any) -> tuple[float, float]:
    if m.streams == "semantic":
        return 1.0, 0.0
    if m.streams == "structural":
        return 0.0, 1.0
    if m.gating == "fixed":
        return 0.5, 0.5
    a, b = torch.softmax(m.gate_logits, 0).tolist()
    return a, b


def _alpha_beta(m: Any) -> tuple[Any, Any]:
    if m.streams == "both" and m.gating == "learned":
        alpha, beta = torch.softmax(m.gate_logits, 0)
        return alpha, beta
    return _stream_weights(m)


class StageFusion(nn.Module):
    """Language fusion of one encoder stage (LAVT's PWAM), with SESM's fields on top when enabled
    (module docstring); with ``sesm.base_fusion: false`` the earlier layout, where SESM's streams are
    the fusion."""

    def __init__(self, c: int, text_dim: int, mode: str, cfg: SESMConfig):
        super().__init__()
        added = cfg.enabled and cfg.base_fusion
        self.streams, self.gating = ("semantic", "learned") if added else (cfg.streams, cfg.gating)
        if self.streams in ("both", "semantic"):
            self.semantic = nn.MultiheadAttention(
                c, _heads_for(c, cfg.heads), kdim=text_dim, vdim=text_dim, batch_first=True
            )
            self.sem_vis = nn.Sequential(nn.Conv2d(c, c, 1), nn.GELU())  # W_vis
            self.sem_mm = nn.Sequential(nn.Conv2d(c, c, 1), nn.GELU())  # W_mm
        if self.streams in ("both", "structural"):
            self.structural = StructuralStream(c, mode)
        if self.streams == "both" and self.gating == "learned":
            self.gate_logits = nn.Parameter(torch.zeros(2))  # (α_l, β_l) = softmax(·) (Eq. 1)
        self.norm = nn.LayerNorm(c)  # pre-norm of the Z-path input [ours]; the residual keeps raw V_l
        self.token_gate = nn.Sequential(nn.Linear(c, max(c // 4, 1)), nn.ReLU(), nn.Linear(max(c // 4, 1), 1))
        self.out = nn.Conv2d(c, c, 1)  # W_o: the last layer of the Z-path, zero-initialised
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)  # type: ignore[arg-type]  # Conv2d has a bias by default
        self.sesm = SESMFields(c, text_dim, mode, cfg) if added else None

    def stream_weights(self) -> tuple[float, float]:
        """(α_l, β_l) of SESM's gating (Eq. 1); of the fusion itself in the earlier layout."""
        return _stream_weights(self.sesm if self.sesm is not None else self)

    def forward(
        self, v: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor, guidance: torch.Tensor | None
    ) -> torch.Tensor:
        b, c, h, w = v.shape
        vt = self.norm(v.flatten(2).transpose(1, 2))  # (B, N, C), normalised: encoder features are large
        vn = vt.transpose(1, 2).reshape(b, c, h, w)
        z = torch.zeros_like(v)
        alpha, beta = _alpha_beta(self)
        if hasattr(self, "semantic"):
            att, _ = self.semantic(vt, text, text, key_padding_mask=~text_mask, need_weights=False)
            s = self.sem_mm(self.sem_vis(vn) * att.transpose(1, 2).reshape(b, c, h, w))
            z = z + alpha * s
        if hasattr(self, "structural"):
            if guidance is None:
                raise UsageError("the structural stream needs a guidance map")
            r = F.adaptive_avg_pool2d(guidance, (h, w))  # R_l: area-average resize
            z = z + beta * self.structural(vn, r)
        gate = torch.sigmoid(self.token_gate(vt)).transpose(1, 2).reshape(b, 1, h, w)  # one gate per token
        fused = v + gate * self.out(z)  # Eq. 3 (LAVT's gated residual in the base fusion)
        return fused if self.sesm is None else self.sesm(fused, text, text_mask, guidance)
