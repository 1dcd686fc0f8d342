"""Sentence-level paths [ours, issue 32]: FiLM by the pooled sentence and a direct sentence–pixel match.

Per-stage fusion (LAVT's pixel-word attention, ``sesm.py``) reaches the output through the gated
residual of every stage and the whole decoder. The stand-in grounder (``foundation/grounder.py``)
learns attributes fast through two short paths beside its transformer; this module gives the
segmenter the same two, on the mean-pooled word features ``s`` (padding excluded):

    FiLM, after every stage's fusion:   V'_l = V_l ⊙ (1 + γ_l(s)) + β_l(s)        (γ_l, β_l linear, zero-initialised)
    match, at the head:                 logit(x) += <W_p E(x), W_s s> / √d + b    (E: the decoder's stride-4 map)

CRIS's text-to-pixel alignment is the second path (its contrastive loss is the pixel-wise BCE of
L_s on this score). The FiLM layers start at the identity and the match's ``W_s`` at zero, so at
initialisation the model equals the one without this module (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import UsageError


@dataclass
class SentenceConfig:
    enabled: bool = False
    film: bool = True  # FiLM of every stage's fused features by the pooled sentence
    match: bool = True  # the sentence–pixel score added to the head's foreground logit
    dim: int = 64  # width of the match's embeddings

    def __post_init__(self) -> None:
        if int(self.dim) < 1:
            raise UsageError(f"model.sentence.dim must be ≥ 1, got {self.dim}")


def pooled(text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the real tokens' features: (B, L, C), (B, L) → (B, C)."""
    m = mask.to(text.dtype)[..., None]
    return (text * m).sum(1) / m.sum(1).clamp(min=1.0)


class FiLM(nn.Module):
    def __init__(self, channels: int, text_dim: int):
        super().__init__()
        self.gamma, self.beta = nn.Linear(text_dim, channels), nn.Linear(text_dim, channels)
        for lin in (self.gamma, self.beta):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return v * (1 + self.gamma(s)[..., None, None]) + self.beta(s)[..., None, None]


class SentenceMatch(nn.Module):
    def __init__(self, channels: int, text_dim: int, dim: int):
        super().__init__()
        self.pix = nn.Conv2d(channels, dim, 1)
        self.txt = nn.Linear(text_dim, dim)
        nn.init.zeros_(self.txt.weight)
        nn.init.zeros_(self.txt.bias)
        self.scale = dim**-0.5

    def forward(self, e: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W), (B, C_t) → (B, 1, H, W) scores."""
        return torch.einsum("bdhw,bd->bhw", self.pix(e), self.txt(s))[:, None] * self.scale


class SentencePaths(nn.Module):
    def __init__(self, stage_channels: tuple[int, ...], decoder_dim: int, text_dim: int, cfg: SentenceConfig):
        super().__init__()
        self.cfg = cfg
        self.films = nn.ModuleList([FiLM(c, text_dim) for c in stage_channels]) if cfg.film else None
        self.match = SentenceMatch(decoder_dim, text_dim, cfg.dim) if cfg.match else None
