"""Image views (docs/spec.md §2).

Weak view ``A_w``: resize to the training size (optionally with scale jitter: resize by
``s`` then crop or pad back) and a random horizontal flip. A :class:`Geometry` record
describes one draw and :meth:`Geometry.apply` applies it to the image (bilinear), the
mask (nearest, padding = ignore 255) and any prior map (bilinear), so they stay aligned
by construction. The sentence is flipped with :func:`~l2l.data.text_augment.flip_directions`.

Strong view ``A_s``: appearance-only operations on top of the weak view, batched on
tensors (CPU or GPU): Identity, AutoContrast, Equalize, GaussianBlur, Contrast,
Sharpness, Color, Brightness, Posterize; 2 ops per image [ours], magnitudes uniform in
each op's range. No op moves a pixel, so the weak prediction stays aligned with the
strong input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UsageError

IGNORE_INDEX = 255
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class Geometry:
    """One draw of the weak view's geometric transform for an input of ``in_size`` (H, W)."""

    in_size: tuple[int, int]
    out_size: int
    scale: float = 1.0
    offset: tuple[int, int] = (0, 0)  # top-left of the crop (>=0) or of the paste (<0) in the scaled image
    flip: bool = False

    @property
    def scaled_size(self) -> int:
        return max(1, int(round(self.out_size * self.scale)))

    def _resize(self, x: torch.Tensor, mode: str) -> torch.Tensor:
        s = self.scaled_size
        if tuple(x.shape[-2:]) == (s, s):
            return x
        if mode == "nearest":
            return F.interpolate(x[None].float(), size=(s, s), mode="nearest")[0].to(x.dtype)
        return F.interpolate(x[None], size=(s, s), mode="bilinear", align_corners=False, antialias=True)[0]

    def _fit(self, x: torch.Tensor, fill: float) -> torch.Tensor:
        s, o = self.scaled_size, self.out_size
        if s == o:
            return x
        dy, dx = self.offset
        if s > o:  # crop
            return x[..., dy : dy + o, dx : dx + o]
        out = torch.full((*x.shape[:-2], o, o), fill, dtype=x.dtype)  # pad
        out[..., -dy : -dy + s, -dx : -dx + s] = x
        return out

    def apply(self, x: torch.Tensor, kind: str) -> torch.Tensor:
        """Transform a (C, H, W) or (H, W) tensor. ``kind``: 'image' | 'mask' | 'prior'."""
        if tuple(x.shape[-2:]) != tuple(self.in_size):
            raise UsageError(f"{kind} of size {tuple(x.shape[-2:])} does not match the image size {self.in_size}")
        squeeze = x.dim() == 2
        if squeeze:
            x = x[None]
        if kind == "mask":
            y = self._fit(self._resize(x, "nearest"), IGNORE_INDEX)
        elif kind in ("image", "prior"):
            y = self._fit(self._resize(x.float(), "bilinear"), 0.0)
        else:
            raise UsageError(f"unknown map kind {kind!r}")
        if self.flip:
            y = torch.flip(y, dims=[-1])
        return y[0] if squeeze else y


@dataclass
class WeakAugConfig:
    size: int = 128  # the paper trains at 480 [paper]; SynthRef default is small for CPU
    hflip_prob: float = 0.5
    scale_range: tuple[float, float] = (1.0, 1.0)  # (1, 1) = plain resize, as LAVT


def sample_geometry(in_size: tuple[int, int], cfg: WeakAugConfig, rng: np.random.Generator | None) -> Geometry:
    """A random weak-view geometry (``rng=None``: the deterministic eval transform)."""
    if rng is None:
        return Geometry(tuple(in_size), cfg.size)  # type: ignore[arg-type]
    lo, hi = cfg.scale_range
    scale = float(rng.uniform(lo, hi)) if hi > lo else float(lo)
    s = max(1, int(round(cfg.size * scale)))
    if s > cfg.size:
        off = (int(rng.integers(0, s - cfg.size + 1)), int(rng.integers(0, s - cfg.size + 1)))
    elif s < cfg.size:
        off = (-int(rng.integers(0, cfg.size - s + 1)), -int(rng.integers(0, cfg.size - s + 1)))
    else:
        off = (0, 0)
    return Geometry(tuple(in_size), cfg.size, scale, off, bool(rng.random() < cfg.hflip_prob))  # type: ignore[arg-type]


def normalize(x: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation of a (B, 3, H, W) batch in [0, 1]; done by the model, not the loader."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


# ----------------------------------------------------------------------------- strong ops
def _gray(x: torch.Tensor) -> torch.Tensor:
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def _blend(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """b + f·(a − b) with one factor per image (f=1 → a, f=0 → b)."""
    return (b + f.view(-1, 1, 1, 1) * (a - b)).clamp_(0, 1)


def op_identity(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return x


def op_autocontrast(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    scale = torch.where(hi - lo > 1e-3, 1.0 / (hi - lo).clamp_min(1e-3), torch.ones_like(hi))
    off = torch.where(hi - lo > 1e-3, lo, torch.zeros_like(lo))
    return ((x - off) * scale).clamp(0, 1)


def op_equalize(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Per-channel histogram equalisation over 256 levels, vectorised over the batch."""
    b, c, h, w = x.shape
    q = (x * 255).round().long().clamp_(0, 255).view(b * c, h * w)
    hist = torch.zeros(b * c, 256, device=x.device).scatter_add_(1, q, torch.ones_like(q, dtype=torch.float))
    cdf = hist.cumsum(1)
    cdf_min = torch.where(hist > 0, cdf, torch.full_like(cdf, float("inf"))).amin(1, keepdim=True)
    denom = (h * w - cdf_min).clamp_min(1)
    lut = ((cdf - cdf_min) / denom).clamp(0, 1)
    flat = (h * w - cdf_min) <= 0  # a constant channel stays as it is
    out = torch.gather(lut, 1, q)
    out = torch.where(flat, q.float() / 255.0, out)
    return out.view(b, c, h, w)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, radius: int = 4) -> torch.Tensor:
    """Separable Gaussian blur of a (B, C, H, W) batch with one σ (pixels) per image; replicate padding."""
    b, c, h, w = x.shape
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype).view(1, -1)
    k = torch.exp(-0.5 * (t / sigma.to(x.dtype).view(-1, 1).clamp_min(1e-3)) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, K)
    y = F.pad(x.reshape(1, b * c, h, w), (radius, radius, 0, 0), mode="replicate")
    y = F.conv2d(y, k.view(b * c, 1, 1, -1), groups=b * c)
    y = F.pad(y, (0, 0, radius, radius), mode="replicate")
    y = F.conv2d(y, k.view(b * c, 1, -1, 1), groups=b * c)
    return y.view(b, c, h, w)


def op_blur(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Gaussian blur, σ = 0.1 + 1.9·m pixels, one σ per image."""
    return gaussian_blur(x, 0.1 + 1.9 * m)


def op_contrast(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True).expand_as(x)
    return _blend(x, mean, 0.4 + 1.2 * m)


def op_sharpness(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    k = torch.tensor([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=x.dtype, device=x.device) / 13.0
    smooth = F.conv2d(F.pad(x.reshape(b * c, 1, h, w), (1, 1, 1, 1), mode="replicate"), k.view(1, 1, 3, 3))
    return _blend(x, smooth.view(b, c, h, w), 0.2 + 1.6 * m)


def op_color(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return _blend(x, _gray(x).expand_as(x), 0.2 + 1.6 * m)


def op_brightness(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return _blend(x, torch.zeros_like(x), 0.5 + 1.0 * m)


def op_posterize(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    bits = (4 + (m * 4.999).floor()).clamp(4, 8).view(-1, 1, 1, 1)  # 4..8 bits
    step = 2.0 ** (8 - bits)
    return (torch.floor((x * 255).round() / step) * step / 255.0).clamp(0, 1)


STRONG_OPS = {
    "identity": op_identity,
    "autocontrast": op_autocontrast,
    "equalize": op_equalize,
    "blur": op_blur,
    "contrast": op_contrast,
    "sharpness": op_sharpness,
    "color": op_color,
    "brightness": op_brightness,
    "posterize": op_posterize,
}


@dataclass
class StrongAugConfig:
    ops: tuple[str, ...] = tuple(STRONG_OPS)
    n_ops: int = 2  # ops per image [ours]


@dataclass
class StrongAugment:
    """Batched appearance-only augmentation ``u_s = A_s(u_w)`` of a (B, 3, H, W) batch in [0, 1].

    Not kornia (its wheel installs here): every draw here comes from the ``generator`` the method
    passes, derived from (seed, step, rank), which is what makes a resumed run bit-identical to an
    uninterrupted one; kornia's augmentation modules draw their parameters from the global torch
    RNG. The ops are five short tensor expressions; switching would also change every committed
    semi-supervised result (benchmarks/identity_check.py)."""

    cfg: StrongAugConfig = field(default_factory=StrongAugConfig)

    def __post_init__(self) -> None:
        bad = [o for o in self.cfg.ops if o not in STRONG_OPS]
        if bad:
            raise UsageError(f"unknown strong ops {bad}; available: {list(STRONG_OPS)}")

    @torch.no_grad()
    def __call__(
        self, x: torch.Tensor, generator: torch.Generator | None = None, ops: Sequence[str] | None = None
    ) -> torch.Tensor:
        """``ops`` forces one op sequence for all images (tests); otherwise 2 random ops each."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise UsageError(f"expected a (B, 3, H, W) batch, got {tuple(x.shape)}")
        b = x.shape[0]
        y = x.clone()
        if ops is not None:
            for name in ops:
                y = STRONG_OPS[name](y, torch.rand(b, generator=generator).to(x.device, x.dtype))
            return y
        names = list(self.cfg.ops)
        for _ in range(self.cfg.n_ops):
            choice = torch.randint(len(names), (b,), generator=generator)
            mag = torch.rand(b, generator=generator).to(x.device, x.dtype)
            for k in choice.unique().tolist():
                idx = (choice == k).nonzero(as_tuple=True)[0].to(x.device)
                y[idx] = STRONG_OPS[names[k]](y[idx], mag[idx]).to(y.dtype)
        return y
