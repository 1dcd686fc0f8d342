"""Append-only JSON-lines records: the one reader and the one writer of every ``*.jsonl`` a command
resumes from (the prior store's manifests, Pseudo-RIS records, PPT's objects/images and log,
``predict``'s results, the trainer's ``metrics.jsonl``).

A record is one ``json.dumps`` line ended by ``\\n``, written in one call and flushed. What a crash or a
full disk leaves is a *torn last line*: bytes after the last ``\\n``. The rules:

* :func:`read_records` skips a torn last line (its record is redone by the rerun) and names any other
  line that is not a JSON object (file and line number) with :class:`~l2l.errors.DataError`;
* :func:`append_records` cuts a torn last line off *before* appending, so a new record never lands on a
  fragment (which would make one unreadable line out of two records);
* :func:`keep_records` rewrites a file atomically with the records a predicate keeps: a resumed run drops
  what it logged after the checkpoint it resumed from, so each step is logged once.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import DataError
from .io import atomic_write_text


def _split(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines (without ``\\n``) and the torn tail (bytes after the last newline)."""
    cut = data.rfind(b"\n") + 1
    return data[:cut].split(b"\n")[:-1] if cut else [], data[cut:]


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of ``path`` (``[]`` when it does not exist); a torn last line is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    lines, _torn = _split(path.read_bytes())
    out: list[dict[str, Any]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(
                f"{path}, line {n}: not a JSON record ({e.__class__.__name__}: {e}); a file damaged by hand "
                "or by an older version — remove that line (its entry is then redone) or the file"
            ) from None
        if not isinstance(rec, dict):
            raise DataError(f"{path}, line {n}: a JSON {type(rec).__name__}, not a record (an object)")
        out.append(rec)
    return out


def cut_torn_tail(path: str | Path) -> int:
    """Truncate ``path`` after its last complete line; returns how many bytes were cut (0: none)."""
    path = Path(path)
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        # read back from the end until a newline (records are short; a torn tail is at most one record)
        step, pos, tail = 4096, size, b""
        while pos > 0:
            start = max(0, pos - step)
            f.seek(start)
            tail = f.read(pos - start) + tail
            pos = start
            if b"\n" in tail:
                break
        keep = pos + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
        if keep < size:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        return size - keep


class RecordWriter:
    """Appends one record per :meth:`write` (one line, flushed; ``fsync`` when asked)."""

    def __init__(self, f, fsync: bool):
        self._f, self._fsync = f, fsync

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(record, default=float) + "\n")
        self._f.flush()
        if self._fsync:
            os.fsync(self._f.fileno())


@contextmanager
def append_records(path: str | Path, fsync: bool = False) -> Iterator[RecordWriter]:
    """Open ``path`` for appending records, after cutting off a torn last line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cut_torn_tail(path)
    with open(path, "a", encoding="utf-8") as f:
        yield RecordWriter(f, fsync)


def append_record(path: str | Path, record: dict[str, Any], fsync: bool = False) -> None:
    """One record appended to ``path`` (:func:`append_records` for many)."""
    with append_records(path, fsync) as w:
        w.write(record)


def keep_records(path: str | Path, keep: Callable[[dict[str, Any]], bool]) -> int:
    """Rewrite ``path`` (atomically) with the records ``keep`` accepts; returns how many were dropped."""
    path = Path(path)
    if not path.exists():
        return 0
    recs = read_records(path)
    kept = [r for r in recs if keep(r)]
    raw = path.read_bytes()
    if len(kept) == len(recs) and (not raw or raw.endswith(b"\n")):
        return 0
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
    return len(recs) - len(kept)
