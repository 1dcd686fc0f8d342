"""The offline prior store: compact, resumable, sharded across ranks, corruption-evident.

Layout of a store folder::

    store.json                      provider name, config and hash (a store holds one provider's priors),
                                    and the dataset it was made for (name + fingerprint of its sample ids)
    maps/<id mod 1000>/<id>.png     8-bit grey soft mask (value = round(255 · p)), written atomically
    manifest.rank<R>.jsonl          one line per finished entry: sample id, file, sha256 of the PNG,
                                    cue, confidence, provenance, seconds

An entry counts as present only when its manifest line parses **and** the PNG's hash matches;
a map without a line (a run killed between the two writes), a torn last line, or a PNG whose
bytes changed are all regenerated, never silently used. ``generate`` skips present entries, so
a killed run resumes without redoing or losing work; each rank of a ``torchrun`` job takes
``samples[rank::world]`` and writes its own manifest, so outputs are disjoint.
8-bit storage costs ~1–3 kB per RefCOCO-size map as PNG and quantises p by ≤ 1/510.

Sample ids mean something only in their dataset: :meth:`PriorStore.check_dataset` refuses a store
made for another one (its fingerprint differs). A provider with ``source_digest(sample_id)`` (the
``files`` provider) has entries regenerated when their source changed. No lock is needed:
concurrent ``generate`` calls on one store share the work through per-sample
claims (``claims/<id>``, taken over when their process is gone), each writing its own manifest.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from ..errors import DataError, MissingFileError, UsageError
from ..utils.io import atomic_write_bytes, atomic_write_text, sha256_bytes
from ..utils.jsonl import append_record, read_records
from ..utils.progress import progress
from .base import PriorInput, PriorProvider, PriorRecord, config_hash


class PriorStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._entries: dict[int, dict[str, Any]] | None = None

    # ------------------------------------------------------------------ metadata
    def init(self, provider: PriorProvider, dataset: dict[str, str] | None = None) -> None:
        """Create the store for ``provider`` (and ``dataset``: ``{"name", "fingerprint"}``), or check that it
        already holds the same provider's priors of the same dataset."""
        meta = {"provider": provider.name, "config": provider.config(), "hash": config_hash(provider.config())}
        if dataset is not None:
            meta["dataset"] = dict(dataset)
        f = self.root / "store.json"
        if f.exists():
            old = json.loads(f.read_text())
            if old.get("hash") != meta["hash"]:
                raise UsageError(
                    f"{self.root} holds priors of {old.get('provider')} with another configuration "
                    f"(hash {old.get('hash')} vs {meta['hash']}); use another folder"
                )
            if dataset is not None:
                self._check_meta_dataset(old, dataset)
                if "dataset" not in old:  # a store from before dataset fingerprints: record it now
                    atomic_write_text(f, json.dumps({**old, "dataset": dict(dataset)}, indent=2, sort_keys=True))
            return
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(f, json.dumps(meta, indent=2, sort_keys=True, default=str))

    def _check_meta_dataset(self, meta: dict[str, Any], dataset: dict[str, str]) -> None:
        have = meta.get("dataset")
        if have is not None and have.get("fingerprint") != dataset.get("fingerprint"):
            raise UsageError(
                f"{self.root} holds priors of dataset {have.get('name')!r} (fingerprint {have.get('fingerprint')}), "
                f"not of {dataset.get('name')!r} (fingerprint {dataset.get('fingerprint')}): its sample ids mean "
                "other sentences here; use the store made for this dataset"
            )

    def check_dataset(self, ds: Any) -> None:
        """Refuse a store made for another dataset (``ds``: a ReferDataset). A store made before
        fingerprints were recorded cannot be checked: a warning says so."""
        meta = self.meta
        if "dataset" not in meta:
            import warnings

            warnings.warn(
                f"{self.root} records no dataset (made by an older version): cannot check that it belongs "
                f"to {ds.name}; `l2l priors generate` on it records one",
                stacklevel=2,
            )
            return
        self._check_meta_dataset(meta, {"name": ds.name, "fingerprint": ds.fingerprint()})

    @property
    def meta(self) -> dict[str, Any]:
        f = self.root / "store.json"
        if not f.exists():
            raise MissingFileError(f"no prior store at {self.root} (store.json missing)")
        return json.loads(f.read_text())

    # ------------------------------------------------------------------ entries
    def _path(self, sample_id: int) -> Path:
        return self.root / "maps" / f"{sample_id % 1000:03d}" / f"{sample_id}.png"

    def entries(self, refresh: bool = False) -> dict[int, dict[str, Any]]:
        """Manifest entries by sample id (torn lines skipped; hashes checked on read, see ``get``)."""
        if self._entries is None or refresh:
            out: dict[int, dict[str, Any]] = {}
            for mf in sorted(self.root.glob("manifest.rank*.jsonl")):
                for n, e in enumerate(read_records(mf), 1):  # a torn last line: regenerated by the next run
                    try:
                        out[int(e["sample_id"])] = e
                    except (KeyError, TypeError, ValueError):
                        raise DataError(f"{mf}: record {n} has no integer sample_id: {json.dumps(e)[:120]}") from None
            self._entries = out
        return self._entries

    def _valid(self, e: dict[str, Any]) -> bytes | None:
        p = self.root / e["file"]
        if not p.exists():
            return None
        data = p.read_bytes()
        return data if sha256_bytes(data) == e["sha256"] else None

    def has(self, sample_id: int) -> bool:
        e = self.entries().get(sample_id)
        return e is not None and self._valid(e) is not None

    def get(self, sample_id: int) -> np.ndarray | None:
        """The prior (float32 H×W in [0, 1]) or None when absent; a corrupt entry raises."""
        e = self.entries().get(sample_id)
        if e is None:
            return None
        data = self._valid(e)
        if data is None:
            raise UsageError(
                f"prior of sample {sample_id} in {self.root} is missing or corrupt "
                f"({e['file']}); run `l2l priors generate` again to regenerate it"
            )
        return np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32) / 255.0

    def record(self, sample_id: int) -> dict[str, Any] | None:
        return self.entries().get(sample_id)

    def put(self, rec: PriorRecord, rank: int | str = 0, seconds: float = 0.0) -> None:
        """Store one prior and append its manifest line (``manifest.rank<R>.jsonl``; a str names the file part)."""
        buf = io.BytesIO()
        Image.fromarray(np.round(rec.prob * 255).astype(np.uint8)).save(buf, format="PNG", compress_level=6)
        data = buf.getvalue()
        path = self._path(rec.sample_id)
        atomic_write_bytes(path, data)
        line = {
            "sample_id": rec.sample_id,
            "file": str(path.relative_to(self.root)),
            "sha256": sha256_bytes(data),
            "cue": rec.cue,
            "confidence": float(rec.confidence),
            "provenance": rec.provenance,
            "seconds": round(seconds, 4),
        }
        name = rank if isinstance(rank, str) else f"rank{rank}"
        append_record(self.root / f"manifest.{name}.jsonl", line, fsync=True)
        if self._entries is not None:
            self._entries[rec.sample_id] = line

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        provider: PriorProvider,
        samples: Sequence[int],
        load: Callable[[int], PriorInput],
        batch_size: int = 8,
        rank: int = 0,
        world: int = 1,
        show_progress: bool = True,
        dataset: dict[str, str] | None = None,
    ) -> dict[str, int]:
        """Make the priors of ``samples`` that are not present yet (this rank's share). Several processes
        may work on one store at once: each claims the samples it generates (``claims/<id>``), skips
        those another live process has claimed, and writes its own manifest file."""
        self.init(provider, dataset)
        mine = list(samples)[rank::world]
        digest = getattr(provider, "source_digest", None)
        stale = {s for s in mine if digest is not None and self.has(s) and self._source_changed(s, digest)}
        todo = [s for s in mine if s in stale or not self.has(s)]
        bar = progress(None, total=len(todo), desc=f"priors {provider.name}", disable=not show_progress)
        manifest = f"rank{rank}" if not self._other_writers() else f"rank{rank}.p{os.getpid()}"
        try:
            done, others = self._generate(provider, todo, load, batch_size, manifest, bar)
        finally:
            bar.close()
        return {"assigned": len(mine), "skipped": len(mine) - len(todo), "generated": done, "by_others": others}

    def _source_changed(self, sample_id: int, digest: Callable[[int], str | None]) -> bool:
        e = self.entries().get(sample_id) or {}
        old = (e.get("provenance") or {}).get("source_sha256")
        return old is not None and old != digest(sample_id)

    def _other_writers(self) -> bool:
        """True when a live process holds claims in this store (then this one writes its own manifest)."""
        claims = self.root / "claims"
        return claims.exists() and any(_alive(_pid_of(c)) for c in claims.iterdir())

    def _claim(self, sample_id: int) -> bool:
        """Claim ``sample_id`` for this process (O_EXCL); a claim of a process that no longer runs is taken over."""
        c = self.root / "claims" / str(sample_id)
        c.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(c, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pid = _pid_of(c)
                if pid == os.getpid():
                    return True
                if pid and _alive(pid):
                    return False
                c.unlink(missing_ok=True)  # stale
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return True
        return False

    def _mtime(self, sample_id: int) -> float | None:
        try:
            return self._path(sample_id).stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def _generate(self, provider, todo, load, batch_size, manifest, bar) -> tuple[int, int]:
        done = others = 0
        queue = deque(todo)
        seen = {sid: self._mtime(sid) for sid in todo}  # a map written after this by another process = done
        while queue:
            chunk_ids: list[int] = []
            while queue and len(chunk_ids) < batch_size:
                sid = queue.popleft()
                if self._claim(sid):
                    if self._mtime(sid) != seen[sid] and self.entries(refresh=True) and self.has(sid):
                        (self.root / "claims" / str(sid)).unlink(missing_ok=True)
                        others += 1
                        bar.update(1)
                        continue
                    chunk_ids.append(sid)
                else:
                    others += 1
                    bar.update(1)
            if not chunk_ids:
                continue
            chunk = [load(s) for s in chunk_ids]
            t = time.perf_counter()
            recs = provider(chunk)
            dt = (time.perf_counter() - t) / max(len(chunk), 1)
            try:
                for inp, rec in zip(chunk, recs):
                    if rec.sample_id != inp.sample_id or rec.prob.shape != inp.image.shape[:2]:
                        raise UsageError(
                            f"{provider.name} returned a prior of shape {rec.prob.shape} for sample "
                            f"{inp.sample_id} (image {inp.image.shape[:2]})"
                        )
                    self.put(rec, manifest, dt)
                    done += 1
            finally:
                for sid in chunk_ids:
                    (self.root / "claims" / str(sid)).unlink(missing_ok=True)
            bar.update(len(chunk))
        return done, others

    def __len__(self) -> int:
        return len(self.entries())

    def sample_ids(self) -> Iterable[int]:
        return sorted(self.entries())


def _pid_of(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
