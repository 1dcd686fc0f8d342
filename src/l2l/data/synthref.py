"""SynthRef: a procedural referring-expression segmentation dataset in REFER format.

``generate(cfg, out_dir)`` writes::

    out_dir/
      images/000001.png ...        RGB scenes
      instances.json               COCO-style images / annotations (RLE masks) / categories
      refs(synthref).json          REFER refs: ref_id, ann_id, image_id, category_id, split,
                                   sentences[{sent_id, sent, raw, tokens, program}], kind
      meta.json                    generator config, counts, versions; written last

so that the RefCOCO loader (``l2l.data.refer``) reads it unchanged. Every image is
generated from its own seed ``(cfg.seed, image index)``, so the output does not depend on
the number of worker processes, and the same config gives byte-identical files (for the
same numpy / Pillow / zlib versions, which ``meta.json`` records).

Splits mirror RefCOCO: ``train`` and ``val`` mix easy and hard scenes, ``testA`` holds easy
scenes (2–5 objects, fewer look-alikes) and ``testB`` hard ones (5–8 objects, many
look-alikes); the splits share no image.
"""

from __future__ import annotations

import dataclasses
import io
import json
import multiprocessing as mp
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ExistsError, UsageError
from ..utils.io import atomic_write_text
from ..utils.masks import mask_box
from ..utils.progress import progress
from ..utils.rle import rle_encode
from .pool import check_disjoint_seed
from .synthref_lang import KINDS, build_program, parse, realise, resolve
from .synthref_scene import SceneProfile, render_scene
from .vocab import COLORS, SHAPE_WORDS

FORMAT_VERSION = 1
SPLITS = ("train", "val", "testA", "testB")
REFS_FILE = "refs(synthref).json"


@dataclass
class SynthRefConfig:
    """Every knob of the generator. Same config ⇒ same bytes."""

    images: int = 2000
    image_size: int = 128
    seed: int = 0
    split_fractions: dict[str, float] = field(
        default_factory=lambda: {"train": 0.8, "val": 0.1, "testA": 0.05, "testB": 0.05}
    )
    # fixed image counts of val, testA and testB (train: the rest; split_fractions unused), so that a large
    # training set keeps evaluation splits of the usual size; None: split_fractions
    split_images: dict[str, int] | None = None
    easy: SceneProfile = field(default_factory=lambda: SceneProfile(2, 5, 0.35))
    hard: SceneProfile = field(default_factory=lambda: SceneProfile(5, 8, 0.8))
    hard_share: float = 0.5  # share of hard scenes in train and val
    refs_per_image: tuple[int, int] = (1, 4)
    sentences_per_ref: tuple[int, int] = (1, 4)
    kind_weights: dict[str, float] = field(
        default_factory=lambda: {
            "attribute": 0.25,
            "attribute_only": 0.15,
            "location": 0.25,
            "relation": 0.22,
            "ordinal": 0.13,
        }
    )
    margin: float = 0.06  # spatial judgements need gaps of margin × image side
    min_visible: float = 0.6
    shapes: tuple[str, ...] = tuple(SHAPE_WORDS)
    colors: tuple[str, ...] = tuple(COLORS)

    def __post_init__(self) -> None:
        if isinstance(self.easy, dict):
            self.easy = SceneProfile(**self.easy)
        if isinstance(self.hard, dict):
            self.hard = SceneProfile(**self.hard)
        self.refs_per_image = tuple(self.refs_per_image)  # type: ignore[assignment]
        self.sentences_per_ref = tuple(self.sentences_per_ref)  # type: ignore[assignment]
        self.shapes, self.colors = tuple(self.shapes), tuple(self.colors)
        check_disjoint_seed(self.seed)  # the pretraining pool's seed domain
        if self.images < 4:
            raise UsageError(f"SynthRef needs at least 4 images (one per split), got {self.images}")
        if not 32 <= self.image_size <= 1024:
            raise UsageError(f"image_size must be in 32..1024, got {self.image_size}")
        if set(self.split_fractions) != set(SPLITS) or any(v <= 0 for v in self.split_fractions.values()):
            raise UsageError(f"split_fractions needs positive values for exactly {SPLITS}, got {self.split_fractions}")
        if self.split_images is not None:
            if set(self.split_images) != set(SPLITS[1:]) or any(
                not isinstance(v, int) or v < 1 for v in self.split_images.values()
            ):
                raise UsageError(
                    f"split_images needs a positive count for exactly {SPLITS[1:]}, got {self.split_images}"
                )
            if sum(self.split_images.values()) >= self.images:
                raise UsageError(f"split_images {self.split_images} leave no training image of {self.images}")
        bad = [s for s in self.shapes if s not in SHAPE_WORDS] + [c for c in self.colors if c not in COLORS]
        if bad:
            raise UsageError(f"unknown vocabulary {bad}; shapes: {list(SHAPE_WORDS)}, colours: {list(COLORS)}")
        if len(self.shapes) < 2 or len(self.colors) < 2:
            raise UsageError("need at least two shapes and two colours")
        if set(self.kind_weights) - set(KINDS) or sum(self.kind_weights.values()) <= 0:
            raise UsageError(f"kind_weights must use kinds {KINDS}, got {self.kind_weights}")

    def to_dict(self) -> dict[str, Any]:
        d = json.loads(json.dumps(dataclasses.asdict(self)))
        if d["split_images"] is None:  # a dataset made before the field existed keeps comparing equal
            del d["split_images"]
        return d

    def split_of(self, index: int) -> str:
        """Split of image ``index`` (contiguous blocks, train first)."""
        if self.split_images is not None:
            counts = [self.split_images[s] for s in SPLITS[1:]]
        else:
            total = sum(self.split_fractions.values())
            counts = [max(1, int(round(self.images * self.split_fractions[s] / total))) for s in SPLITS[1:]]
        n_train = self.images - sum(counts)
        if n_train < 1:
            raise UsageError(f"{self.images} images leave no training image with {self.split_fractions}")
        bounds = np.cumsum([n_train] + counts)
        return SPLITS[int(np.searchsorted(bounds, index, side="right"))]


_rle = rle_encode


def _raw(sent: str, rng: np.random.Generator) -> str:
    raw = sent[0].upper() + sent[1:] if rng.random() < 0.3 else sent
    return raw + "." if rng.random() < 0.15 else raw


def generate_image(cfg: SynthRefConfig, index: int) -> dict[str, Any]:
    """Scene, masks and refs of image ``index`` (0-based). Pure function of (cfg, index)."""
    rng = np.random.default_rng([cfg.seed, index])
    split = cfg.split_of(index)
    hard = split == "testB" or (split in ("train", "val") and rng.random() < cfg.hard_share)
    image, objs = render_scene(
        rng, cfg.image_size, cfg.hard if hard else cfg.easy, cfg.shapes, cfg.colors, cfg.min_visible
    )
    scene = [o.obj for o in objs]
    margin = cfg.margin * cfg.image_size
    image_id = index + 1
    anns = []
    for k, o in enumerate(objs):
        anns.append(
            {
                "id": image_id * 100 + k,
                "image_id": image_id,
                "category_id": cfg.shapes.index(o.obj.shape) + 1,
                "segmentation": _rle(o.visible),
                "area": int(o.visible.sum()),
                "bbox": mask_box(o.visible, "xywh"),
                "iscrowd": 0,
                "attributes": {
                    "shape": o.obj.shape,
                    "color": o.obj.color,
                    "size": o.obj.size,
                    "texture": o.obj.texture,
                },
                "center": [round(o.obj.cx, 3), round(o.obj.cy, 3)],
                "depth": k,
            }
        )
    kinds = [k for k in KINDS if cfg.kind_weights.get(k, 0) > 0]
    weights = np.array([cfg.kind_weights[k] for k in kinds], dtype=np.float64)
    weights /= weights.sum()
    n_refs = min(len(objs), int(rng.integers(cfg.refs_per_image[0], cfg.refs_per_image[1] + 1)))
    refs: list[dict[str, Any]] = []
    for t in (int(i) for i in rng.permutation(len(objs))):
        if len(refs) >= n_refs:
            break
        first = str(rng.choice(kinds, p=weights))
        order = [first] + [str(k) for k in rng.permutation([k for k in kinds if k != first])]
        n_sent = int(rng.integers(cfg.sentences_per_ref[0], cfg.sentences_per_ref[1] + 1))
        for kind in order:
            sentences: list[dict[str, Any]] = []
            for _ in range(3 * n_sent):
                prog = build_program(kind, t, scene, margin, rng)
                if prog is None:
                    break
                text = realise(prog, rng)
                if any(s["sent"] == text for s in sentences):
                    continue
                # independent check: the words alone must pick out the target
                if resolve(parse(text), scene, margin) != [t]:
                    raise RuntimeError(f"SynthRef bug: {text!r} does not refer uniquely (image {image_id}, {prog})")
                sentences.append({"sent": text, "raw": _raw(text, rng), "tokens": text.split(), "program": prog})
                if len(sentences) >= n_sent:
                    break
            if sentences:
                refs.append(
                    {
                        "ann_id": image_id * 100 + t,
                        "image_id": image_id,
                        "category_id": cfg.shapes.index(scene[t].shape) + 1,
                        "split": split,
                        "kind": kind,
                        "sentences": sentences,
                    }
                )
                break
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=4)
    return {
        "image": {
            "id": image_id,
            "file_name": f"{image_id:06d}.png",
            "height": cfg.image_size,
            "width": cfg.image_size,
            "split": split,
            "hard": bool(hard),
        },
        "png": buf.getvalue(),
        "anns": anns,
        "refs": refs,
    }


def _work(args: tuple[SynthRefConfig, int, str]) -> dict[str, Any]:
    cfg, index, image_dir = args
    rec = generate_image(cfg, index)
    path = os.path.join(image_dir, rec["image"]["file_name"])
    with open(path, "wb") as f:
        f.write(rec.pop("png"))
    return rec


def _versions() -> dict[str, str]:
    import zlib

    import PIL

    return {
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "zlib": zlib.ZLIB_VERSION,
        "python": platform.python_version(),
        "format": str(FORMAT_VERSION),
    }


def is_complete(out_dir: str | Path, cfg: SynthRefConfig | None = None) -> bool:
    """True when ``out_dir`` holds a finished generation (of ``cfg``, when given)."""
    meta = Path(out_dir) / "meta.json"
    if not meta.exists():
        return False
    m = json.loads(meta.read_text())
    return bool(m.get("complete")) and (cfg is None or m.get("config") == cfg.to_dict())


def generate(
    cfg: SynthRefConfig,
    out_dir: str | Path,
    workers: int | None = None,
    force: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Write a SynthRef dataset to ``out_dir``; returns the meta record.

    A finished dataset with the same config is left as it is (returns its meta); a
    finished dataset with another config is an error unless ``force``. An unfinished one
    (no ``meta.json``: the generation was killed) is regenerated.
    """
    out = Path(out_dir)
    meta_path = out / "meta.json"
    if meta_path.exists() and not force:
        meta = json.loads(meta_path.read_text())
        if meta.get("complete") and meta.get("config") == cfg.to_dict():
            return meta
        if meta.get("complete"):
            raise ExistsError(
                f"{out} already holds a SynthRef dataset made with another config; "
                "pass --force to overwrite it or choose another --out"
            )
    if meta_path.exists():
        meta_path.unlink()
    image_dir = out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    workers = workers or min(os.cpu_count() or 1, 8)
    jobs = [(cfg, i, str(image_dir)) for i in range(cfg.images)]
    if workers > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            recs = list(
                progress(
                    pool.imap(_work, jobs, chunksize=32), total=len(jobs), desc="SynthRef", disable=not show_progress
                )
            )
    else:
        recs = [_work(j) for j in progress(jobs, desc="SynthRef", disable=not show_progress)]

    images, anns, refs = [], [], []
    ref_id = sent_id = 0
    for rec in recs:
        images.append(rec["image"])
        anns.extend(rec["anns"])
        for r in rec["refs"]:
            ref = {
                "ref_id": ref_id,
                "ann_id": r["ann_id"],
                "image_id": r["image_id"],
                "category_id": r["category_id"],
                "split": r["split"],
                "kind": r["kind"],
                "file_name": f"{r['image_id']:06d}.png",
                "sentences": [],
                "sent_ids": [],
            }
            for s in r["sentences"]:
                ref["sentences"].append({"sent_id": sent_id, **s})
                ref["sent_ids"].append(sent_id)
                sent_id += 1
            refs.append(ref)
            ref_id += 1
    categories = [{"id": i + 1, "name": s, "supercategory": "shape"} for i, s in enumerate(cfg.shapes)]
    atomic_write_text(
        out / "instances.json",
        json.dumps(
            {
                "info": {"description": "SynthRef", "version": FORMAT_VERSION},
                "images": images,
                "annotations": anns,
                "categories": categories,
            },
            separators=(",", ":"),
        ),
    )
    atomic_write_text(out / REFS_FILE, json.dumps(refs, separators=(",", ":")))
    counts = {
        s: {
            "images": sum(1 for im in images if im["split"] == s),
            "refs": sum(1 for r in refs if r["split"] == s),
            "sentences": sum(len(r["sentences"]) for r in refs if r["split"] == s),
        }
        for s in SPLITS
    }
    meta = {"dataset": "synthref", "complete": True, "config": cfg.to_dict(), "counts": counts, "versions": _versions()}
    atomic_write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True))
    return meta
