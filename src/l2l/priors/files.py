"""``files`` — import priors made elsewhere (e.g. by your own MLLM serving stack).

A folder of ``<sample_id>.png`` (8- or 16-bit grey: value / max = probability) or
``<sample_id>.npy`` (float array in [0, 1], loaded with ``allow_pickle=False``), plus an
optional JSON ``{"<sample_id>": {"box": [x, y, w, h], "points": [[x, y], ...], "confidence": c}}``.
Every map is validated: it must exist, match its image's size and lie in [0, 1]; the error
names the sample id and the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ..errors import MissingFileError, UsageError
from ..utils.io import sha256_file
from .base import PriorInput, PriorRecord


class FilesProvider:
    name = "files"

    def __init__(self, folder: str | Path, cues: str | Path | None = None):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise MissingFileError(f"prior folder not found: {self.folder}")
        self.cues_file = Path(cues) if cues else None
        self.cues: dict[str, Any] = json.loads(self.cues_file.read_text()) if self.cues_file else {}

    def config(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "folder": str(self.folder.resolve()),
            "cues": str(self.cues_file) if self.cues_file else None,
            "cues_sha256": sha256_file(self.cues_file)[:16] if self.cues_file else None,
        }

    def source_digest(self, sid: int) -> str | None:
        """The hash of the file a sample's prior comes from: a store regenerates an entry whose source changed."""
        for f in (self.folder / f"{sid}.npy", self.folder / f"{sid}.png"):
            if f.exists():
                return sha256_file(f)
        return None

    def _load(self, sid: int) -> tuple[np.ndarray, Path]:
        npy, png = self.folder / f"{sid}.npy", self.folder / f"{sid}.png"
        if npy.exists():
            return np.load(npy, allow_pickle=False).astype(np.float32), npy
        if png.exists():
            with Image.open(png) as im:
                arr = np.asarray(im)
            if arr.ndim != 2:
                raise UsageError(f"prior of sample {sid}: {png} is not a single-channel image (shape {arr.shape})")
            top = 65535.0 if arr.dtype == np.uint16 or arr.max() > 255 else 255.0
            return arr.astype(np.float32) / top, png
        raise MissingFileError(f"prior of sample {sid} not found: neither {npy.name} nor {png.name} in {self.folder}")

    def __call__(self, batch: Sequence[PriorInput]) -> list[PriorRecord]:
        out = []
        for b in batch:
            p, path = self._load(b.sample_id)
            if p.shape != b.image.shape[:2]:
                raise UsageError(
                    f"prior of sample {b.sample_id}: {path} is {p.shape[::-1]} (w×h) but its image is "
                    f"{b.image.shape[1::-1]}"
                )
            if not np.isfinite(p).all():
                raise UsageError(
                    f"prior of sample {b.sample_id}: {path} holds {int((~np.isfinite(p)).sum())} NaN or infinite values"
                )
            if p.min() < 0 or p.max() > 1:
                raise UsageError(
                    f"prior of sample {b.sample_id}: {path} has values outside [0, 1] "
                    f"(min {np.nanmin(p):.3g}, max {np.nanmax(p):.3g})"
                )
            cue = dict(self.cues.get(str(b.sample_id), {}))
            conf = float(cue.pop("confidence", 1.0))
            prov = {"provider": self.name, "file": str(path), "source_sha256": sha256_file(path)}
            out.append(PriorRecord(b.sample_id, p, cue, conf, prov))
        return out
