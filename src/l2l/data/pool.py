"""The pretraining pool: generated scenes disjoint from every SynthRef split, with a shifted
distribution and dense labels that carry no referring expression — our stand-in for ImageNet.

Disjointness by construction. A SynthRef image ``i`` of a dataset with seed ``s`` is drawn
from ``numpy.random.default_rng([s, i])``; a pool image from
``default_rng([POOL_DOMAIN, pool_seed, i])``. The two seed sequences have different entropy
(three words whose first is ``POOL_DOMAIN``, a constant no SynthRef seed uses: SynthRef
seeds below it are refused by :func:`check_disjoint_seed`), so no pool image is a SynthRef
image; ``tests/test_pretrain.py`` also compares the pixels of a pool against a SynthRef
dataset's images.

Shifted distribution (what a foundation model's pretraining data is to the target data):
* 1–9 objects per scene (SynthRef: 2–5 easy, 5–8 hard), fewer look-alikes (0.3);
* more occlusion allowed (``min_visible`` 0.45 vs 0.6);
* a random zoom: a crop of 70–100 % of the 128-px canvas resized to the output size, so
  apparent object sizes spread beyond SynthRef's three size classes;
* a global photometric change per image (gamma 0.75–1.35, contrast 0.75–1.25, a colour cast
  of ±12 per channel).

Dense targets per pixel (0 = background everywhere): ``shape`` (1..12), ``color`` (1..11),
``texture`` (1..3), ``size`` (1..3: the *apparent* radius relative to the output image, binned
at SynthRef's class boundaries 0.095 and 0.1325), and ``boundary`` (1 where the visible
instance id changes between 4-neighbours).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import numpy as np
from PIL import Image

from ..errors import UsageError
from .synthref_lang import SceneObject
from .synthref_scene import SceneProfile, render_scene
from .vocab import COLORS, SHAPE_WORDS, TEXTURES

T = TypeVar("T")
POOL_DOMAIN = 0x504F4F4C  # "POOL": the first word of every pool seed sequence
CANVAS = 128  # the renderer's canvas (SynthRef's native image size)
SHAPES = tuple(SHAPE_WORDS)
COLOR_NAMES = tuple(COLORS)
TEXTURE_NAMES = tuple(TEXTURES)
SIZE_NAMES = ("small", "medium", "large")  # by apparent radius, bins SIZE_BINS
SIZE_BINS = (0.095, 0.1325)  # apparent radius / image side: small | medium | large
HEADS = {
    "shape": len(SHAPES) + 1,
    "color": len(COLOR_NAMES) + 1,
    "texture": len(TEXTURE_NAMES) + 1,
    "size": len(SIZE_BINS) + 2,
    "boundary": 2,
}


@dataclass
class PoolConfig:
    seed: int = 0  # pool seed: image i is default_rng([POOL_DOMAIN, seed, i])
    size: int = 96  # output resolution
    min_objects: int = 1
    max_objects: int = 9
    distractor_prob: float = 0.3
    min_visible: float = 0.45
    zoom: tuple[float, float] = (0.7, 1.0)  # crop side / canvas side
    gamma: tuple[float, float] = (0.75, 1.35)
    contrast: tuple[float, float] = (0.75, 1.25)
    cast: float = 12.0

    def __post_init__(self) -> None:
        for name in ("zoom", "gamma", "contrast"):  # lists from YAML or a card
            if len(getattr(self, name)) != 2:
                raise UsageError(f"pool {name} must be a pair (lo, hi), got {getattr(self, name)}")
        (z0, z1), (g0, g1), (c0, c1) = self.zoom, self.gamma, self.contrast
        self.zoom, self.gamma, self.contrast = (z0, z1), (g0, g1), (c0, c1)
        if not 16 <= self.size <= 512:
            raise UsageError(f"pool size must be in 16..512, got {self.size}")
        if not 0 < self.zoom[0] <= self.zoom[1] <= 1:
            raise UsageError(f"pool zoom must satisfy 0 < lo <= hi <= 1, got {self.zoom}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_disjoint_seed(synthref_seed: int) -> None:
    """SynthRef seeds must not collide with the pool's domain word (kept far apart by design)."""
    if synthref_seed == POOL_DOMAIN:
        raise UsageError(f"SynthRef seed {synthref_seed} is reserved for the pretraining pool")


def pool_rng(cfg: PoolConfig, index: int) -> np.random.Generator:
    return np.random.default_rng([POOL_DOMAIN, cfg.seed, index])


@dataclass
class PoolScene:
    """One pool scene at the output size: the image, the visible-instance map (0 = background,
    k = ``objects[k - 1]``) and the objects, their centres in output pixels and their size class
    by *apparent* radius (the zoom changes it)."""

    image: np.ndarray  # uint8 size×size×3
    ids: np.ndarray  # int32 size×size
    objects: list[SceneObject]
    radius: list[float]  # apparent radius in output pixels
    shift: dict[str, float] = dataclasses.field(default_factory=dict)  # zoom and photometric draws

    def mask(self, k: int) -> np.ndarray:
        """Visible mask of ``objects[k]`` (bool size×size)."""
        return self.ids == k + 1


def render_pool_scene(cfg: PoolConfig, index: int) -> PoolScene:
    """Pool image ``index`` with its instances (the draws of :func:`pool_scene`, in the same order)."""
    rng = pool_rng(cfg, index)
    profile = SceneProfile(cfg.min_objects, cfg.max_objects, cfg.distractor_prob)
    image, objs = render_scene(rng, CANVAS, profile, SHAPES, COLOR_NAMES, cfg.min_visible)
    # label maps on the canvas; later objects are in front, and `visible` already accounts for it
    ids = np.zeros((CANVAS, CANVAS), np.int32)
    for k, o in enumerate(objs):
        ids[o.visible] = k + 1
    # zoom: a random square crop, resized to the output size
    side = int(round(CANVAS * rng.uniform(*cfg.zoom)))
    x0, y0 = (int(rng.integers(0, CANVAS - side + 1)) for _ in range(2))
    scale = cfg.size / side
    img = Image.fromarray(image[y0 : y0 + side, x0 : x0 + side]).resize((cfg.size, cfg.size), Image.Resampling.BILINEAR)
    ids = np.asarray(
        Image.fromarray(ids[y0 : y0 + side, x0 : x0 + side]).resize((cfg.size, cfg.size), Image.Resampling.NEAREST)
    )
    # photometric shift
    x = np.asarray(img, np.float32) / 255.0
    gamma, contrast = rng.uniform(*cfg.gamma), rng.uniform(*cfg.contrast)
    x = x**gamma
    x = (x - x.mean()) * contrast + x.mean() + rng.uniform(-cfg.cast, cfg.cast, 3) / 255.0
    img = np.clip(x * 255.0, 0, 255).round().astype(np.uint8)
    objects, radius = [], []
    for o in objs:
        r = o.radius * scale
        size_class = SIZE_NAMES[int(np.searchsorted(SIZE_BINS, r / cfg.size))]
        objects.append(
            dataclasses.replace(o.obj, size=size_class, cx=(o.obj.cx - x0) * scale, cy=(o.obj.cy - y0) * scale)
        )
        radius.append(r)
    return PoolScene(img, ids.astype(np.int32), objects, radius, {"zoom": side / CANVAS, "gamma": gamma})


def pool_scene(cfg: PoolConfig, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Image (uint8 size×size×3) and dense targets (uint8 size×size each) of pool image ``index``."""
    sc = render_pool_scene(cfg, index)
    objs, ids = sc.objects, sc.ids
    # targets from the instance map
    lut = {name: np.zeros(len(objs) + 1, np.uint8) for name in ("shape", "color", "texture", "size")}
    for k, o in enumerate(objs, start=1):
        lut["shape"][k] = SHAPES.index(o.shape) + 1
        lut["color"][k] = COLOR_NAMES.index(o.color) + 1
        lut["texture"][k] = TEXTURE_NAMES.index(o.texture) + 1
        lut["size"][k] = SIZE_NAMES.index(o.size) + 1
    targets = {name: table[ids] for name, table in lut.items()}
    edge = np.zeros_like(ids, dtype=bool)
    edge[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    edge[:, :-1] |= ids[:, 1:] != ids[:, :-1]
    edge[1:, :] |= ids[1:, :] != ids[:-1, :]
    edge[:-1, :] |= ids[1:, :] != ids[:-1, :]
    targets["boundary"] = edge.astype(np.uint8)
    return sc.image, targets


def _work(args: tuple[PoolConfig, int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return pool_scene(*args)


def pool_map(
    fn: Callable[[Any], T], jobs: list, workers: int = 1, show_progress: bool = False, chunksize: int = 32
) -> list[T]:
    """``[fn(job) for job in jobs]``, in order, over ``workers`` forked processes when more than one."""
    import multiprocessing as mp

    from ..utils.progress import progress

    if workers > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            it = pool.imap(fn, jobs, chunksize=chunksize)
            return list(progress(it, total=len(jobs), desc="pool", disable=not show_progress))
    return [fn(j) for j in progress(jobs, desc="pool", disable=not show_progress)]


def make_pool(
    cfg: PoolConfig, start: int, count: int, workers: int = 1, show_progress: bool = False
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Images (N, H, W, 3) uint8 and targets {name: (N, H, W) uint8} of pool images start..start+count-1."""
    recs = pool_map(_work, [(cfg, i) for i in range(start, start + count)], workers, show_progress, chunksize=64)
    images = np.stack([r[0] for r in recs])
    targets = {k: np.stack([r[1][k] for r in recs]) for k in HEADS}
    return images, targets
