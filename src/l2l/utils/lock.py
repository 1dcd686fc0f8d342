"""Folder locks: one process writes a run folder (or a grid cell) at a time.

A lock is a small JSON file created with ``O_EXCL`` (``host``, ``pid``, the process's start time where
``/proc`` tells it, ``since``, ``command``). It is *stale* only when its holder is gone: same host, and
that pid no longer runs (or runs a process started at another time — a reused pid, or is a zombie). A
lock this very process holds is taken over too (a new run object on a folder an earlier one of the same
process left, as a notebook does). A lock from another host is never taken over. A lock file that is empty or not JSON for longer than :data:`WRITE_GRACE_S`
(a holder writes it right after creating it) is not one this code left: :func:`lock_problem` names it
with the file to remove, in one line.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

WRITE_GRACE_S = 5.0
TRAIN_LOCK = ".train.lock"  # held by ``l2l train`` (engine/trainer.py) for its run folder


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a process from ``/proc/PID/stat``, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None
    return fields[0], fields[19]  # fields after "(comm)": state is field 3, starttime field 22


def _start_time(pid: int) -> str | None:
    st = _stat(pid)
    return st[1] if st else None


def read_lock(path: Path) -> dict[str, Any] | None:
    """The lock's record, or None when it is empty or unreadable."""
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) else None


def holder_alive(info: dict[str, Any]) -> bool:
    """Whether the lock's holder may still run (True for another host: it cannot be checked from here)."""
    if info.get("host") != socket.gethostname():
        return True
    try:
        pid = int(info["pid"])
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError, OverflowError):
        return True
    st = _stat(pid)
    if st is not None and st[0] in ("Z", "X"):  # killed, not yet reaped (its parent died too): gone
        return False
    started = info.get("started")
    return started is None or st is None or st[1] == started


def lock_problem(path: Path) -> str | None:
    """A one-line description of a lock file that is neither a live lock nor a stale one (empty or
    unreadable for longer than the write grace), naming the file to remove; None otherwise."""
    if read_lock(path) is not None:
        return None
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return None  # gone meanwhile
    if age < WRITE_GRACE_S:
        return None  # being written
    return (
        f"{path} is empty or unreadable (not a lock an l2l process is holding): remove it if no l2l process "
        "works on this folder"
    )


def describe_holder(path: Path, info: dict[str, Any]) -> str:
    return (
        f"{path.parent} is being written by pid {info.get('pid')} on {info.get('host')} since {info.get('since')} "
        f"({' '.join(map(str, info.get('command', [])))[:120] or 'l2l'}); wait for it or stop it "
        f"(a lock of a process that is gone is taken over; lock file: {path})"
    )


class FolderLock:
    """``acquire()`` → True when this process now holds ``path``; released by :meth:`release` or at exit."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.held = False

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                info = read_lock(self.path)
                mine = info is not None and info.get("pid") == os.getpid() and info.get("host") == socket.gethostname()
                if info is not None and (mine or not holder_alive(info)):
                    # its holder is gone (or is this process: a new run object on a folder it left): take it over
                    self.path.unlink(missing_ok=True)
                    continue
                return False
            with os.fdopen(fd, "w") as f:
                json.dump(
                    {
                        "host": socket.gethostname(),
                        "pid": os.getpid(),
                        "started": _start_time(os.getpid()),
                        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                        "command": [Path(sys.argv[0]).name, *sys.argv[1:]][:12],
                    },
                    f,
                )
            self.held = True
            atexit.register(self.release)
            return True
        return False

    def holder(self) -> dict[str, Any] | None:
        return read_lock(self.path)

    def release(self) -> None:
        if self.held:
            info = read_lock(self.path)
            if info is not None and info.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False


PARENT_ENV = "L2L_DIE_WITH_PARENT"


def die_with_parent() -> None:
    """In a child the grid runner started (``L2L_DIE_WITH_PARENT`` = the runner's pid): ask Linux to send
    this process SIGTERM when the runner dies, even by kill -9, so that no trainer is left writing a cell
    the next runner would start again. A process whose parent is not that pid (a worker under a launcher
    such as torchrun) is left alone; other systems: nothing (the trainer's own lock still refuses a second
    writer)."""
    want = os.environ.pop(PARENT_ENV, None)
    if not want or not sys.platform.startswith("linux") or str(os.getppid()) != want:
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != want:  # the runner died before the call took effect
        os.kill(os.getpid(), signal.SIGTERM)
