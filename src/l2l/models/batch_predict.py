"""Prediction at scale: many (image, sentence) pairs → mask PNGs and COCO-style RLE results.

``l2l predict --manifest pairs.jsonl --out-dir DIR`` (or ``--images DIR --texts …``). The model is
loaded once; pairs are grouped by image so that each image is read and encoded once
(:class:`~l2l.models.predictor.SegmenterPredictor`). Written under ``DIR``:

* ``masks/<id>.png`` — 0/255 mask at the image's size; ``probs/<id>.npy`` with ``--save-probs``;
* ``results.jsonl`` — one line per finished pair (id, image, text, ``segmentation`` as COCO RLE
  ``{"size": [h, w], "counts": str}`` from pycocotools, area, score = mean probability inside
  the mask, ``domain``: the image's distance from the training domain and whether it is far, or
  ``null`` without a domain check), appended as pairs finish: a rerun skips the ids already there
  (resumable);
* ``results.json`` — the same records as one JSON list, written at the end; each also carries
  ``image_id`` (the manifest's ``image_id``, else the number of the image in the manifest, from 1)
  and ``category_id`` (the manifest's, else 1), so that ``pycocotools``' ``COCO.loadRes`` reads it;
* ``failed.json`` — the pairs that could not be predicted (an unreadable or missing image, …) with
  their reasons: the other pairs are finished all the same, and a rerun tries the failed ones again.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import DataError, L2LError, MissingFileError, UsageError
from ..utils.io import atomic_write_text
from ..utils.jsonl import append_records, read_records
from ..utils.progress import progress
from ..utils.rle import rle_encode
from .domain import OutOfDomainWarning

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Pair:
    id: str
    image: str
    text: str
    image_id: int | None = None  # COCO ids for results.json (None: numbered by image)
    category_id: int = 1
    problem: str | None = None  # why this pair cannot be predicted (listed in failed.json; the rest go on)


MAX_ID_LENGTH = 200  # ids name files (masks/<id>.png): most file systems allow 255 bytes


def id_problem(pair_id: str) -> str | None:
    """Why ``pair_id`` cannot name an output file, or None."""
    if not pair_id.strip():
        return "the id is empty"
    if "\x00" in pair_id or any(ord(c) < 32 for c in pair_id):
        return "the id holds a control character (NUL, newline, …)"
    if any(c in pair_id for c in "/\\") or pair_id in (".", ".."):
        return "the id cannot name a file (it holds a path separator or is '.' / '..')"
    if len(pair_id.encode("utf-8")) > MAX_ID_LENGTH:
        return f"the id is longer than {MAX_ID_LENGTH} bytes ({len(pair_id.encode('utf-8'))})"
    return None


def read_manifest(path: str | Path) -> list[Pair]:
    """Pairs of a JSON-lines manifest: ``{"image": path, "text": str, "id": optional}`` per line; a relative
    image path is looked up beside the manifest first, then in the working directory."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"manifest not found: {path}")
    pairs = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            img, text = d["image"], d["text"]
            image_id = None if d.get("image_id") is None else int(d["image_id"])
            category_id = int(d.get("category_id", 1))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise UsageError(
                f'{path}: line {n} is not {{"image": …, "text": …}} (optional integer image_id, '
                f"category_id) ({type(e).__name__}: {e})"
            ) from None
        problem = None
        if not isinstance(text, str):  # ["a"] is not the sentence "['a']"
            problem, text = f"line {n}: text must be a string, got {type(text).__name__} {json.dumps(text)[:60]}", ""
        if not isinstance(img, str):
            problem, img = problem or f"line {n}: image must be a path (a string), got {type(img).__name__}", ""
        full = (
            img
            if not img or Path(img).is_absolute() or not (path.parent / img).exists() and Path(img).exists()
            else str(path.parent / img)
        )
        pairs.append(Pair(str(d.get("id", n)), full, text, image_id, category_id, problem))
    return _unique(pairs, str(path))


def pairs_from_folder(folder: str | Path, texts: Iterable[str]) -> list[Pair]:
    """Every image of ``folder`` with every sentence of ``texts`` (ids ``<image stem>__<k>``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"image folder not found: {folder}")
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise UsageError("--images needs --texts with at least one sentence")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXT)
    if not images:
        raise UsageError(f"{folder} holds no image ({', '.join(IMAGE_EXT)})")
    return _unique([Pair(f"{im.stem}__{k}", str(im), t) for im in images for k, t in enumerate(texts)], str(folder))


def _unique(pairs: list[Pair], where: str) -> list[Pair]:
    seen: dict[str, Pair] = {}
    for p in pairs:
        if p.id in seen:
            raise UsageError(f"{where}: id {p.id!r} is used twice (ids name the output files)")
        seen[p.id] = p
    return [p if p.problem or not (why := id_problem(p.id)) else dataclasses.replace(p, problem=why) for p in pairs]


rle = rle_encode  # COCO run-length encoding of a bool mask, JSON-ready


def predict_pairs(
    predictor,
    pairs: list[Pair],
    out_dir: str | Path,
    threshold: float = 0.5,
    guidance: str | None = None,
    save_probs: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run ``predictor`` over ``pairs`` into ``out_dir`` (module docstring); returns counts."""
    from PIL import Image

    out = Path(out_dir)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    if save_probs:
        (out / "probs").mkdir(exist_ok=True)
    log = out / "results.jsonl"
    done: dict[str, dict[str, Any]] = {}
    for n, r in enumerate(read_records(log), 1):  # a torn last line: that pair is done again
        if "id" not in r:
            raise DataError(f"{log}: record {n} has no id; remove the line (the pair is then predicted again)")
        done[str(r["id"])] = r
    failed: list[dict[str, str]] = [
        {"id": p.id, "image": p.image, "text": p.text, "reason": p.problem} for p in pairs if p.problem
    ]
    refused = len(failed)
    pairs_ok = [p for p in pairs if not p.problem]
    todo = [p for p in pairs_ok if p.id not in done or not (out / "masks" / f"{p.id}.png").exists()]
    by_image: dict[str, list[Pair]] = {}
    for p in todo:
        by_image.setdefault(p.image, []).append(p)
    bar = progress(None, total=len(todo), desc="predict", disable=not show_progress)
    for p in [p for p in todo if not p.text.strip()]:
        failed.append({"id": p.id, "image": p.image, "text": p.text, "reason": "the sentence is empty"})
        by_image[p.image].remove(p)
        bar.update(1)
    with append_records(log) as f:
        for image, group in by_image.items():
            if not group:
                continue
            try:
                predictor.set_image(image)
                with warnings.catch_warnings():  # said per image in results.jsonl and counted in the summary
                    warnings.simplefilter("ignore", OutOfDomainWarning)
                    masks, probs = predictor.predict([p.text for p in group], guidance=guidance, threshold=threshold)
            except L2LError as e:  # this image's pairs fail with the reason; the others go on
                failed += [{"id": p.id, "image": p.image, "text": p.text, "reason": str(e)} for p in group]
                bar.update(len(group))
                continue
            for p, m, pr in zip(group, masks, probs):
                Image.fromarray(m.astype(np.uint8) * 255).save(out / "masks" / f"{p.id}.png")
                if save_probs:
                    np.save(out / "probs" / f"{p.id}.npy", pr.astype(np.float16))
                rec = {
                    "id": p.id,
                    "image": p.image,
                    "text": p.text,
                    "segmentation": rle(m),
                    "area": int(m.sum()),
                    "score": float(pr[m].mean()) if m.any() else 0.0,
                    "empty": not bool(m.any()),
                    "domain": getattr(predictor, "image_domain", None),
                }
                f.write(rec)
                done[p.id] = rec
                bar.update(1)
    bar.close()
    order = {p.id: i for i, p in enumerate(pairs)}
    numbers: dict[str, int] = {}
    for p in pairs:
        numbers.setdefault(p.image, len(numbers) + 1)
    by_id = {p.id: p for p in pairs}
    records = sorted((r for i, r in done.items() if i in order), key=lambda r: order[r["id"]])
    coco = [
        {
            **r,
            "image_id": by_id[r["id"]].image_id if by_id[r["id"]].image_id is not None else numbers[r["image"]],
            "category_id": by_id[r["id"]].category_id,
        }
        for r in records
    ]
    atomic_write_text(out / "results.json", json.dumps(coco, indent=1))
    atomic_write_text(out / "failed.json", json.dumps(failed, indent=1))
    doms = {r["image"]: r.get("domain") for r in records}
    return {
        "pairs": len(pairs),
        "predicted": len(todo) - (len(failed) - refused),
        "skipped": len(pairs_ok) - len(todo),
        "empty": sum(r["empty"] for r in records),
        "failed": failed,
        "images": len(doms),
        "far_images": sum(bool(d and d.get("far")) for d in doms.values()),
    }
