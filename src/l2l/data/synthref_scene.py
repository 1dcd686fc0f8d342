"""SynthRef scenes: sampling objects and rendering them with exact visible masks.

A scene is 2–8 flat objects (12 shapes, 11 colours with jittered shades, 3 size classes,
solid/striped/dotted textures, random rotation) over a textured background. Objects are
painted back to front; an object's mask is what stays visible after the objects in front
of it are painted, and placement is rejected when any object would keep less than
``min_visible`` of its area — partial occlusion happens, full occlusion does not.

Similar distractors are made on purpose: with probability ``distractor_prob`` a new
object copies the shape or the colour (sometimes both) of an object already placed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ..errors import UsageError
from .synthref_lang import SceneObject
from .vocab import COLORS, SHAPE_WORDS, SIZES, TEXTURES


@dataclass(frozen=True)
class SceneProfile:
    """How crowded and confusable a scene is."""

    min_objects: int = 2
    max_objects: int = 6
    distractor_prob: float = 0.45

    def __post_init__(self) -> None:
        if not 1 <= self.min_objects <= self.max_objects:
            raise UsageError(f"need 1 <= min_objects <= max_objects, got {self.min_objects}..{self.max_objects}")
        if not 0.0 <= self.distractor_prob <= 1.0:
            raise UsageError(f"distractor_prob must be in [0, 1], got {self.distractor_prob}")


@dataclass
class RenderedObject:
    obj: SceneObject
    radius: float
    angle: float
    rgb: np.ndarray  # float32 (3,)
    full: np.ndarray  # bool HxW, the whole silhouette
    visible: np.ndarray  # bool HxW, what the objects in front leave visible


def _polygon(shape: str, rng: np.random.Generator) -> np.ndarray | None:
    """Unit-radius outline (K, 2) of a polygonal shape, or None for curved shapes."""

    def ngon(k: int, start: float = -math.pi / 2) -> np.ndarray:
        a = start + np.arange(k) * 2 * math.pi / k
        return np.stack([np.cos(a), np.sin(a)], 1)

    if shape == "square":
        return ngon(4, math.pi / 4) * math.sqrt(2) * 0.78
    if shape == "rectangle":
        return np.array([[-1, -0.5], [1, -0.5], [1, 0.5], [-1, 0.5]], dtype=np.float64)
    if shape == "triangle":
        return ngon(3) * 1.05 + np.array([0, 0.15])
    if shape == "pentagon":
        return ngon(5)
    if shape == "hexagon":
        return ngon(6, 0.0)
    if shape == "star":
        a = -math.pi / 2 + np.arange(10) * math.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.05, 0.45)
        return np.stack([r * np.cos(a), r * np.sin(a)], 1)
    if shape == "cross":
        w = 0.34
        return np.array(
            [
                [-w, -1],
                [w, -1],
                [w, -w],
                [1, -w],
                [1, w],
                [w, w],
                [w, 1],
                [-w, 1],
                [-w, w],
                [-1, w],
                [-1, -w],
                [-w, -w],
            ],
            dtype=np.float64,
        )
    if shape == "diamond":
        return np.array([[0, -1.05], [0.62, 0], [0, 1.05], [-0.62, 0]], dtype=np.float64)
    if shape == "heart":
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return np.stack([x, y + 2.5], 1) / 16.0
    return None


def rasterise(
    shape: str, cx: float, cy: float, radius: float, angle: float, size: int, rng: np.random.Generator
) -> np.ndarray:
    """Boolean silhouette of one object on a size×size canvas."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    poly = _polygon(shape, rng)
    if poly is not None:
        c, s = math.cos(angle), math.sin(angle)
        rot = poly @ np.array([[c, s], [-s, c]])
        pts = [(cx + radius * px, cy + radius * py) for px, py in rot]
        draw.polygon(pts, fill=255)
    elif shape == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=255)
    elif shape == "ring":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=255)
        r2 = radius * 0.52
        draw.ellipse([cx - r2, cy - r2, cx + r2, cy + r2], fill=0)
    elif shape == "crescent":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=255)
        ox, oy = 0.45 * radius * math.cos(angle), 0.45 * radius * math.sin(angle)
        r2 = radius * 0.85
        draw.ellipse([cx + ox - r2, cy + oy - r2, cx + ox + r2, cy + oy + r2], fill=0)
    else:
        raise UsageError(f"unknown shape {shape!r}")
    return np.asarray(canvas) > 127


def _contrast_shade(rgb: np.ndarray) -> np.ndarray:
    """A darker shade for light colours and a lighter one for dark colours."""
    lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return rgb * 0.42 if lum > 90 else rgb + (255 - rgb) * 0.45


def _texture_pattern(texture: str, size: int, rng: np.random.Generator) -> np.ndarray | None:
    """Boolean pattern (True = secondary shade) for the whole canvas, or None for solid."""
    if texture == "solid":
        return None
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    theta = rng.uniform(0, math.pi)
    u = xx * math.cos(theta) + yy * math.sin(theta)
    v = -xx * math.sin(theta) + yy * math.cos(theta)
    if texture == "striped":
        period = rng.uniform(4.0, 6.5)
        return np.mod(u, period) < period * 0.5
    if texture == "dotted":
        period = rng.uniform(4.5, 6.5)
        du = np.mod(u, period) - period / 2
        dv = np.mod(v, period) - period / 2
        return du * du + dv * dv < (period * 0.3) ** 2
    raise UsageError(f"unknown texture {texture!r}")


def render_background(size: int, rng: np.random.Generator) -> np.ndarray:
    """A varied, textured background (float32 H×W×3 in 0..255)."""
    base = rng.uniform(60, 200, size=3)
    base = base * 0.55 + base.mean() * 0.45  # muted, so objects stand out
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    g = rng.uniform(-35, 35, size=2)
    img = base[None, None, :] + (g[0] * (xx - 0.5) + g[1] * (yy - 0.5))[..., None]
    kind = int(rng.integers(4))
    if kind == 0:  # low-frequency blobs
        small = rng.normal(0, 18, size=(5, 5, 3)).astype(np.float32)
        blobs = np.stack(
            [
                np.asarray(Image.fromarray(small[..., c]).resize((size, size), Image.Resampling.BILINEAR))
                for c in range(3)
            ],
            -1,
        )
        img = img + blobs
    elif kind == 1:  # faint stripes
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(8, 20)
        s = np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) * size / period)
        img = img + (rng.uniform(6, 14) * s)[..., None]
    elif kind == 2:  # faint checker
        cell = rng.uniform(8, 18) / size
        chk = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2) * 2 - 1
        img = img + (rng.uniform(5, 12) * chk)[..., None]
    img = img + rng.normal(0, rng.uniform(3, 9), size=(size, size, 1)).astype(np.float32)
    return img


def sample_objects(
    rng: np.random.Generator, profile: SceneProfile, shapes: tuple[str, ...], colors: tuple[str, ...]
) -> list[tuple[str, str, str, str]]:
    """Attribute tuples (shape, colour, size, texture); distractors copy earlier objects."""
    n = int(rng.integers(profile.min_objects, profile.max_objects + 1))
    sizes, textures = tuple(SIZES), tuple(TEXTURES)
    out: list[tuple[str, str, str, str]] = []
    for _ in range(n):
        attrs = [
            shapes[int(rng.integers(len(shapes)))],
            colors[int(rng.integers(len(colors)))],
            sizes[int(rng.integers(len(sizes)))],
            textures[int(rng.integers(len(textures)))],
        ]
        if out and rng.random() < profile.distractor_prob:
            ref = out[int(rng.integers(len(out)))]
            mode = rng.random()
            if mode < 0.4:
                attrs[0] = ref[0]  # same shape
            elif mode < 0.8:
                attrs[1] = ref[1]  # same colour
            else:
                attrs[0], attrs[1] = ref[0], ref[1]  # same shape and colour
        out.append((attrs[0], attrs[1], attrs[2], attrs[3]))
    return out


def render_scene(
    rng: np.random.Generator,
    size: int,
    profile: SceneProfile,
    shapes: tuple[str, ...] = tuple(SHAPE_WORDS),
    colors: tuple[str, ...] = tuple(COLORS),
    min_visible: float = 0.6,
    max_tries: int = 25,
) -> tuple[np.ndarray, list[RenderedObject]]:
    """Sample and paint a scene. Returns (uint8 H×W×3 image, objects back to front)."""
    img = render_background(size, rng)
    placed: list[RenderedObject] = []
    for shape, color, sz, texture in sample_objects(rng, profile, shapes, colors):
        lo, hi = SIZES[sz][0]
        radius = rng.uniform(lo, hi) * size
        for _ in range(max_tries):
            cx = rng.uniform(radius, size - radius)
            cy = rng.uniform(radius, size - radius)
            angle = (
                rng.uniform(-0.35, 0.35)
                if shape in ("square", "rectangle", "diamond", "heart")
                else rng.uniform(0, 2 * math.pi)
            )
            full = rasterise(shape, cx, cy, radius, angle, size, rng)
            area = int(full.sum())
            if area < 12:
                continue
            ok = True
            new_vis = []
            for p in placed:
                v = p.visible & ~full
                if v.sum() < min_visible * p.full.sum():
                    ok = False
                    break
                new_vis.append(v)
            if not ok:
                continue
            for p, v in zip(placed, new_vis):
                p.visible = v
            base = np.array(COLORS[color][0], dtype=np.float32)
            rgb = np.clip(base + rng.uniform(-18, 18, size=3), 0, 255).astype(np.float32)
            placed.append(
                RenderedObject(
                    SceneObject(shape, color, sz, texture, float(cx), float(cy)),
                    float(radius),
                    float(angle),
                    rgb,
                    full,
                    full.copy(),
                )
            )
            break
    # paint back to front, each object inside its bounding box only
    for p in placed:
        pattern = _texture_pattern(p.obj.texture, size, rng)
        r = int(math.ceil(p.radius * 1.1)) + 1
        y0, y1 = max(0, int(p.obj.cy) - r), min(size, int(p.obj.cy) + r + 1)
        x0, x1 = max(0, int(p.obj.cx) - r), min(size, int(p.obj.cx) + r + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        shade = 1.0 + 0.12 * ((xx - p.obj.cx) * 0.6 - (yy - p.obj.cy)) / max(p.radius, 1.0)
        col = p.rgb[None, None, :] * np.clip(shade, 0.8, 1.2)[..., None]
        if pattern is not None:
            col = np.where(pattern[y0:y1, x0:x1, None], _contrast_shade(p.rgb)[None, None, :], col)
        box = img[y0:y1, x0:x1]
        img[y0:y1, x0:x1] = np.where(p.full[y0:y1, x0:x1, None], col, box)
    img = img + rng.normal(0, 2.0, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).round().astype(np.uint8), placed
