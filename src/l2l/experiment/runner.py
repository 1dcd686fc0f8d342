"""``l2l experiment run GRID.yaml``: train and evaluate every cell of a grid, resumably.

Each cell is a normal ``l2l train`` run folder followed by its ``l2l eval`` calls, run as child
processes (``python -m l2l.cli …``, or ``LAUNCHER -m l2l.cli train …`` with e.g.
``--launcher "torchrun --nproc_per_node 4"``). A cell's state is read from its folder:

* ``done``      every evaluation file is there → skipped;
* ``trained``   training finished, some evaluation missing → only those evaluations run;
* ``partial``   a checkpoint and no final evaluation → ``l2l train`` resumes from the checkpoint;
* ``new``       nothing yet;
* ``conflict``  the folder's ``config.yaml`` differs from what the grid resolves to → refused
  (the differences are printed; delete the folder or use another ``--out``);
* ``locked``    another worker holds ``.experiment.lock`` → skipped by this worker.

Several workers can share a grid folder (``--shard i/n`` on a cluster, or ``--jobs N`` here):
a lock file per cell keeps two workers off the same cell; a lock left by a dead process on the
same host is taken over, one from another host must be removed by hand (the message names it).
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from ..config import config_diff, config_identity, to_dict
from ..errors import UsageError
from ..utils.io import atomic_write_text
from ..utils.lock import PARENT_ENV, TRAIN_LOCK, FolderLock, describe_holder, holder_alive, lock_problem, read_lock
from ..utils.run_folder import RunFolder
from .grid import Cell, Grid

LOCK = ".experiment.lock"
CELL_FILE = "cell.json"


def folder_identity(run: Path) -> dict[str, Any]:
    """The identity of the config a run folder was made with, read through the current schema: a
    key added to the schema later counts with its default — the behaviour from before the key
    existed — or, where the default changed that behaviour, with the old value that
    ``schema.LEGACY_DEFAULTS`` names (as a resume reads it), so adding a key does not orphan
    finished runs and changing a default does not pass them off as made with it."""
    from ..config import legacy_overrides, load_config
    from ..schema import LEGACY_DEFAULTS, TrainConfig

    saved = RunFolder(run).config
    return config_identity(to_dict(load_config(TrainConfig, saved, legacy_overrides(saved, LEGACY_DEFAULTS))))


def cell_state(cell: Cell, ignore_lock: bool = False) -> str:
    from ..engine.checkpoint import latest

    run = cell.run_dir
    if RunFolder(run).is_run():
        try:
            have = folder_identity(run)
        except (yaml.YAMLError, ValueError):
            return "conflict"
        if have != config_identity(to_dict(cell.cfg)):
            return "conflict"
    if not ignore_lock and _locked(run):
        return "locked"
    if not (run / cell.evals[0].filename).exists():
        return "partial" if latest(RunFolder(run).checkpoints) is not None else "new"
    return "done" if not missing_evals(cell) else "trained"


def missing_evals(cell: Cell) -> list:
    """The evaluations still to run after training: absent, or older than the training's own
    evaluation (made from an earlier model, e.g. before a resume)."""
    trained = (cell.run_dir / cell.evals[0].filename).stat().st_mtime
    return [
        e
        for e in cell.evals[1:]
        if not (cell.run_dir / e.filename).exists() or (cell.run_dir / e.filename).stat().st_mtime < trained
    ]


def conflict_message(cell: Cell) -> str:
    try:
        have = folder_identity(cell.run_dir)
    except (yaml.YAMLError, ValueError) as e:
        return f"{cell.run_dir}/config.yaml cannot be read with this version's schema ({e})"
    diff = config_diff(have, config_identity(to_dict(cell.cfg)))
    return (
        f"{cell.run_dir} was made with another config (folder ≠ grid: "
        + "; ".join(diff[:6])
        + (f"; … {len(diff) - 6} more" if len(diff) > 6 else "")
        + "): delete it or use another --out"
    )


def _locked(run: Path) -> bool:
    """The cell's runner lock or the trainer's own lock is held by a process that may still run."""
    for name in (LOCK, TRAIN_LOCK):
        info = read_lock(run / name)
        if info is not None and holder_alive(info):
            return True
        if info is None and (run / name).exists() and lock_problem(run / name) is None:
            return True  # being written this instant
    return False


def _lock_message(run: Path) -> str:
    for name in (LOCK, TRAIN_LOCK):
        if (why := lock_problem(run / name)) is not None:
            return why
        info = read_lock(run / name)
        if info is not None and holder_alive(info):
            return describe_holder(run / name, info)
    return "another worker took this cell"


def _acquire(run: Path) -> FolderLock | None:
    lock = FolderLock(run / LOCK)
    return lock if lock.acquire() else None


@dataclass
class CellResult:
    name: str
    before: str
    after: str
    seconds: float = 0.0
    message: str = ""


class Runner:
    def __init__(
        self,
        grid: Grid,
        launcher: str | None = None,
        jobs: int = 1,
        python: str = sys.executable,
        echo: Callable[[str], None] = print,
        devices: Sequence[str] = (),
    ):
        """``devices``: GPU groups, one per concurrent cell (``["0", "1"]``: two cells, one GPU each;
        ``["0,1", "2,3"]``: two cells of two GPUs, e.g. under ``torchrun --standalone``); each cell's
        processes see only their group (``CUDA_VISIBLE_DEVICES``). Default jobs = number of groups."""
        self.grid, self.echo = grid, echo
        self.jobs = max(1, len(devices) if devices and jobs <= 1 else jobs)
        if devices and self.jobs > len(devices):
            raise UsageError(f"--jobs {self.jobs} needs at least as many --devices groups, got {list(devices)}")
        self.cli = [python, "-m", "l2l.cli"]
        self.train_cli = shlex.split(launcher) + ["-m", "l2l.cli"] if launcher else self.cli
        self._lock = threading.Lock()
        self._free: queue.Queue[str | None] = queue.Queue()
        slots: list[str | None] = list(devices) or [None] * self.jobs
        for d in slots[: self.jobs]:
            self._free.put(d)

    def _env(self, device: str | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env[PARENT_ENV] = str(os.getpid())  # the child dies with this runner (utils/lock.py: die_with_parent)
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        # the thread policy (utils/threads.py) reaches each job through L2L_THREADS / OMP_NUM_THREADS:
        # one thread each unless --threads said otherwise; the cores are used by --jobs
        if self.jobs > 1 or not sys.stdout.isatty():
            env.setdefault("L2L_NO_PROGRESS", "1")
        return env

    def _say(self, msg: str) -> None:
        with self._lock:
            self.echo(f"[{time.strftime('%H:%M:%S')}] {msg}")

    def prepare(self, cells: Sequence[Cell]) -> None:
        """Each dataset's ``prepare`` commands (data, priors), once; they skip finished work themselves."""
        for name in dict.fromkeys(c.dataset for c in cells):
            for cmd in self.grid.datasets[name].prepare:
                self._say(f"prepare {name}: l2l {shlex.join(cmd)}")
                rc = subprocess.run(self.cli + list(cmd), env=self._env()).returncode
                if rc != 0:
                    raise UsageError(
                        f"{self.grid.path}: prepare step of {name} failed (exit {rc}): l2l {shlex.join(cmd)}"
                    )

    def run_cell(self, cell: Cell) -> CellResult:
        before = cell_state(cell)
        if before in ("done", "locked", "conflict"):
            msg = {"conflict": conflict_message, "locked": lambda c: _lock_message(c.run_dir)}.get(before)
            return CellResult(cell.name, before, before, message=msg(cell) if msg else "")
        lock = _acquire(cell.run_dir)
        if lock is None:
            return CellResult(cell.name, before, "locked", message=_lock_message(cell.run_dir))
        t0 = time.perf_counter()
        log = cell.run_dir / "experiment.log"
        device = self._free.get()
        try:
            with open(log, "a") as f:
                self._say(f"start {cell.name} ({before})" + (f" on GPU {device}" if device is not None else ""))
                if before in ("new", "partial"):
                    err = self._step(f, "train", self.train_cli + cell.train_argv(), device)
                    if err:
                        return CellResult(
                            cell.name, before, _failure(err), time.perf_counter() - t0, f"{err} (log: {log})"
                        )
                # evaluations only of a finished training (a session budget, max_steps, may have stopped it)
                if (cell.run_dir / cell.evals[0].filename).exists():
                    for e in missing_evals(cell):
                        err = self._step(
                            f, f"eval {e.split} (guidance {e.guidance})", self.cli + e.argv(cell.run_dir), device
                        )
                        if err:
                            return CellResult(
                                cell.name, before, _failure(err), time.perf_counter() - t0, f"{err} (log: {log})"
                            )
            after = cell_state(cell, ignore_lock=True)
            dt = time.perf_counter() - t0
            if after == "done":
                atomic_write_text(
                    cell.run_dir / CELL_FILE,
                    json.dumps(
                        {**cell.manifest(), "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds_last_session": dt},
                        indent=2,
                    ),
                )
            return CellResult(cell.name, before, after, dt)
        finally:
            self._free.put(device)
            lock.release()

    def _step(self, log, what: str, cmd: list[str], device: str | None = None) -> str:
        log.write(f"\n$ {shlex.join(cmd)}\n")
        log.flush()
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=self._env(device)).returncode
        if rc < 0:
            return f"interrupted: l2l {what} stopped by signal {-rc}"
        return f"l2l {what} exited with {rc}" if rc != 0 else ""

    def run(self, cells: Sequence[Cell]) -> list[CellResult]:
        from ..utils.progress import progress

        self.grid.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.grid.out / "grid.json", json.dumps(self.grid.manifest(), indent=2))
        results: list[CellResult] = []
        bar = progress(None, total=len(cells), desc=f"grid {self.grid.name}")

        stop = threading.Event()

        def one(cell: Cell) -> CellResult:
            if stop.is_set():  # interrupted: start nothing new
                return CellResult(cell.name, "skipped", "skipped")
            r = self.run_cell(cell)
            extra = ""
            if r.after == "done":
                v = json.loads((cell.run_dir / cell.evals[0].filename).read_text())
                extra = f": {cell.evals[0].split} oIoU {100 * v['oIoU']:.2f}"
            tag = {"done": "done " if r.before == "done" else "end  "}.get(r.after, r.after)
            if not (r.before == "done" and r.after == "done"):
                self._say(
                    f"{tag} {cell.name}{extra}"
                    + (f" ({r.seconds:.0f} s)" if r.seconds else "")
                    + (f" — {r.message}" if r.message else "")
                )
            with self._lock:
                bar.update(1)
            return r

        try:
            if self.jobs == 1:
                results = [one(c) for c in cells]
            else:
                ex = ThreadPoolExecutor(self.jobs)
                try:
                    results = list(ex.map(one, cells))
                except BaseException:  # Ctrl-C: the running cells' children got it too; queue nothing more
                    stop.set()
                    ex.shutdown(wait=True, cancel_futures=True)
                    raise
                ex.shutdown()
        finally:
            bar.close()
        return results


def _failure(err: str) -> str:
    return "interrupted" if err.startswith("interrupted") else "failed"


def check_paths(grid: Grid, cells: Sequence[Cell]) -> list[str]:
    """What a run would miss on this machine: data roots (opened, splits checked), prior stores,
    local model folders. Warnings, not errors: a grid is often checked away from its cluster."""
    from ..data.refer import ReferDataset

    warnings: list[str] = []
    seen: set = set()
    for c in cells:
        d = c.cfg.data
        key = ("data", d.root, d.dataset, d.split_by, d.image_dir)
        if key not in seen:
            seen.add(key)
            if not Path(d.root).exists():
                warnings.append(f"{c.dataset}: data root {d.root} not found (needed by {c.name} and others)")
            else:
                try:
                    ds = ReferDataset.open(d.root, d.dataset, d.split_by, d.image_dir)
                    need = ["train", *grid.datasets[c.dataset].splits]
                    missing = [s for s in need if s not in ds.splits]
                    if missing:
                        warnings.append(
                            f"{c.dataset}: {ds.name} at {d.root} has no split(s) {missing} (has {ds.splits})"
                        )
                except Exception as e:  # noqa: BLE001 — reported, not raised: this is a check
                    warnings.append(f"{c.dataset}: cannot open {d.root} ({type(e).__name__}: {e})")
        from ..engine.trainer import build_method

        method = build_method(c.cfg)
        paths = []
        if method.needs_unlabeled and method.needs_priors:
            paths.append(("prior store (semi.priors)", method.priors_path))
        paths += [("prior store for guided evaluation", e.priors) for e in c.evals if e.priors]
        paths += [(f"model.{k}.path", getattr(c.cfg.model, k).path) for k in ("visual", "text")]
        for what, p in paths:
            if p and ("path", p) not in seen:
                seen.add(("path", p))
                if not _model_path(p).exists():
                    warnings.append(f"{what} {p} not found (first needed by {c.name})")
            elif what == "prior store (semi.priors)" and not p:
                warnings.append(f"{c.name}: method {c.cfg.method} needs semi.priors")
    return warnings


def describe(cells: Sequence[Cell]) -> str:
    """One line per cell: state, name, method, sections, evaluations."""
    lines = []
    for c in cells:
        st = cell_state(c)
        lines.append(f"{st:9s} {c.name:42s} {c.cfg.method:17s} {','.join(c.sections):22s} {len(c.evals)} eval(s)")
    return "\n".join(lines)


def _model_path(p: str) -> Path:
    """A path as the model builders read it (``builtin:NAME`` is a folder shipped in the package)."""
    if str(p).startswith("builtin:"):
        from ..pretrain.visual import resolve_visual_path

        try:
            return resolve_visual_path(p)
        except FileNotFoundError:
            return Path(p)
    return Path(p)
