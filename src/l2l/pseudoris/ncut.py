"""Unsupervised object discovery for Pseudo-RIS's mask selection (App. F, Fig. 8): our substitute for CutLER.

The paper keeps, of SAM's ~120 automatic masks, the ~5 with the highest IoU with CutLER's masks.
CutLER's masks come from MaskCut: a normalised cut (Shi & Malik) on a self-supervised ViT's patch
features, repeated with the found object taken out of the graph, then a detector self-trained on
them. We have neither DINO nor a CutLER checkpoint; the closest honest thing is MaskCut itself on
the features of the pool-pretrained encoder (``builtin:synthpool-conv``, the stand-in for ImageNet
features) — no detector self-training, no CRF. It is named "ncut" everywhere, never CutLER.

Per image, with ``F`` the encoder's stride-8 and stride-16 features (the latter upsampled, both
L2-normalised per position, concatenated) over the ``N`` grid cells still in the graph:

    W_ij = 1 if cos(F_i, F_j) ≥ τ else ε                    (MaskCut's affinity, τ = 0.15)
    (D − W) x = λ D x,  x the eigenvector of the second-smallest λ
    foreground = {i : x_i > t} on the side holding argmax |x|, t the split of lowest Ncut
                 (Shi & Malik's sweep; MaskCut's t = mean(x) is one of the candidates);
                 flipped when it holds two or more of the grid's corners (a background)

and the cells found are removed from the graph before the next cut (``masks`` cuts at most). The
cell masks are upsampled to the image (bilinear, 0.5).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def normalized_cut(feats: torch.Tensor, keep: torch.Tensor, tau: float = 0.15, eps: float = 1e-5) -> torch.Tensor:
    """One bipartition of the cells ``keep`` (bool, (N,)) of ``feats`` (N, d), L2-normalised rows.
    Returns the foreground cells (bool, (N,)), a subset of ``keep``; empty when nothing can be cut."""
    idx = torch.nonzero(keep).flatten()
    out = torch.zeros_like(keep)
    if idx.numel() < 3:
        return out
    f = feats[idx].double()
    w = torch.where(f @ f.t() >= tau, torch.ones((), dtype=f.dtype), torch.full((), eps, dtype=f.dtype))
    d = w.sum(1)
    dm = d.rsqrt()
    lap = torch.eye(len(idx), dtype=f.dtype) - dm[:, None] * w * dm[None, :]  # D^-1/2 (D - W) D^-1/2
    _, vecs = torch.linalg.eigh(lap)
    x = dm * vecs[:, 1]  # the generalised eigenvector: x = D^-1/2 y
    fg = _best_split(x, w, d)
    if not fg[torch.argmax(x.abs())]:
        fg = ~fg
    out[idx[fg]] = True
    return out


def _best_split(x: torch.Tensor, w: torch.Tensor, d: torch.Tensor, candidates: int = 32) -> torch.Tensor:
    """The split ``x > t`` of lowest Ncut(A, B) = cut/vol(A) + cut/vol(B) over ``candidates`` thresholds
    at quantiles of ``x`` (Shi & Malik's splitting point; MaskCut takes ``t = mean(x)``, which is
    among the candidates)."""
    ts = torch.cat([torch.quantile(x, torch.linspace(0.02, 0.98, candidates, dtype=x.dtype)), x.mean()[None]])
    sides = x[None, :] > ts[:, None]  # (T, N)
    a = sides.to(w.dtype)
    vol_a = a @ d
    vol_b = d.sum() - vol_a
    assoc = ((a @ w) * a).sum(1)  # Σ_{i,j ∈ A} w_ij
    cut = vol_a - assoc
    ncut = cut / vol_a.clamp(min=1e-12) + cut / vol_b.clamp(min=1e-12)
    ncut = torch.where((vol_a > 0) & (vol_b > 0), ncut, torch.full_like(ncut, float("inf")))
    return sides[int(torch.argmin(ncut))]


def _corners(h: int, w: int) -> list[int]:
    return [0, w - 1, (h - 1) * w, h * w - 1]


def discover(feats: torch.Tensor, masks: int = 5, tau: float = 0.15, min_cells: int = 2) -> list[torch.Tensor]:
    """Up to ``masks`` object masks (bool, (h, w)) from a (d, h, w) feature map (module docstring)."""
    d, h, w = feats.shape
    flat = F.normalize(feats.reshape(d, h * w).t(), dim=1)
    keep = torch.ones(h * w, dtype=torch.bool)
    found: list[torch.Tensor] = []
    corners = _corners(h, w)
    for _ in range(masks):
        fg = normalized_cut(flat, keep, tau)
        if sum(bool(fg[c]) for c in corners) >= 2:
            fg = keep & ~fg
        if int(fg.sum()) < min_cells or bool((fg == keep).all()):
            break
        found.append(fg.view(h, w))
        keep = keep & ~fg
    return found


class NCutDiscoverer:
    """Object masks of an image from a pool-pretrained conv encoder's features (module docstring)."""

    def __init__(self, encoder: Any, size: int = 128, masks: int = 5, tau: float = 0.15, source: str = ""):
        self.encoder = encoder.eval()
        self.size, self.masks, self.tau, self.source = size, masks, tau, source

    @classmethod
    def from_pretrained(cls, path: str = "builtin:synthpool-conv", **kw: Any) -> "NCutDiscoverer":
        from ..nets.backbones import ConvEncoder

        return cls(ConvEncoder.from_folder(path), source=path, **kw)

    def config(self) -> dict[str, Any]:
        return {"kind": "ncut", "encoder": self.source, "size": self.size, "masks": self.masks, "tau": self.tau}

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> list[np.ndarray]:
        """Bool masks at the image's size, in the order found."""
        from ..data.augment import normalize
        from ..utils.tensors import image_tensor

        h, w = image.shape[:2]
        x = image_tensor(image)[None]
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        feats = self.encoder(normalize(x))
        s8, s16 = feats[1], feats[2]
        s16 = F.interpolate(s16, size=s8.shape[-2:], mode="bilinear", align_corners=False)
        grid = torch.cat([F.normalize(s8, dim=1), F.normalize(s16, dim=1)], 1)[0]
        out = []
        for m in discover(grid, self.masks, self.tau):
            up = F.interpolate(m[None, None].float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
            out.append((up >= 0.5).numpy())
        return out
