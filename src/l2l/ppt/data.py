"""PPT's four training sources (§3.2–3.3) and ``l2l ppt prepare``, which extracts their pseudo-labels.

* **D_sem** (free object-centric data, §3.2): single-object scenes of the pretraining world cropped
  around their object (our Mini-ImageNet), sentence "the [shape] in the middle"; the pseudo mask
  is the dual encoder's choice among the mask model's proposals for "a [shape]", or with
  ``mask_source: surgery`` the paper's CLIP Surgery → SAM (:mod:`~l2l.ppt.localize`). E = 1, ĉ = 1.
* **D_ref** (augmented object-centric data): *composition* — 2, or 4 D_sem images in a
  mosaic, "the [shape] on the left / at the top right / …"; *fusion* — a D_sem image pasted,
  shrunk, beside another one's object, "the [shape] left of the [shape]". Every object keeps its
  pseudo mask; ĉ = 1 for the referent, 0 for the context objects.
* **H** (the RES training pairs; masks never read): per noun phrase of the sentence
  (:mod:`~l2l.ppt.phrases`) the dual encoder's best proposal of the mask model (Pseudo-RIS's
  zero-shot ranking, :class:`~l2l.pseudoris.zero_shot.ZeroShotPredictor`); the distinct ones are
  the candidate referents. One candidate: **H_sem** (ĉ = 1); several: **H_ref** (all ĉ = 0 until
  the curriculum's Select).

Object-centric images are re-rendered from their pool index (deterministic), so ``OUT`` holds only
pseudo-labels: ``objects.jsonl`` (D_sem masks as RLE, with their IoU to the pool's instance mask —
the pool is the pretraining world, its annotations are free), ``images.jsonl`` (per H image its
proposals as RLE and per sentence its candidates; appended per image, so a rerun resumes),
``meta.json``. D_ref composites are built from D_sem at training time, from their index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.pool import PoolConfig, render_pool_scene
from ..data.vocab import SHAPE_WORDS
from ..errors import UsageError
from ..utils.io import atomic_write_text
from ..utils.jsonl import append_records, read_records
from ..utils.masks import mask_iou
from ..utils.progress import progress
from ..utils.rle import rle_decode, rle_encode
from .config import PPTConfig
from .phrases import noun_phrases

FORMAT = "l2l-ppt-labels/1"


# ----------------------------------------------------------------------------- object-centric images
def object_image(seed: int, index: int, size: int, context: Sequence[float]) -> tuple[np.ndarray, np.ndarray, str]:
    """D_sem image ``index``: a single-object pool scene cropped around its object (uint8 size×size×3),
    the object's pool instance mask (bool; telemetry only) and its shape."""
    cfg = PoolConfig(seed=seed, size=128, min_objects=1, max_objects=1, distractor_prob=0.0, zoom=(1.0, 1.0))
    for k in range(64):  # the first pool scene of this index's range whose crop fits in the canvas
        sc = render_pool_scene(cfg, index * 64 + k)
        o, r = sc.objects[0], sc.radius[0]
        rng = np.random.default_rng([seed, index, k, 7])
        side = int(min(128, max(16, round(2 * r * rng.uniform(context[0], context[1])))))
        x0, y0 = int(round(o.cx - side / 2)), int(round(o.cy - side / 2))
        if 0 <= x0 <= 128 - side and 0 <= y0 <= 128 - side:
            break
    else:
        x0, y0 = int(np.clip(x0, 0, 128 - side)), int(np.clip(y0, 0, 128 - side))
    img = Image.fromarray(sc.image[y0 : y0 + side, x0 : x0 + side]).resize((size, size), Image.Resampling.BILINEAR)
    m = Image.fromarray(sc.mask(0)[y0 : y0 + side, x0 : x0 + side].astype(np.uint8) * 255).resize((size, size))
    return np.array(img), np.asarray(m) > 127, o.shape


def _word(shape: str, rng: np.random.Generator) -> str:
    words = SHAPE_WORDS[shape]
    return words[int(rng.integers(len(words)))]


@dataclass
class Pair:
    """One training pair with its pseudo-labels (masks bool S×S, ĉ per mask)."""

    image: np.ndarray
    text: str
    masks: list[np.ndarray]
    scores: list[float]


def _resize(a: np.ndarray, side: int, nearest: bool) -> np.ndarray:
    im = Image.fromarray(a if a.dtype == np.uint8 else a.astype(np.uint8) * 255)
    out = np.asarray(im.resize((side, side), Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR))
    return out if a.dtype == np.uint8 else out > 127


class ObjectCentric:
    """D_sem and D_ref from the rendered object-centric images and their pseudo masks."""

    LAYOUTS: dict[
        str, list[tuple[tuple[float, float], str]]
    ] = {  # layout -> cells (col, row) of a 2×2 grid and the words for each
        "1x2": [((0, 0.5), "on the left"), ((1, 0.5), "on the right")],
        "2x1": [((0.5, 0), "at the top"), ((0.5, 1), "at the bottom")],
        "2x2": [
            ((0, 0), "at the top left"),
            ((1, 0), "at the top right"),
            ((0, 1), "at the bottom left"),
            ((1, 1), "at the bottom right"),
        ],
    }
    SIDES = [("left of", (0.02, 0.3)), ("right of", (0.58, 0.3)), ("above", (0.3, 0.02)), ("below", (0.3, 0.58))]

    def __init__(self, images: np.ndarray, masks: np.ndarray, shapes: list[str], seed: int, composites: int):
        self.images, self.masks, self.shapes = images, masks, shapes
        self.seed, self.composites = seed, composites
        self.size = images.shape[1]

    def __len__(self) -> int:
        return len(self.shapes)

    def sem(self, i: int, rng: np.random.Generator) -> Pair:
        """D_sem pair i (a random flip, as §3.2's transformations)."""
        img, m = self.images[i], self.masks[i]
        if rng.random() < 0.5:
            img, m = img[:, ::-1], m[:, ::-1]
        return Pair(
            np.ascontiguousarray(img),
            f"the {_word(self.shapes[i], rng)} in the middle",
            [np.ascontiguousarray(m)],
            [1.0],
        )

    def ref(self, j: int) -> Pair:
        """D_ref composite j: composition for even j, fusion for odd j (fixed by j and the seed)."""
        rng = np.random.default_rng([self.seed, j, 11])
        return self._composition(rng) if j % 2 == 0 else self._fusion(rng)

    def _composition(self, rng: np.random.Generator) -> Pair:
        s, h = self.size, self.size // 2
        layout = list(self.LAYOUTS)[int(rng.integers(3))]
        cells = self.LAYOUTS[layout]
        ids = rng.choice(len(self), len(cells), replace=False)
        canvas = np.full((s, s, 3), 0, np.uint8)
        canvas[:] = np.asarray(self.images[ids].reshape(-1, 3).mean(0), np.uint8)
        masks = []
        for (cx, cy), i in zip([c for c, _ in cells], ids):
            x0, y0 = int(round(cx * h)), int(round(cy * h))
            canvas[y0 : y0 + h, x0 : x0 + h] = _resize(self.images[i], h, False)
            m = np.zeros((s, s), bool)
            m[y0 : y0 + h, x0 : x0 + h] = _resize(self.masks[i], h, True)
            masks.append(m)
        t = int(rng.integers(len(cells)))
        text = f"the {_word(self.shapes[ids[t]], rng)} {cells[t][1]}"
        return Pair(canvas, text, masks, [1.0 if k == t else 0.0 for k in range(len(cells))])

    def _fusion(self, rng: np.random.Generator) -> Pair:
        s = self.size
        a, b = rng.choice(len(self), 2, replace=False)
        img, ma = self.images[a].copy(), self.masks[a].copy()
        w = int(round(0.4 * s))
        # the side where the pasted image hides least of a's object
        best = min(
            self.SIDES,
            key=lambda sd: ma[
                int(sd[1][1] * s) : int(sd[1][1] * s) + w, int(sd[1][0] * s) : int(sd[1][0] * s) + w
            ].sum(),
        )
        rel, (fx, fy) = best
        x0, y0 = int(fx * s), int(fy * s)
        img[y0 : y0 + w, x0 : x0 + w] = _resize(self.images[b], w, False)
        ma[y0 : y0 + w, x0 : x0 + w] = False
        mb = np.zeros((s, s), bool)
        mb[y0 : y0 + w, x0 : x0 + w] = _resize(self.masks[b], w, True)
        inverse = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
        wa, wb = _word(self.shapes[a], rng), _word(self.shapes[b], rng)
        if rng.random() < 0.5:  # the pasted object is the referent
            return Pair(img, f"the {wb} {rel} the {wa}", [mb, ma], [1.0, 0.0])
        return Pair(img, f"the {wa} {inverse[rel]} the {wb}", [ma, mb], [1.0, 0.0])


# ----------------------------------------------------------------------------- the RES pairs
@dataclass
class HSample:
    """One RES training pair: its image, sentence, noun phrases and candidate referents (indices into
    the image's proposals)."""

    sample_id: int
    image_id: int
    text: str
    phrases: list[str]
    candidates: list[int]


def _dedupe(idx: Sequence[int], segs: Sequence[np.ndarray], iou: float = 0.8) -> list[int]:
    out: list[int] = []
    for i in idx:
        if all(mask_iou(segs[i], segs[j]) < iou for j in out) and i not in out:
            out.append(i)
    return out


def label_image_surgery(loc: Any, image: np.ndarray, records: Sequence[Any]) -> dict[str, Any]:
    """``mask_source: surgery``: per sentence, one mask per noun phrase from the localiser
    (:class:`~l2l.ppt.localize.SurgeryLocalizer`); the image's "proposals" are those masks, kept once
    (IoU < 0.8 between them), and the candidates index them."""
    segs: list[np.ndarray] = []
    sents = []
    for r in records:
        phrases = noun_phrases(r.sentence)
        cands: list[int] = []
        for m, _ in loc.masks_for(image, phrases):
            if not m.any():
                continue
            k = next((j for j, s in enumerate(segs) if mask_iou(s, m) >= 0.8), None)
            if k is None:
                segs.append(m)
                k = len(segs) - 1
            if k not in cands:
                cands.append(k)
        sents.append({"sample_id": r.sample_id, "text": r.sentence, "phrases": phrases, "candidates": cands})
    return {"proposals": [rle_encode(m) for m in segs], "sentences": sents}


def label_image(
    ranker: Any, image: np.ndarray, records: Sequence[Any], given: list[np.ndarray] | None = None
) -> dict[str, Any]:
    """The proposals of one RES image (the mask model's, or ``given``) and, per sentence, its candidate
    referents (one per noun phrase)."""
    segs, _, _ = ranker._proposals(image, given)
    sents = []
    for r in records:
        phrases = noun_phrases(r.sentence)
        cands: list[int] = []
        if segs:
            best = [int(np.argmax(ranker.scores(image, p)[1])) for p in phrases]
            cands = _dedupe(best, segs)
        sents.append({"sample_id": r.sample_id, "text": r.sentence, "phrases": phrases, "candidates": cands})
    return {"proposals": [rle_encode(m) for m in segs], "sentences": sents}


def prepare(
    ds: Any,
    out: str | Path,
    cfg: PPTConfig,
    split: str = "train",
    limit: int | None = None,
    device: str = "cpu",
    masks_from: str | Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Write the pseudo-labels of D_sem and H to ``out`` (module docstring); resumable. Never reads a
    mask of ``ds``. ``masks_from``: a Pseudo-RIS generation folder (same dataset, default mask
    settings) whose proposals are reused instead of running the mask model's automatic mode again."""
    from ..foundation.loaders import load_dual_encoder, load_mask_model
    from ..pseudoris.config import MaskConfig
    from ..pseudoris.zero_shot import ZeroShotPredictor

    if masks_from is not None and cfg.mask_source == "surgery":
        raise UsageError("ppt prepare: --masks-from reuses proposals; mask_source=surgery makes its own masks")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "meta.json"
    meta = {
        "format": FORMAT,
        "dataset": ds.name,
        "fingerprint": ds.fingerprint(),
        "split": split,
        "limit": limit,
        "dual_encoder": cfg.dual_encoder,
        "mask_model": cfg.mask_model,
        "image_size": cfg.image_size,
        "objects": json.loads(json.dumps(cfg.objects.__dict__)),
        "masks_from": None if masks_from is None else str(masks_from),
    }
    if (cfg.proposal_grid, cfg.object_grid) != (12, 8):  # recorded when not the defaults (older folders lack them)
        meta.update(proposal_grid=cfg.proposal_grid, object_grid=cfg.object_grid)
    if cfg.mask_source != "proposals":
        meta.update(mask_source=cfg.mask_source, surgery=json.loads(json.dumps(cfg.surgery.__dict__)))
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if {k: old.get(k) for k in meta} != meta:
            raise UsageError(f"{out} holds pseudo-labels made with other settings ({meta_path}); use another --out")
    atomic_write_text(meta_path, json.dumps(meta, indent=2))
    dual = load_dual_encoder(cfg.dual_encoder, device)
    masks = load_mask_model(cfg.mask_model, device)
    # D_sem: one pseudo mask per object-centric image
    o = cfg.objects
    obj_path = out / "objects.jsonl"
    done = read_records(obj_path)
    ranker = ZeroShotPredictor(masks, dual, MaskConfig(points_per_side=cfg.object_grid, max_area_frac=0.9))
    loc = None
    if cfg.mask_source == "surgery":
        from .localize import SurgeryLocalizer

        loc = SurgeryLocalizer(masks, dual, cfg.surgery)
    with append_records(obj_path) as f:
        for i in progress(range(len(done), o.images), desc="D_sem pseudo masks", disable=not show_progress):
            img, gt, shape = object_image(o.pool_seed, i, cfg.image_size, o.context)
            if loc is not None:
                m = loc.masks_for(img, [f"a {shape}"])[0][0]
            else:
                segs, sc = ranker.scores(img, f"a {shape}")
                m = segs[int(np.argmax(sc))] if segs else np.zeros_like(gt)
            f.write({"index": i, "shape": shape, "rle": rle_encode(m), "pool_iou": round(mask_iou(m, gt), 4)})
    # H: candidates per noun phrase, per image
    recs = ds.samples(split)
    by_image: dict[int, list[Any]] = {}
    for r in recs:
        by_image.setdefault(r.image_id, []).append(r)
    image_ids = sorted(by_image)[:limit]
    img_path = out / "images.jsonl"
    seen = {d["image_id"] for d in read_records(img_path)}
    ranker = ZeroShotPredictor(masks, dual, MaskConfig(points_per_side=cfg.proposal_grid))
    reuse = None
    if masks_from is not None:
        from ..pseudoris.config import PseudoRISConfig
        from ..pseudoris.generate import _masks_of

        reuse = _masks_of(masks_from, PseudoRISConfig(), ds)
        missing = [i for i in image_ids if i not in reuse]
        if missing:
            raise UsageError(
                f"--masks-from {masks_from}: no masks for {len(missing)} of the images (first: {missing[0]})"
            )
    with append_records(img_path) as f:
        for iid in progress([i for i in image_ids if i not in seen], desc="H candidates", disable=not show_progress):
            if loc is not None:
                rec = label_image_surgery(loc, ds.load_image(iid), by_image[iid])
                f.write({"image_id": iid, **rec})
                continue
            given = None if reuse is None else [m["segmentation"] for m in reuse[iid]]
            rec = label_image(ranker, ds.load_image(iid), by_image[iid], given)
            f.write({"image_id": iid, **rec})
    return summary(out)


def summary(out: str | Path) -> dict[str, Any]:
    """Counts of the prepared pseudo-labels (written to ``OUT/summary.json``)."""
    out = Path(out)
    objs = read_records(out / "objects.jsonl")
    imgs = read_records(out / "images.jsonl")
    sents = [s for d in imgs for s in d["sentences"]]
    n_c = [len(s["candidates"]) for s in sents]
    res = {
        "d_sem": len(objs),
        "d_sem_pool_iou": round(float(np.mean([d["pool_iou"] for d in objs])), 4) if objs else None,
        "images": len(imgs),
        "images_without_proposals": sum(not d["proposals"] for d in imgs),
        "sentences": len(sents),
        "h_sem": sum(c == 1 for c in n_c),
        "h_ref": sum(c > 1 for c in n_c),
        "no_candidate": sum(c == 0 for c in n_c),
    }
    atomic_write_text(out / "summary.json", json.dumps(res, indent=2))
    return res


@dataclass
class Labels:
    """Prepared pseudo-labels, loaded: the object-centric sources and the RES samples."""

    objects: ObjectCentric
    h: list[HSample]
    proposals: dict[int, list[dict[str, Any]]]  # image_id -> RLEs
    meta: dict[str, Any]

    def mask(self, image_id: int, k: int) -> np.ndarray:
        return rle_decode(self.proposals[image_id][k]).astype(bool)


def load_labels(path: str | Path, cfg: PPTConfig, show_progress: bool = False) -> Labels:
    path = Path(path)
    if not (path / "meta.json").exists():
        raise UsageError(f"{path}: no prepared PPT pseudo-labels (meta.json missing): run `l2l ppt prepare`")
    meta = json.loads((path / "meta.json").read_text())
    if meta.get("format") != FORMAT:
        raise UsageError(f"{path}/meta.json: format {meta.get('format')!r}, expected {FORMAT}")
    o = meta["objects"]
    objs = read_records(path / "objects.jsonl")
    s = int(meta["image_size"])
    ims, ms, shapes = [], [], []
    for d in progress(objs, desc="object-centric images", disable=not show_progress):
        img, _, shape = object_image(int(o["pool_seed"]), int(d["index"]), s, o["context"])
        ims.append(img)
        ms.append(rle_decode(d["rle"]).astype(bool))
        shapes.append(shape)
    images = np.stack(ims) if ims else np.zeros((0, s, s, 3), np.uint8)
    masks = np.stack(ms) if ms else np.zeros((0, s, s), bool)
    oc = ObjectCentric(images, masks, shapes, int(o["pool_seed"]), int(o["composites"]))
    h, props = [], {}
    for d in read_records(path / "images.jsonl"):
        props[int(d["image_id"])] = d["proposals"]
        for st in d["sentences"]:
            h.append(HSample(int(st["sample_id"]), int(d["image_id"]), st["text"], st["phrases"], st["candidates"]))
    return Labels(oc, h, props, meta)


def to_square(image: np.ndarray, size: int) -> tuple[torch.Tensor, float]:
    """Longest side to ``size``, bottom/right zero-padded (the mask model's preprocessing)."""
    from ..foundation.mask_model import _square

    return _square(image, size)


def square_mask(mask: np.ndarray, size: int) -> torch.Tensor:
    """A mask through :func:`to_square`'s geometry (float 0/1, size×size)."""
    h, w = mask.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    m = torch.from_numpy(mask.astype(np.float32))[None, None]
    m = F.interpolate(m, size=(nh, nw), mode="nearest")
    return F.pad(m, (0, size - nw, 0, size - nh))[0, 0]
