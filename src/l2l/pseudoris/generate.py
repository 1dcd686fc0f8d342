"""``l2l pseudo-ris generate``: images → pseudo (mask, captions) pairs → a REFER-format dataset.

Per training image of the source dataset (its masks never read, unless ``masks.source = gt``):
masks (§3.1, :mod:`~l2l.pseudoris.masks`), caption candidates for every mask and crop kind
(§3.2, :mod:`~l2l.pseudoris.sampling`), their scores and the filter (§3.3,
:mod:`~l2l.pseudoris.filtering`). Each image's record — masks as RLE, every candidate with its
decoder, crop kind and UoS / CoS / DoS, and whether it was kept — is appended to
``OUT/records/part-<rank>.jsonl`` as soon as it is done: a rerun skips the images already there
(resumable), and ``torchrun`` processes (or ``--shard i/n``) take every n-th image. An image that
yields no mask, or no caption that survives the filter, is recorded with that status and counted,
never an error.

:func:`build_dataset` then writes ``OUT/`` as a dataset the toolkit's loader opens
(``ReferDataset.open(OUT)``): the source's images (not copied: ``meta.json`` names their folder),
its val / test refs untouched, and for the training split one ref per pseudo mask with its kept
captions as sentences (kind ``pseudo``). Settings: ``zero-shot`` (pseudo refs only) and ``semi``
(plus the ground-truth refs of the images of a label split, as the paper's semi-supervised rows).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ExistsError, UsageError
from ..utils.io import atomic_write_text
from ..utils.jsonl import append_records, read_records
from ..utils.progress import progress
from ..utils.rle import rle_decode, rle_encode
from .config import PseudoRISConfig
from .filtering import distinctiveness
from .masks import extract_masks, gt_masks
from .sampling import sample_captions

FORMAT = "l2l-pseudo-ris/1"
REFS_FILE = "refs(pseudo-ris).json"


@dataclass
class Models:
    masks: Any  # MaskPredictor / Sam2MaskPredictor (automatic mode); None with masks.source = gt
    captioner: Any  # CaptionerProtocol
    dual: Any  # encode_image / encode_text / logit_scale
    discover: Any = None  # image → object masks (masks.select: ncut; l2l.pseudoris.ncut)

    def provenance(self) -> dict[str, Any]:
        return {k: (v.config() if v is not None else None) for k, v in vars(self).items()}


def load_models(
    mask_model: str | None, captioner: str | None, dual_encoder: str, device: str = "cpu", discover: Any = None
) -> Models:
    """Stand-in folders (``builtin:NAME`` or ``l2l pretrain`` outputs) or local Hugging Face folders
    (SAM2, BLIP, CLIP: told apart by their ``config.json``). ``discover``: a :class:`MaskConfig` with
    ``select: ncut`` (its encoder and cut settings) for the object discoverer."""
    from ..foundation.loaders import load_captioner, load_dual_encoder, load_mask_model

    m = None if mask_model is None else load_mask_model(mask_model, device)
    cap = None if captioner is None else load_captioner(captioner, device)
    dual = load_dual_encoder(dual_encoder, device)
    disc = None
    if discover is not None and discover.select == "ncut":
        from .ncut import NCutDiscoverer

        disc = NCutDiscoverer.from_pretrained(discover.ncut_encoder, masks=discover.max_masks, tau=discover.ncut_tau)
    return Models(m, cap, dual, disc)


def label_image(
    models: Models, image: np.ndarray, masks: Sequence[dict[str, Any]], cfg: PseudoRISConfig, seed: int
) -> dict[str, Any]:
    """The record of one image: its masks, every caption candidate with its scores, and what was kept."""
    from ..foundation.captioner import patch

    if not masks:
        return {"status": "no_masks", "masks": []}
    segs = [np.asarray(r["segmentation"], bool) for r in masks]
    cands: list[tuple[int, str, Any, str, float]] = []  # mask, text, margin, decoder, log P
    for g, margin in enumerate(cfg.captions.margins):
        crops = [patch(image, m, margin) for m in segs]
        per_mask = sample_captions(
            models.captioner,
            [c for c, _ in crops],
            [s for _, s in crops],
            cfg.captions.top_k,
            cfg.captions.top_p,
            cfg.captions.temperature,
            cfg.captions.distinctive,
            cfg.captions.beams,
            seed * 31 + g,
            cfg.captions.aggregation,
        )
        for i, cs in enumerate(per_mask):
            cands += [(i, c.text, margin, c.decoder, c.log_prob) for c in cs if c.text.strip()]
    out_masks: list[dict[str, Any]] = []
    for r, m in zip(masks, segs):
        out_masks.append(
            {
                "rle": rle_encode(m),
                "area": int(m.sum()),
                "bbox": [float(v) for v in r["bbox"]],
                "predicted_iou": round(float(r["predicted_iou"]), 4),
                "stability": round(float(r["stability_score"]), 4),
                "captions": [],
                **({"ann_id": int(r["ann_id"])} if "ann_id" in r else {}),
            }
        )
    if not cands:
        return {"status": "no_captions", "masks": out_masks}
    # one scored entry per distinct (mask, text); the decoders that produced it are listed
    uniq: dict[tuple[int, str], dict[str, Any]] = {}
    for i, text, margin, dec, lp in cands:
        e = uniq.setdefault((i, text), {"text": text, "sources": [], "log_prob": round(lp, 3)})
        e["sources"].append(f"{margin}:{dec}")
    keys = list(uniq)
    context = [patch(image, m, cfg.filter.context_margin)[0] for m in segs]
    masked = [patch(image, m, "masked")[0] for m in segs]
    sc = distinctiveness(models.dual, context, masked, keys)
    score = sc[cfg.filter.score]
    for k, (i, _) in enumerate(keys):
        e = uniq[keys[k]]
        e.update(
            uos=_num(sc["uos"][k]),
            cos=_num(sc["cos"][k]),
            dos=_num(sc["dos"][k]),
            kept=bool((not cfg.filter.enabled) or score[k] >= cfg.filter.tau),
        )
        out_masks[i]["captions"].append(e)
    kept = sum(e["kept"] for e in uniq.values())
    return {"status": "ok" if kept else "none_kept", "masks": out_masks}


def _num(v: float) -> float | str:
    return round(float(v), 4) if np.isfinite(v) else "inf"


def _rank() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def generate(
    ds: Any,
    out: str | Path,
    models: Models | None,
    cfg: PseudoRISConfig,
    split: str = "train",
    max_images: int | None = None,
    shard: tuple[int, int] | None = None,
    show_progress: bool = True,
    masks_from: str | Path | None = None,
    records_from: str | Path | None = None,
) -> dict[str, int]:
    """Label the images of ``split`` into ``out/records`` (resumable; module docstring); returns counts
    of this process's images by status. ``masks_from``: take each image's masks from another
    generation's records (same source and mask settings: the ablations of captions and filter
    then differ in nothing else, and the automatic mode is not run again). ``records_from``: take
    each image's masks *and* scored candidates from another generation made with the same settings
    but the filter, and apply this config's filter to them (the filter ablation, exact and without
    captioning again); an image missing there is labelled with the models."""
    out = Path(out)
    if masks_from is not None and records_from is not None:
        raise UsageError("pseudo-ris: give --masks-from or --records-from, not both")
    reuse = _masks_of(masks_from, cfg, ds) if masks_from is not None else None
    scored = _records_of(records_from, cfg, ds) if records_from is not None else None
    rec_dir = out / "records"
    rec_dir.mkdir(parents=True, exist_ok=True)
    head = {
        "format": FORMAT,
        "config": cfg.to_dict(),
        "source": ds.name,
        "source_fingerprint": ds.fingerprint(),
        "models": models.provenance() if models else None,
        **({"masks_from": str(masks_from)} if masks_from is not None else {}),
        **({"records_from": str(records_from)} if records_from is not None else {}),
    }
    head_file = out / "generation.json"
    if head_file.exists():
        old = json.loads(head_file.read_text())
        if {k: (_config_of(old) if k == "config" else old.get(k)) for k in head} != head:
            raise ExistsError(
                f"{out} holds pseudo-labels made with another config, source or models; "
                "choose another --out (or delete it)"
            )
    else:
        atomic_write_text(head_file, json.dumps(head, indent=2))
    rank, world = shard or _rank()
    ids = ds.image_ids(split)[:max_images] if max_images else ds.image_ids(split)
    mine = ids[rank::world]
    part = rec_dir / f"part-{rank}.jsonl"
    done = {int(r["image_id"]) for r in _read_records(rec_dir)}
    counts: dict[str, int] = {"skipped": sum(1 for i in mine if i in done)}
    todo = [i for i in mine if i not in done]
    with append_records(part) as f:
        for image_id in progress(todo, desc="pseudo-ris", disable=not show_progress):
            if scored is not None and int(image_id) in scored:
                rec = refilter(scored[int(image_id)], cfg)
                f.write(rec)
                counts[rec["status"]] = counts.get(rec["status"], 0) + 1
                continue
            image = ds.load_image(image_id)
            if reuse is not None:
                masks = reuse.get(int(image_id), [])
            elif cfg.masks.source == "gt":
                masks = gt_masks(ds, image_id, cfg.masks)
            else:
                if models is None or models.masks is None:
                    raise UsageError("pseudo-ris: masks.source=model needs a mask model")
                masks = extract_masks(models.masks, image, cfg.masks, models.discover)
            assert models is not None
            rec = {"image_id": int(image_id), **label_image(models, image, masks, cfg, cfg.seed * 1_000_003 + image_id)}
            f.write(rec)
            counts[rec["status"]] = counts.get(rec["status"], 0) + 1
    return counts


def _masks_of(folder: str | Path, cfg: PseudoRISConfig, ds: Any) -> dict[int, list[dict[str, Any]]]:
    """Masks per image of another generation (its records), checked to come from the same source and
    mask settings."""
    folder = Path(folder)
    head_file = folder / "generation.json"
    if not head_file.exists():
        raise UsageError(f"--masks-from {folder}: not a pseudo-ris generation folder (no generation.json)")
    head = json.loads(head_file.read_text())
    if head.get("source_fingerprint") != ds.fingerprint() or _config_of(head)["masks"] != cfg.to_dict()["masks"]:
        raise UsageError(f"--masks-from {folder}: made from another dataset or with other mask settings")
    out = {}
    for r in _read_records(folder / "records"):
        out[int(r["image_id"])] = [
            {
                "segmentation": rle_decode(m["rle"]),
                "area": m["area"],
                "bbox": m["bbox"],
                "predicted_iou": m["predicted_iou"],
                "stability_score": m["stability"],
                **({"ann_id": m["ann_id"]} if "ann_id" in m else {}),
            }
            for m in r["masks"]
        ]
    return out


def _records_of(folder: str | Path, cfg: PseudoRISConfig, ds: Any) -> dict[int, dict[str, Any]]:
    """Records per image of another generation, checked to come from the same source and the same
    settings except the filter's (the only thing a refiltering may change)."""
    folder = Path(folder)
    head_file = folder / "generation.json"
    if not head_file.exists():
        raise UsageError(f"--records-from {folder}: not a pseudo-ris generation folder (no generation.json)")
    head = json.loads(head_file.read_text())
    mine = {k: v for k, v in cfg.to_dict().items() if k != "filter"}
    theirs = {k: v for k, v in _config_of(head).items() if k != "filter"}
    if head.get("source_fingerprint") != ds.fingerprint() or mine != theirs:
        raise UsageError(f"--records-from {folder}: made from another dataset or with settings other than the filter's")
    return {int(r["image_id"]): r for r in _read_records(folder / "records")}


def _config_of(head: dict[str, Any]) -> dict[str, Any]:
    """A generation's config with today's defaults for the keys it predates (a folder made before a
    switch existed was made with the switch's default)."""
    try:
        return PseudoRISConfig(**head.get("config", {})).to_dict()
    except (TypeError, UsageError):
        return dict(head.get("config") or {})


def refilter(rec: dict[str, Any], cfg: PseudoRISConfig) -> dict[str, Any]:
    """``rec`` (an image's record) with its captions' ``kept`` flags and its status set by ``cfg.filter``
    from the scores already in it (Eqs. 4–6 do not depend on the filter's settings)."""
    if rec["status"] in ("no_masks", "no_captions"):
        return rec
    masks = []
    for m in rec["masks"]:
        caps = []
        for c in m["captions"]:
            v = c[cfg.filter.score]
            score = float("inf") if v == "inf" else float(v)
            caps.append({**c, "kept": bool((not cfg.filter.enabled) or score >= cfg.filter.tau)})
        masks.append({**m, "captions": caps})
    kept = any(c["kept"] for m in masks for c in m["captions"])
    return {**rec, "status": "ok" if kept else "none_kept", "masks": masks}


def _read_records(rec_dir: Path) -> list[dict[str, Any]]:
    # a torn last line is skipped (that image is labelled again); a damaged line elsewhere is named
    return [r for p in sorted(rec_dir.glob("part-*.jsonl")) for r in read_records(p)]


def build_dataset(
    ds: Any, out: str | Path, setting: str = "zero-shot", labeled: Sequence[int] = (), split: str = "train"
) -> dict[str, Any]:
    """Write ``out`` as a REFER-format dataset from ``out/records`` (module docstring); returns meta.json."""
    if setting not in ("zero-shot", "semi"):
        raise UsageError(f"setting must be zero-shot or semi, got {setting!r}")
    if setting == "semi" and not labeled:
        raise UsageError("setting semi needs the labeled images of a label split")
    out = Path(out)
    recs = {int(r["image_id"]): r for r in _read_records(out / "records")}
    if not recs:
        raise UsageError(f"{out}/records holds no labelled image: run the generation first")
    train_ids = set(ds.image_ids(split))
    labeled_set = set(int(i) for i in labeled) if setting == "semi" else set()
    inst = json.loads(ds.instances_file.read_text())
    refs_src = json.loads(ds.refs_file.read_text()) if ds.refs_file.suffix == ".json" else _pickled(ds)
    keep_ann = {
        a["id"] for a in inst["annotations"] if int(a["image_id"]) not in train_ids or int(a["image_id"]) in labeled_set
    }
    anns = [a for a in inst["annotations"] if a["id"] in keep_ann]
    refs = [r for r in refs_src if r["split"] != split or int(r["image_id"]) in labeled_set]
    next_ann = max([int(a["id"]) for a in inst["annotations"]] + [0]) + 1
    next_ref = max([int(r["ref_id"]) for r in refs_src] + [0]) + 1
    next_sent = max([int(s["sent_id"]) for r in refs_src for s in r["sentences"]] + [0]) + 1
    cat = int(inst["categories"][0]["id"]) if inst["categories"] else 1
    stats: dict[str, Any] = {"images": 0, "masks": 0, "refs": 0, "sentences": 0, "candidates": 0, "status": {}}
    for image_id in sorted(recs):
        r = recs[image_id]
        stats["status"][r["status"]] = stats["status"].get(r["status"], 0) + 1
        if image_id in labeled_set or image_id not in train_ids:
            continue
        stats["images"] += 1
        for m in r["masks"]:
            stats["masks"] += 1
            stats["candidates"] += len(m["captions"])
            kept = [c["text"] for c in m["captions"] if c["kept"]]
            if not kept:
                continue
            anns.append(
                {
                    "id": next_ann,
                    "image_id": image_id,
                    "category_id": cat,
                    "segmentation": m["rle"],
                    "area": m["area"],
                    "bbox": m["bbox"],
                    "iscrowd": 0,
                    "pseudo": True,
                }
            )
            sents = [{"sent_id": next_sent + k, "sent": t, "tokens": t.split(), "raw": t} for k, t in enumerate(kept)]
            refs.append(
                {
                    "ref_id": next_ref,
                    "ann_id": next_ann,
                    "image_id": image_id,
                    "category_id": cat,
                    "split": split,
                    "kind": "pseudo",
                    "sentences": sents,
                    "sent_ids": [s["sent_id"] for s in sents],
                }
            )
            next_ann, next_ref, next_sent = next_ann + 1, next_ref + 1, next_sent + len(sents)
            stats["refs"] += 1
            stats["sentences"] += len(sents)
    atomic_write_text(out / "instances.json", json.dumps({**inst, "annotations": anns}, separators=(",", ":")))
    atomic_write_text(out / REFS_FILE, json.dumps(refs, separators=(",", ":")))
    meta = {
        "dataset": "pseudo-ris",
        "complete": True,
        "format": FORMAT,
        "setting": setting,
        "source": ds.name,
        "image_dir": str(Path(ds.image_dir).resolve()),
        "labeled_images": len(labeled_set),
        "pseudo": stats,
        "generation": json.loads((out / "generation.json").read_text()),
    }
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=2))
    return meta


def _pickled(ds: Any) -> list[dict[str, Any]]:
    from ..utils.safe_pickle import restricted_load

    return restricted_load(ds.refs_file)


def record_masks(rec: dict[str, Any]) -> list[np.ndarray]:
    return [rle_decode(m["rle"]) for m in rec["masks"]]
