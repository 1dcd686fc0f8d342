"""The guidance bank ``G_i`` (docs/spec.md §3): one evolving guidance map per unlabeled sample.

Initialised to the stored prior ``P†_i``, read at every visit to condition the weak pass,
overwritten with the calibrated prior ``P̃_i``. Stored as uint8 at a reduced square resolution
in a memory-mapped file, so a RefCOCO-size bank (≈10⁵ samples) costs little RAM and survives
a restart; ``save_to`` / ``load_from`` copy it into and out of checkpoints.

Frames: the bank holds each map in the *squashed image frame* (the image resized to a square,
as the weak view's first step does). :meth:`to_view` applies a sample's weak-view
:class:`~l2l.data.augment.Geometry` (scale jitter, crop or pad, flip) to bank maps, and
:meth:`from_view` inverts it when writing back: pixels the view did not cover (a crop) keep
their old values. Under DDP every rank writes only the rows of its own samples (disjoint).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.augment import Geometry
from ..errors import MissingFileError, UsageError

BANK_FORMAT = 1


class GuidanceBank:
    def __init__(self, root: str | Path, sample_ids: Sequence[int] | None = None, size: int = 32):
        self.root = Path(root)
        index = self.root / "index.json"
        if index.exists():
            doc = json.loads(index.read_text())
            if doc.get("format") != BANK_FORMAT:
                raise UsageError(f"{index}: bank format {doc.get('format')}, this version reads {BANK_FORMAT}")
            if sample_ids is not None and [int(i) for i in sample_ids] != doc["sample_ids"]:
                raise UsageError(f"the bank in {self.root} was made for other samples; use another folder")
            self.ids, self.size = doc["sample_ids"], int(doc["size"])
            mode = "r+"
        else:
            if sample_ids is None:
                raise MissingFileError(f"no guidance bank in {self.root}")
            self.ids, self.size = [int(i) for i in sample_ids], int(size)
            self.root.mkdir(parents=True, exist_ok=True)
            mode = "w+"
        self.row = {sid: r for r, sid in enumerate(self.ids)}
        shape = (len(self.ids), self.size, self.size)
        self.maps = np.memmap(str(self.root / "bank.u8"), dtype=np.uint8, mode=mode, shape=shape)  # type: ignore[call-overload]
        self.init = np.memmap(str(self.root / "initialised.u8"), dtype=np.uint8, mode=mode, shape=(len(self.ids),))  # type: ignore[call-overload]
        if mode == "w+":
            index.write_text(json.dumps({"format": BANK_FORMAT, "size": self.size, "sample_ids": self.ids}))

    # ------------------------------------------------------------------ init and persistence
    def initialise(self, prior: Callable[[int], np.ndarray | None], ids: Sequence[int] | None = None) -> int:
        """G_i ← P†_i (resized by area to the bank size) for samples not yet initialised; returns how many."""
        done = 0
        for sid in ids if ids is not None else self.ids:
            r = self.row[int(sid)]
            if self.init[r]:
                continue
            p = prior(int(sid))
            if p is None:
                continue
            t = torch.as_tensor(np.asarray(p, dtype=np.float32))[None, None]
            m = (
                F.adaptive_avg_pool2d(t, (self.size, self.size))
                if min(t.shape[-2:]) >= self.size
                else F.interpolate(t, size=(self.size, self.size), mode="bilinear", align_corners=False)
            )
            self.maps[r] = np.round(m[0, 0].clamp(0, 1).numpy() * 255).astype(np.uint8)
            self.init[r] = 1
            done += 1
        self.flush()
        return done

    def flush(self) -> None:
        self.maps.flush()
        self.init.flush()

    def save_to(self, folder: str | Path) -> None:
        self.flush()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for f in ("bank.u8", "initialised.u8", "index.json"):
            shutil.copyfile(self.root / f, folder / f)

    def load_from(self, folder: str | Path) -> None:
        folder = Path(folder)
        doc = json.loads((folder / "index.json").read_text())
        if doc["sample_ids"] != self.ids or int(doc["size"]) != self.size:
            raise UsageError(f"bank snapshot in {folder} belongs to other samples or another size")
        self.maps[:] = np.fromfile(folder / "bank.u8", dtype=np.uint8).reshape(self.maps.shape)
        self.init[:] = np.fromfile(folder / "initialised.u8", dtype=np.uint8)
        self.flush()

    # ------------------------------------------------------------------ access
    def has(self, sample_ids: Sequence[int]) -> torch.Tensor:
        return torch.tensor([bool(self.init[self.row[int(s)]]) for s in sample_ids])

    def get(self, sample_ids: Sequence[int]) -> torch.Tensor:
        """(B, 1, S, S) float maps in the bank frame."""
        rows = [self.row[int(s)] for s in sample_ids]
        return torch.from_numpy(np.asarray(self.maps[rows], dtype=np.float32) / 255.0)[:, None]

    def put(self, sample_ids: Sequence[int], maps: torch.Tensor) -> None:
        """Write (B, 1, S, S) float maps in the bank frame."""
        arr = np.round(maps.detach().float().clamp(0, 1).cpu().numpy()[:, 0] * 255).astype(np.uint8)
        for s, m in zip(sample_ids, arr):
            r = self.row[int(s)]
            self.maps[r] = m
            self.init[r] = 1

    # ------------------------------------------------------------------ frames
    def to_view(self, maps: torch.Tensor, geometries: Sequence[Geometry]) -> torch.Tensor:
        """Bank-frame maps (B, 1, S, S) → the weak views' frames (B, 1, out, out)."""
        out = []
        for m, g in zip(maps, geometries):
            sq = Geometry((self.size, self.size), g.out_size, g.scale, g.offset, g.flip)
            out.append(sq.apply(m, "prior"))
        return torch.stack(out)

    def from_view(self, maps: torch.Tensor, geometries: Sequence[Geometry], old: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_view`: view-frame maps (B, 1, out, out) → bank frame, keeping ``old``
        (B, 1, S, S) where the view did not cover the image."""
        res = []
        for m, g, o in zip(maps, geometries, old):
            m = torch.flip(m, dims=[-1]) if g.flip else m
            s, n = g.scaled_size, g.out_size
            dy, dx = g.offset
            canvas = torch.zeros(1, s, s)
            cover = torch.zeros(1, s, s)
            if s > n:  # the view was a crop of the scaled image
                canvas[:, dy : dy + n, dx : dx + n] = m
                cover[:, dy : dy + n, dx : dx + n] = 1
            elif s < n:  # the view padded the scaled image
                canvas = m[:, -dy : -dy + s, -dx : -dx + s]
                cover = torch.ones(1, s, s)
            else:
                canvas, cover = m, torch.ones(1, s, s)
            size = (self.size, self.size)
            back = F.interpolate(canvas[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
            cov = F.interpolate(cover[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
            res.append(torch.where(cov > 0.5, back, o))
        return torch.stack(res)
