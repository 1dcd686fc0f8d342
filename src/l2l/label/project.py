"""A labeling project: the answers a person (or the simulated annotator) gives, saved as a REFER dataset
after every answer (issue 36, item 1).

A project is a folder::

    PROJECT/project.json        the source: a SynthRef / REFER / label dataset (``create``), or the one
                                ``from_images`` writes under PROJECT/source from a photo folder and a
                                sentences file
    PROJECT/annotations.json    one entry per answered task: status, the mask (COCO RLE), the clicks,
                                seconds, edited sentences, and the task's revision ``rev``
    PROJECT/log.jsonl           every answer and every undo, appended (the history; never rewritten)
    PROJECT/dataset/            the labeled dataset, rewritten after every answer: instances.json,
                                refs(label).json, meta.json and label_split.json (a content-hashed
                                :class:`~l2l.data.splits.LabelSplit`); ``l2l train data.root=PROJECT/dataset
                                data.split_file=PROJECT/dataset/label_split.json`` trains on it
    PROJECT/.lock               held (``flock``) while one writer reads, changes and saves the files

A **task** is one training ref of the source: one object and its sentences, one mask (REFER keeps one mask
per ref). Statuses: ``accepted`` (the shown mask is right), ``corrected`` (the mask of the clicks),
``rejected`` (the sentence does not fit the image: the ref moves to split ``rejected`` and leaves
training), ``skipped`` (answered later). An image is **labeled** when every one of its training refs has an
accepted, corrected or rejected answer and at least one is not rejected; the split file marks those
images labeled and the rest unlabeled, so a semi-supervised method sees the unlabeled rest with its priors.

Nothing is lost on a crash or Ctrl-C: every file is written whole to a temporary name and renamed.
Two browser tabs never overwrite each other's work: an answer names the revision of the task it was made
on (``rev``), and an answer to a task that changed since raises :class:`Conflict` (a compare-and-set under
the lock). The exported dataset keeps the source's name and sample ids, so the source's prior stores
(keyed by its fingerprint) still serve it; an edited sentence changes the fingerprint, as it should.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from ..data.refer import ReferDataset
from ..data.splits import LabelSplit
from ..errors import DataError, ExistsError, MissingFileError, UsageError
from ..utils.io import atomic_write_text
from ..utils.jsonl import append_record
from ..utils.rle import rle_decode, rle_encode

FORMAT = 1
STATUSES = ("accepted", "corrected", "rejected", "skipped")
DONE = ("accepted", "corrected", "rejected")  # answers that count towards an image being labeled
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class Conflict(UsageError):
    """An answer made on an old revision of its task (another tab answered it first)."""


@dataclass(frozen=True)
class Task:
    ref_id: int
    image_id: int
    ann_id: int
    sentences: tuple[tuple[int, str], ...]  # (sent_id, text)


def _json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissingFileError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None


class LabelProject:
    """Open an existing project folder (``LabelProject(folder)``); make one with :meth:`create` or
    :meth:`from_images`."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.meta = _json(self.folder / "project.json", "label project (project.json)")
        if self.meta.get("format") != FORMAT:
            raise UsageError(
                f"{self.folder}/project.json: format {self.meta.get('format')!r}, this version reads {FORMAT}"
            )
        src = self.meta["source"]
        self.source = ReferDataset.open(
            self._abs(src["root"]),
            src.get("dataset"),
            src.get("split_by"),
            self._abs(src["image_dir"]) if src.get("image_dir") else None,
        )
        if self.source.fingerprint() != src["fingerprint"]:
            raise DataError(
                f"{self.folder}: the source {src['root']} changed since the project was made (fingerprint "
                f"{self.source.fingerprint()} vs {src['fingerprint']}): its sample ids no longer mean the same"
            )
        by_ref: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for r in self.source.samples("train") if "train" in self.source.splits else []:
            by_ref[r.ref_id].append((r.sample_id, r.sentence))
        self.tasks: dict[int, Task] = {}
        for ref_id in sorted(by_ref):
            ref = self.source.refs[ref_id]
            self.tasks[ref_id] = Task(ref_id, int(ref["image_id"]), int(ref["ann_id"]), tuple(by_ref[ref_id]))
        if not self.tasks:
            raise DataError(f"{self.folder}: the source {src['root']} has no training refs to label")

    def _abs(self, p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else (self.folder / q).resolve()

    # ------------------------------------------------------------------ making a project
    @classmethod
    def create(
        cls,
        folder: str | Path,
        source: str | Path,
        dataset: str | None = None,
        split_by: str | None = None,
        image_dir: str | Path | None = None,
    ) -> "LabelProject":
        """A project over the training refs of a SynthRef / REFER dataset at ``source`` (read, never written)."""
        folder = Path(folder)
        if (folder / "project.json").exists():
            raise ExistsError(f"{folder} already holds a label project; open it, or choose another folder")
        ds = ReferDataset.open(source, dataset, split_by, image_dir)
        meta = {
            "format": FORMAT,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "source": {
                "root": str(Path(source).resolve()),
                "dataset": dataset,
                "split_by": split_by,
                "image_dir": str(Path(image_dir).resolve()) if image_dir else None,
                "name": ds.name,
                "fingerprint": ds.fingerprint(),
            },
        }
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "project.json", json.dumps(meta, indent=1) + "\n")
        project = cls(folder)
        with project._locked():
            project._save(project._read(), None)
        return project

    @classmethod
    def from_images(cls, folder: str | Path, images: str | Path, sentences: str | Path) -> "LabelProject":
        """A project over a folder of photos: ``sentences`` is a JSON-lines file of ``{"image": FILE,
        "sentence": TEXT}`` (optional ``"object"``: lines with the same image and object are one ref) or a
        text file of ``FILE<TAB>TEXT`` lines. Writes the source dataset (no masks yet) under PROJECT/source."""
        folder, images = Path(folder), Path(images)
        if (folder / "project.json").exists():
            raise ExistsError(f"{folder} already holds a label project; open it, or choose another folder")
        if not images.is_dir():
            raise MissingFileError(f"image folder not found: {images}")
        lines = _read_sentences(Path(sentences))
        inst: dict[str, Any] = {
            "info": {"description": f"label project source from {images}"},
            "images": [],
            "annotations": [],
            "categories": [{"id": 1, "name": "object"}],
        }
        image_ids: dict[str, int] = {}
        refs: dict[tuple[str, str], dict[str, Any]] = {}
        sent_id = 0
        for n, (file, text, obj) in enumerate(lines, 1):
            if file not in image_ids:
                path = images / file
                if not path.is_file():
                    raise MissingFileError(f"{sentences} line {n}: image {file!r} is not in {images}")
                try:
                    with Image.open(path) as im:
                        w, h = im.size
                except OSError as e:
                    raise DataError(f"{sentences} line {n}: {path} cannot be read as an image ({e})") from None
                image_ids[file] = len(image_ids) + 1
                inst["images"].append({"id": image_ids[file], "file_name": file, "width": w, "height": h})
            key = (file, obj if obj is not None else f"#{n}")
            if key not in refs:
                img = inst["images"][image_ids[file] - 1]
                ann_id = len(inst["annotations"]) + 1
                inst["annotations"].append(
                    {
                        "id": ann_id,
                        "image_id": image_ids[file],
                        "category_id": 1,
                        "iscrowd": 0,
                        "area": 0,
                        "bbox": [0, 0, 0, 0],
                        "segmentation": rle_encode(np.zeros((img["height"], img["width"]), bool)),
                        "l2l_placeholder": True,
                    }
                )
                refs[key] = {
                    "ref_id": len(refs) + 1,
                    "ann_id": ann_id,
                    "image_id": image_ids[file],
                    "category_id": 1,
                    "split": "train",
                    "sentences": [],
                }
            sent_id += 1
            refs[key]["sentences"].append({"sent_id": sent_id, "sent": text, "raw": text, "tokens": text.split()})
        src = folder / "source"
        atomic_write_text(src / "instances.json", json.dumps(inst))
        atomic_write_text(src / "refs(label).json", json.dumps(list(refs.values())))
        atomic_write_text(
            src / "meta.json",
            json.dumps(
                {"format": FORMAT, "name": f"images({images.name})", "image_dir": str(images.resolve())}, indent=1
            ),
        )
        return cls.create(folder, src)

    # ------------------------------------------------------------------ reading
    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.folder / ".lock", "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _read(self) -> dict[str, Any]:
        path = self.folder / "annotations.json"
        if not path.exists():
            return {"format": FORMAT, "rev": 0, "tasks": {}}
        return _json(path, "annotations")

    def annotations(self) -> dict[int, dict[str, Any]]:
        """The current answer per answered task (ref id → entry)."""
        return {int(k): v for k, v in self._read()["tasks"].items()}

    def revision(self, ref_id: int) -> int:
        """The task's revision (0: never answered; an undo counts too); give it back with the answer."""
        doc = self._read()
        e = doc["tasks"].get(str(ref_id))
        return int(e["rev"]) if e else int(doc.get("gone", {}).get(str(ref_id), 0))

    def mask(self, ref_id: int) -> np.ndarray | None:
        """The answered mask of a task (None when unanswered, rejected or skipped)."""
        e = self.annotations().get(ref_id)
        return None if e is None or e.get("mask") is None else rle_decode(e["mask"])

    def labeled_images(self, answers: dict[int, dict[str, Any]] | None = None) -> list[int]:
        answers = self.annotations() if answers is None else answers
        by_image: dict[int, list[str | None]] = defaultdict(list)
        for t in self.tasks.values():
            by_image[t.image_id].append(answers.get(t.ref_id, {}).get("status"))
        return sorted(
            i for i, st in by_image.items() if all(s in DONE for s in st) and any(s != "rejected" for s in st)
        )

    def status(self) -> dict[str, Any]:
        """Counts for the status panel: tasks by status, labeled images, seconds spent, clicks."""
        answers = self.annotations()
        counts = {s: sum(e["status"] == s for e in answers.values()) for s in STATUSES}
        return {
            "tasks": len(self.tasks),
            "answered": sum(counts[s] for s in DONE),
            **counts,
            "images": len({t.image_id for t in self.tasks.values()}),
            "labeled_images": len(self.labeled_images(answers)),
            "seconds": round(sum(float(e.get("seconds") or 0) for e in answers.values()), 2),
            "clicks": sum(len(e.get("clicks") or ()) for e in answers.values()),
        }

    # ------------------------------------------------------------------ answering
    def answer(
        self,
        ref_id: int,
        status: str,
        mask: np.ndarray | None = None,
        rev: int | None = None,
        clicks: list[tuple[float, float, bool]] | None = None,
        seconds: float | None = None,
        sentences: dict[int, str] | None = None,
        source: str = "person",
        box: tuple[float, float, float, float] | None = None,
    ) -> int:
        """Record an answer to task ``ref_id`` and save; returns the task's new revision. ``rev``: the
        revision the answer was made on (:meth:`revision`); another raises :class:`Conflict`. ``mask``:
        required for accepted / corrected (H×W bool at the image's size). ``sentences``: edited texts by
        sent_id (kept beside the originals). ``box``: the box prompt (x0, y0, x1, y1) when one was drawn."""
        task = self._task(ref_id)
        if status not in STATUSES:
            raise UsageError(f"answer to ref {ref_id}: status {status!r} is not one of {STATUSES}")
        entry: dict[str, Any] = {
            "status": status,
            "mask": None,
            "clicks": [list(map(float, c[:2])) + [bool(c[2])] for c in clicks or ()],
            "seconds": None if seconds is None else round(float(seconds), 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "by": source,
        }
        if box is not None:
            entry["box"] = [round(float(v), 2) for v in box]
        if status in ("accepted", "corrected"):
            info = self.source.images[task.image_id]
            hw = (int(info["height"]), int(info["width"]))
            if mask is None:
                raise UsageError(f"answer to ref {ref_id}: a {status} answer needs its mask")
            m = np.asarray(mask, bool)
            if m.shape != hw:
                raise UsageError(f"answer to ref {ref_id}: mask {m.shape} but image {task.image_id} is {hw}")
            if not m.any():
                raise UsageError(f"answer to ref {ref_id}: the mask is empty; reject the sentence instead")
            entry["mask"] = rle_encode(m)
        if sentences:
            known = dict(task.sentences)
            bad = [k for k in sentences if int(k) not in known]
            if bad:
                raise UsageError(f"answer to ref {ref_id}: sentence ids {bad} are not this ref's ({sorted(known)})")
            entry["sentences"] = {str(int(k)): str(v).strip() for k, v in sentences.items() if str(v).strip()}
        return self._commit(ref_id, entry, rev, "answer")

    def undo(self, ref_id: int, rev: int | None = None) -> int:
        """Take the task's answer back (the log keeps it); returns its new revision."""
        return self._commit(self._task(ref_id).ref_id, None, rev, "undo")

    def _task(self, ref_id: int) -> Task:
        try:
            return self.tasks[int(ref_id)]
        except (KeyError, ValueError):
            raise UsageError(f"{self.folder}: no task (training ref) {ref_id!r}") from None

    def _commit(self, ref_id: int, entry: dict[str, Any] | None, rev: int | None, what: str) -> int:
        with self._locked():
            doc = self._read()
            old = doc["tasks"].get(str(ref_id))
            have = int(old["rev"]) if old else int(doc.get("gone", {}).get(str(ref_id), 0))
            if rev is not None and int(rev) != have:
                append_record(
                    self.folder / "log.jsonl",
                    {
                        "event": "conflict",
                        "ref_id": ref_id,
                        "rev": rev,
                        "have": have,
                        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    },
                )
                raise Conflict(
                    f"ref {ref_id} was answered elsewhere since (revision {have}, this answer was made on {rev}): "
                    "reload it and answer again"
                )
            new = have + 1
            doc["rev"] = int(doc.get("rev", 0)) + 1
            if entry is None:
                doc["tasks"].pop(str(ref_id), None)
                doc.setdefault("gone", {})[str(ref_id)] = new  # an undone task keeps counting revisions
            else:
                doc["tasks"][str(ref_id)] = {**entry, "rev": new}
                doc.get("gone", {}).pop(str(ref_id), None)
            append_record(
                self.folder / "log.jsonl",
                {"event": what, "ref_id": ref_id, "rev": new, **({} if entry is None else entry)},
            )
            self._save(doc, ref_id)
        return new

    # ------------------------------------------------------------------ saving
    def _save(self, doc: dict[str, Any], changed: int | None) -> None:
        """annotations.json, then the dataset (so a crash between the two is repaired by the next save)."""
        atomic_write_text(self.folder / "annotations.json", json.dumps(doc, indent=0, sort_keys=True) + "\n")
        self.export(self.folder / "dataset", {int(k): v for k, v in doc["tasks"].items()})

    def export(self, out: str | Path, answers: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
        """Write the labeled dataset (module docstring) to ``out``; returns its meta."""
        out = Path(out)
        answers = self.annotations() if answers is None else answers
        inst = json.loads(self.source.instances_file.read_text(encoding="utf-8"))
        refs = (
            json.loads(self.source.refs_file.read_text(encoding="utf-8"))
            if self.source.refs_file.suffix == ".json"
            else copy.deepcopy(list(self.source.refs.values()))  # edits below must not reach the source
        )
        next_ann = max((int(a["id"]) for a in inst["annotations"]), default=0) + 1
        for ref in refs:
            e = answers.get(int(ref["ref_id"]))
            if e is None or int(ref["ref_id"]) not in self.tasks:
                continue
            if e["status"] == "rejected":
                ref["split"] = "rejected"
            elif e.get("mask") is not None:
                rle = e["mask"]
                from pycocotools import mask as mask_utils

                enc = {"size": rle["size"], "counts": rle["counts"].encode()}
                x, y, w, h = (float(v) for v in mask_utils.toBbox(enc))
                inst["annotations"].append(
                    {
                        "id": next_ann,
                        "image_id": int(ref["image_id"]),
                        "category_id": int(ref.get("category_id", 1)),
                        "iscrowd": 0,
                        "area": int(mask_utils.area(enc)),
                        "bbox": [x, y, w, h],
                        "segmentation": rle,
                        "l2l_label": {"status": e["status"], "source_ann_id": int(ref["ann_id"]), "rev": e["rev"]},
                    }
                )
                ref["ann_id"] = next_ann
                next_ann += 1
            for s in ref["sentences"]:
                edit = (e.get("sentences") or {}).get(str(s["sent_id"]))
                if edit:
                    s["original"], s["sent"], s["raw"], s["tokens"] = s["sent"], edit, edit, edit.split()
        labeled = set(self.labeled_images(answers))
        train_images = sorted({int(r["image_id"]) for r in refs if r["split"] == "train"})
        lab = tuple(i for i in train_images if i in labeled)
        frac = len(lab) / len(train_images) if train_images else 0.0
        split = LabelSplit(self.source.name, frac, 0, lab, tuple(i for i in train_images if i not in labeled))
        meta = {
            "format": FORMAT,
            "name": self.source.name,
            "image_dir": str(self.source.image_dir.resolve()),
            "project": str(self.folder.resolve()),
            "labeled_images": len(lab),
            "train_images": len(train_images),
            "label_fraction": repr(frac),
            "answers": len(answers),
        }
        atomic_write_text(out / "instances.json", json.dumps(inst, separators=(",", ":")))
        atomic_write_text(out / "refs(label).json", json.dumps(refs, separators=(",", ":")))
        split.save(out / "label_split.json")
        atomic_write_text(out / "meta.json", json.dumps(meta, indent=1) + "\n")
        return meta

    def train_overrides(self) -> list[str]:
        """``key=value`` overrides that point ``l2l train`` at the saved dataset and its split."""
        meta = _json(self.folder / "dataset" / "meta.json", "label dataset meta")
        d = self.folder / "dataset"
        return [
            f"data.root={d}",
            f"data.split_file={d / 'label_split.json'}",
            f"data.label_fraction={meta['label_fraction']}",
        ]


def _read_sentences(path: Path) -> list[tuple[str, str, str | None]]:
    """(image file, sentence, object key or None) per line of a sentences file (JSON lines or TSV)."""
    if not path.is_file():
        raise MissingFileError(f"sentences file not found: {path}")
    out: list[tuple[str, str, str | None]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.lstrip().startswith("{"):
            try:
                rec = json.loads(line)
                file, text = str(rec["image"]), str(rec["sentence"])
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise DataError(f'{path} line {n}: expected {{"image": ..., "sentence": ...}} ({e})') from None
            obj = None if rec.get("object") is None else str(rec["object"])
        else:
            parts = line.split("\t")
            if len(parts) < 2:
                raise DataError(f"{path} line {n}: expected IMAGE<TAB>SENTENCE, got {line[:80]!r}")
            file, text, obj = parts[0].strip(), parts[1], (parts[2].strip() if len(parts) > 2 else None)
        if not text.strip():
            raise DataError(f"{path} line {n}: empty sentence for image {file!r}")
        if os.path.splitext(file)[1].lower() not in IMAGE_EXT:
            raise DataError(f"{path} line {n}: {file!r} is not an image file name ({', '.join(IMAGE_EXT)})")
        out.append((file, text.strip(), obj))
    if not out:
        raise DataError(f"{path}: no sentences")
    return out
