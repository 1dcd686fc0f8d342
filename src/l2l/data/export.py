"""A dataset written in the original REFER layout, so that RES codebases built on the REFER API
(LAVT, CRIS, ReLA …) open it unchanged: ``l2l data export DATA --format refer --out DIR``.

Written under ``DIR`` (the REFER ``data_root``)::

    DIR/<name>/instances.json            COCO images / annotations (RLE masks) / categories, as the source's
    DIR/<name>/refs(<split_by>).p        the refs, a pickle (protocol 2) of plain lists and dicts:
                                         ref_id, ann_id, image_id, category_id, split, file_name,
                                         sent_ids, sentences [{sent_id, sent, raw, tokens}]
    DIR/images/mscoco/images/train2014/  the images (hard links where the file system allows, else copies)

The REFER API knows its datasets by name — ``refcoco``, ``refcoco+``, ``refcocog`` — and takes the
images from ``images/mscoco/images/train2014``, so ``name`` must be one of those (default ``refcoco``,
split by ``unc``: SynthRef's splits train / val / testA / testB are RefCOCO's). The exported data is
still SynthRef: ``instances.json``'s ``info`` says which dataset it was exported from.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..utils.io import atomic_write_bytes, atomic_write_text
from .refer import DATASETS, ReferDataset

REF_FIELDS = ("ref_id", "ann_id", "image_id", "category_id", "split", "file_name", "sent_ids")
SENT_FIELDS = ("sent_id", "sent", "raw", "tokens")


def export_refer(ds: ReferDataset, out: str | Path, name: str = "refcoco", split_by: str = "unc") -> dict[str, Any]:
    """Write ``ds`` into ``out`` in the REFER layout (module docstring); returns counts."""
    if name not in DATASETS:
        raise UsageError(f"--name {name!r}: the REFER API opens only {', '.join(sorted(DATASETS))}")
    out = Path(out)
    inst = json.loads(ds.instances_file.read_text())
    inst["info"] = {**(inst.get("info") or {}), "exported_from": f"{ds.name} ({ds.instances_file.parent})"}
    refs = []
    for ref in ds.refs.values():
        r = {k: ref[k] for k in REF_FIELDS if k in ref}
        r["category_id"] = int(ref.get("category_id", ds.anns[int(ref["ann_id"])]["category_id"]))
        r["file_name"] = str(ref.get("file_name", ds.images[int(ref["image_id"])]["file_name"]))
        sents = [{k: s[k] for k in SENT_FIELDS if k in s} for s in ref["sentences"]]
        for s in sents:
            s.setdefault("raw", s["sent"])
            s.setdefault("tokens", str(s["sent"]).split())
        r["sentences"], r["sent_ids"] = sents, [int(s["sent_id"]) for s in sents]
        refs.append(r)
    folder = out / name
    atomic_write_text(folder / "instances.json", json.dumps(inst, separators=(",", ":")))
    atomic_write_bytes(folder / f"refs({split_by}).p", pickle.dumps(refs, protocol=2))
    images = out / "images" / "mscoco" / "images" / "train2014"
    images.mkdir(parents=True, exist_ok=True)
    for im in ds.images.values():
        src, dst = ds.image_dir / im["file_name"], images / im["file_name"]
        if dst.exists() and dst.stat().st_size == src.stat().st_size:
            continue
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    return {
        "refs": len(refs),
        "sentences": sum(len(r["sentences"]) for r in refs),
        "images": len(ds.images),
        "folder": str(folder),
    }
