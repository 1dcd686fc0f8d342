"""One loader for RefCOCO, RefCOCO+, RefCOCOg (REFER layout) and SynthRef.

REFER layout (as distributed with the REFER toolkit)::

    DATA_ROOT/refcoco/instances.json     refs(unc).p  refs(google).p
    DATA_ROOT/refcoco+/instances.json    refs(unc).p
    DATA_ROOT/refcocog/instances.json    refs(umd).p  refs(google).p
    DATA_ROOT/images/mscoco/images/train2014/COCO_train2014_*.jpg   (or pass image_dir)

SynthRef layout (``l2l data synth``): ``DIR/instances.json``, ``DIR/refs(synthref).json``,
``DIR/images/``. A label project's dataset (``l2l.label.project``): ``DIR/instances.json``,
``DIR/refs(label).json``, ``DIR/meta.json`` (the source's name and image folder). The refs pickles are read with a restricted unpickler (nothing in them
can run); the SynthRef refs are JSON with the same fields.

The index holds one :class:`SampleRecord` per (ref, sentence), as in LAVT's evaluation.
Masks are decoded on demand from polygons (possibly several parts), uncompressed RLE or
compressed RLE with pycocotools.
"""

from __future__ import annotations

import json
import pickle
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_utils

from ..errors import DataError, MissingFileError, NotFound, UsageError
from ..utils.safe_pickle import restricted_load
from .images import _from_pil

DATASETS: dict[str, tuple[str, ...]] = {
    "refcoco": ("unc", "google"),
    "refcoco+": ("unc",),
    "refcocog": ("umd", "google"),
}
LENGTH_BUCKETS: tuple[tuple[str, int, int], ...] = (("1-3", 1, 3), ("4-6", 4, 6), ("7-10", 7, 10), ("11+", 11, 10**9))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(
            f"{path}: not valid JSON ({e}); a damaged or truncated file? Copy or generate it again"
        ) from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e})") from None


def _by_id(items: list[Any], path: Path, what: str) -> dict[int, Any]:
    out = {}
    for n, it in enumerate(items):
        try:
            out[int(it["id"])] = it
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}: {what} entry {n} has no integer id: {str(it)[:120]}") from None
    return out


def length_bucket(n_words: int) -> str:
    """The expression-length bucket of the L2L paper's Table 10 (1–3 / 4–6 / 7–10 / 11+)."""
    for name, lo, hi in LENGTH_BUCKETS:
        if lo <= n_words <= hi:
            return name
    return LENGTH_BUCKETS[0][0]  # an empty sentence counts with the shortest


@dataclass(frozen=True)
class SampleRecord:
    """One (ref, sentence) pair. Carries no mask: masks are fetched by ``ann_id``."""

    sample_id: int  # the REFER sent_id, unique in a dataset
    ref_id: int
    ann_id: int
    image_id: int
    split: str
    sentence: str
    kind: str = ""  # expression kind (SynthRef only)

    @property
    def n_words(self) -> int:
        return len(self.sentence.split())


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise MissingFileError(f"{what} not found: {path}")
    return path


class ReferDataset:
    """Refs, annotations and images of one REFER-format dataset."""

    def __init__(self, name: str, instances_file: str | Path, refs_file: str | Path, image_dir: str | Path):
        self.name = name
        self.instances_file = _require(Path(instances_file), "instances file")
        self.refs_file = _require(Path(refs_file), "refs file")
        self.image_dir = _require(Path(image_dir), "image folder")
        inst = _read_json(self.instances_file)
        if not isinstance(inst, dict):
            raise DataError(f"{self.instances_file}: expected a COCO instances object, got {type(inst).__name__}")
        for key in ("images", "annotations", "categories"):
            if not isinstance(inst.get(key), list):
                raise DataError(f"{self.instances_file}: missing the '{key}' list")
        if self.refs_file.suffix == ".json":
            refs = _read_json(self.refs_file)
        else:
            try:
                refs = restricted_load(self.refs_file)
            except pickle.UnpicklingError as e:  # a refused class (never run) or a damaged file: one line
                raise DataError(f"refused to load {e} — refs pickles hold plain lists and dicts only") from None
        if not isinstance(refs, list):
            raise DataError(f"{self.refs_file}: expected a list of refs, got {type(refs).__name__}")
        self.images: dict[int, dict[str, Any]] = _by_id(inst["images"], self.instances_file, "image")
        self.anns: dict[int, dict[str, Any]] = _by_id(inst["annotations"], self.instances_file, "annotation")
        self.categories: dict[int, str] = {
            k: str(c.get("name", k)) for k, c in _by_id(inst["categories"], self.instances_file, "category").items()
        }
        self.refs: dict[int, dict[str, Any]] = {}
        self._samples: list[SampleRecord] = []
        for ref in refs:
            try:
                ref_id, ann_id, image_id = int(ref["ref_id"]), int(ref["ann_id"]), int(ref["image_id"])
                split, sentences = str(ref["split"]), ref["sentences"]
            except (KeyError, TypeError, ValueError) as e:
                raise DataError(f"{self.refs_file}: malformed ref {str(ref)[:200]} ({e!r})") from None
            if ann_id not in self.anns:
                raise DataError(
                    f"{self.refs_file}: ref {ref_id} points to annotation {ann_id}, "
                    f"which {self.instances_file} does not contain"
                )
            if image_id not in self.images:
                raise DataError(
                    f"{self.refs_file}: ref {ref_id} points to image {image_id}, "
                    f"which {self.instances_file} does not contain"
                )
            self.refs[ref_id] = ref
            try:
                for s in sentences:
                    self._samples.append(
                        SampleRecord(
                            int(s["sent_id"]), ref_id, ann_id, image_id, split, str(s["sent"]), str(ref.get("kind", ""))
                        )
                    )
            except (KeyError, TypeError, ValueError) as e:
                raise DataError(
                    f"{self.refs_file}: ref {ref_id} has a malformed sentence ({e!r}; each needs sent_id and sent)"
                ) from None
        self._by_id = {s.sample_id: s for s in self._samples}
        if len(self._by_id) != len(self._samples):
            raise DataError(f"{self.refs_file}: sent_id values are not unique")
        self._by_split: dict[str, list[SampleRecord]] = defaultdict(list)
        for s in self._samples:
            self._by_split[s.split].append(s)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def refer(
        cls,
        data_root: str | Path,
        dataset: str = "refcoco",
        split_by: str | None = None,
        image_dir: str | Path | None = None,
    ) -> "ReferDataset":
        """RefCOCO / RefCOCO+ / RefCOCOg in the REFER layout under ``data_root``."""
        if dataset not in DATASETS:
            raise UsageError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}")
        split_by = split_by or DATASETS[dataset][0]
        if split_by not in DATASETS[dataset]:
            raise UsageError(f"{dataset} has splits by {DATASETS[dataset]}, not {split_by!r}")
        root = Path(data_root)
        image_dir = Path(image_dir) if image_dir else root / "images" / "mscoco" / "images" / "train2014"
        return cls(
            f"{dataset}({split_by})",
            root / dataset / "instances.json",
            root / dataset / f"refs({split_by}).p",
            image_dir,
        )

    @classmethod
    def synthref(cls, root: str | Path) -> "ReferDataset":
        """A SynthRef folder written by ``l2l data synth``."""
        root = Path(root)
        if not (root / "meta.json").exists():
            raise MissingFileError(
                f"{root} is not a finished SynthRef dataset (no meta.json); run `l2l data synth --out {root}`"
            )
        return cls("synthref", root / "instances.json", root / "refs(synthref).json", root / "images")

    @classmethod
    def pseudoris(cls, root: str | Path) -> "ReferDataset":
        """A dataset written by ``l2l pseudo-ris generate`` (its images stay in the source's folder)."""
        root = Path(root)
        meta_file = root / "meta.json"
        if not meta_file.exists():
            raise MissingFileError(f"{root} is not a finished Pseudo-RIS dataset (no meta.json)")
        meta = json.loads(meta_file.read_text())
        return cls(
            f"pseudo-ris({meta.get('source', '?')})",
            root / "instances.json",
            root / "refs(pseudo-ris).json",
            meta["image_dir"],
        )

    @classmethod
    def label(cls, root: str | Path) -> "ReferDataset":
        """A dataset saved by a label project (``l2l.label.project``): it keeps its source's name (so the
        source's prior stores serve it) and reads the images from the source's folder."""
        root = Path(root)
        meta_file = root / "meta.json"
        if not meta_file.exists():
            raise MissingFileError(f"{root} is not a finished label dataset (no meta.json)")
        meta = _read_json(meta_file)
        return cls(str(meta["name"]), root / "instances.json", root / "refs(label).json", meta["image_dir"])

    @classmethod
    def open(
        cls,
        path: str | Path,
        dataset: str | None = None,
        split_by: str | None = None,
        image_dir: str | Path | None = None,
    ) -> "ReferDataset":
        """SynthRef when ``path`` holds one, else the REFER layout (``dataset`` required)."""
        path = Path(path)
        if dataset in (None, "label") and (path / "refs(label).json").exists():
            return cls.label(path)
        if dataset in (None, "pseudo-ris") and (path / "refs(pseudo-ris).json").exists():
            return cls.pseudoris(path)
        if dataset in (None, "synthref"):
            if (path / "refs(synthref).json").exists() or dataset == "synthref":
                return cls.synthref(path)
            raise MissingFileError(
                f"{path} holds no SynthRef dataset; for RefCOCO/+/g pass --dataset "
                f"({', '.join(sorted(DATASETS))}) and the REFER data root"
            )
        return cls.refer(path, dataset, split_by, image_dir)

    # ------------------------------------------------------------------ index
    @property
    def splits(self) -> list[str]:
        return sorted(self._by_split)

    def samples(self, split: str | None = None) -> list[SampleRecord]:
        if split is None:
            return list(self._samples)
        if split not in self._by_split:
            raise NotFound(f"{self.name} has no split {split!r}; it has {self.splits}")
        return list(self._by_split[split])

    def sample(self, sample_id: int) -> SampleRecord:
        try:
            return self._by_id[sample_id]
        except KeyError:
            raise NotFound(
                f"{self.name} has no sample {sample_id} (a prior store or id list of another dataset?)"
            ) from None

    def fingerprint(self) -> str:
        """A hash of what the sample ids mean here (id → image, sentence): stores keyed by sample id
        (priors) check it, so that one made for another dataset is not used by mistake."""
        import hashlib

        h = hashlib.sha256(self.name.encode())
        for sid in sorted(self._by_id):
            r = self._by_id[sid]
            h.update(f"\n{sid}:{r.image_id}:{r.sentence}".encode())
        return h.hexdigest()[:16]

    def image_ids(self, split: str) -> list[int]:
        """Sorted ids of the images that have refs in ``split``."""
        return sorted({s.image_id for s in self.samples(split)})

    # ------------------------------------------------------------------ content
    def image_path(self, image_id: int) -> Path:
        return self.image_dir / self.images[image_id]["file_name"]

    def load_image(self, image_id: int) -> np.ndarray:
        """RGB uint8 H×W×3; a missing or unreadable file raises an error naming it."""
        path = self.image_path(image_id)
        try:
            with Image.open(path) as im:
                im.load()
                arr = _from_pil(im, False, str(path))  # 16-bit scaled; stored pixel order (no EXIF turn)
        except FileNotFoundError:
            raise MissingFileError(f"image {image_id} of {self.name} is missing: {path}") from None
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"image {image_id} of {self.name} cannot be read: {path} ({e})") from None
        info = self.images[image_id]
        if arr.shape[:2] != (int(info["height"]), int(info["width"])):
            raise DataError(
                f"image {path} is {arr.shape[1]}x{arr.shape[0]} but {self.instances_file} "
                f"says {info['width']}x{info['height']}"
            )
        return arr

    def mask(self, ann_id: int) -> np.ndarray:
        """Boolean H×W mask of an annotation (polygons, uncompressed or compressed RLE)."""
        return _decode_cached(self, ann_id).copy()

    def box(self, ann_id: int) -> tuple[float, float, float, float]:
        """COCO box (x, y, w, h) of an annotation."""
        x, y, w, h = self.anns[ann_id]["bbox"]
        return float(x), float(y), float(w), float(h)

    def category(self, ann_id: int) -> str:
        return self.categories[int(self.anns[ann_id]["category_id"])]

    def image_anns(self, image_id: int) -> list[int]:
        if not hasattr(self, "_anns_by_image"):
            idx: dict[int, list[int]] = defaultdict(list)
            for a in self.anns.values():
                idx[int(a["image_id"])].append(int(a["id"]))
            self._anns_by_image = idx
        return sorted(self._anns_by_image.get(image_id, []))

    def _decode(self, ann_id: int) -> np.ndarray:
        if ann_id not in self.anns:
            raise DataError(f"{self.name}: no annotation {ann_id} in {self.instances_file}")
        ann = self.anns[ann_id]
        info = self.images[int(ann["image_id"])]
        h, w = int(info["height"]), int(info["width"])
        seg = ann.get("segmentation")
        try:
            if isinstance(seg, list):  # polygons, maybe several parts
                if not seg:
                    raise DataError(f"{self.name}: annotation {ann_id} has an empty polygon list")
                rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
            elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):  # uncompressed RLE
                rle = mask_utils.frPyObjects(seg, *seg["size"])
            elif isinstance(seg, dict):  # compressed RLE
                counts = seg["counts"]
                rle = {
                    "size": list(seg["size"]),
                    "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
                }
            else:
                raise DataError(f"{self.name}: annotation {ann_id} has no usable segmentation ({type(seg).__name__})")
            m = mask_utils.decode(rle)
        except DataError:
            raise
        except Exception as e:  # pycocotools raises bare exceptions on malformed input
            raise DataError(f"{self.name}: annotation {ann_id} has a malformed segmentation ({e})") from None
        if m.ndim == 3:
            m = m.max(axis=2)
        if m.shape != (h, w):
            raise DataError(f"{self.name}: annotation {ann_id} decodes to {m.shape}, image is {(h, w)}")
        return m.astype(bool)

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}: {len(v)}" for s, v in sorted(self._by_split.items()))
        return f"ReferDataset({self.name}, {len(self.refs)} refs, {len(self._samples)} sentences; {counts})"


@lru_cache(maxsize=4096)
def _decode_cached(ds: ReferDataset, ann_id: int) -> np.ndarray:
    m = ds._decode(ann_id)
    m.setflags(write=False)
    return m
