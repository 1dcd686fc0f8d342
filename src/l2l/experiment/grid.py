"""Experiment grids: (dataset × label budget × method or ablation × seed) → run folders.

A grid is a YAML file (``configs/*_table1.yaml``)::

    name: synthref_table1
    out: runs/synthref_table1          # where the run folders go (``--out`` overrides)
    budgets: ["5%", "1%"]              # defaults for every section
    seeds: [22, 23, 24]
    datasets:
      synthref:
        overrides: [data.root=runs/data/synthref, semi.priors=runs/data/synthref_priors]
        splits: [val, testB]           # evaluated splits; the first is the training run's data.eval_split
        guided_priors: {val: runs/data/synthref_priors_val}   # optional: models with SESM are also
                                                              # evaluated with the prior given at test time
        paper: null                    # refcoco | refcoco+ | refcocog: report the paper's numbers beside ours
        prepare:                       # l2l commands that make the data and priors (each skips finished work)
          - [data, synth, --out, runs/data/synthref]
    sections:
      - id: table1                     # table1 | table3 | … | fig5 | any name
        kind: main                     # main (Table 1 layout, every metric) | ablation | sweep (Fig. 5)
        title: Methods × label budgets
        budgets: ["5%"]                # optional, else the grid's
        seeds: [22]                    # optional
        datasets: [synthref]           # optional, else all
        x: semi.tau_fg                 # sweep only: the swept config key (x axis)
        rows:
          - {id: sup, label: Supervised, config: synthref_semi.yaml, method: supervised,
             overrides: [], paper: Supervised, reference: false}

A cell's run folder is ``<out>/<dataset>/<row id>_<budget>_s<seed>`` and its training config is
``config`` (relative to the grid file) ← ``method`` ← dataset overrides ← budget and seed ← row
overrides ← ``--set`` overrides (``--set key=value`` for every cell, ``--set DATASET:key=value`` for the
cells of one dataset, e.g. ``--set refcoco:semi.priors=/data/priors/refcoco_unc``). A row id that appears in several sections is one run, shared: the
sections must then resolve it to the same config (checked). Paths inside overrides are relative
to the working directory, as for every ``l2l`` command.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..config import ConfigError, config_identity, load_config, load_yaml, to_dict
from ..errors import MissingFileError, UsageError
from ..utils.run_folder import RunFolder
from .paper import PAPER_DATASETS

KINDS = ("main", "ablation", "sweep")
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
PREPARE_COMMANDS = ("data", "priors")  # a grid may only run these l2l sub-commands before training


class GridError(UsageError):
    """A grid file is invalid; the message names the file and the entry."""


@dataclass(frozen=True)
class Row:
    id: str
    label: str
    config: Path
    method: str | None = None
    overrides: tuple[str, ...] = ()
    paper: str | None = None  # the paper's row label for this method (Table 1/3/… numbers beside ours)
    reference: bool = False  # sweep: drawn as a horizontal line (RPLE in Fig. 5)


@dataclass(frozen=True)
class Section:
    id: str
    kind: str
    title: str
    rows: tuple[Row, ...]
    budgets: tuple[str, ...]
    seeds: tuple[int, ...]
    datasets: tuple[str, ...]
    x: str | None = None
    note: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    overrides: tuple[str, ...] = ()
    splits: tuple[str, ...] = ("val",)
    guided_priors: dict[str, str] = field(default_factory=dict)
    paper: str | None = None
    prepare: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class EvalSpec:
    """One ``l2l eval`` of a trained run (the training run itself writes ``eval_<eval_split>.json``)."""

    split: str
    guidance: str = "none"
    priors: str | None = None
    resolution: str = "original"
    by_training: bool = False  # written by ``l2l train`` at its end

    @property
    def filename(self) -> str:
        if self.by_training:
            return RunFolder.eval_name(self.split)
        return RunFolder.eval_name(self.split, self.guidance, self.resolution)

    def argv(self, run: Path) -> list[str]:
        out = [
            "eval",
            "--ckpt",
            str(run),
            "--split",
            self.split,
            "--guidance",
            self.guidance,
            "--resolution",
            self.resolution,
        ]
        return out + (["--priors", self.priors] if self.priors else [])


@dataclass
class Cell:
    """One run of the grid: a training run folder and its evaluations."""

    name: str  # <dataset>/<row id>_<budget>_s<seed>
    dataset: str
    row: Row
    budget: str
    seed: int
    run_dir: Path
    overrides: list[str]
    cfg: Any  # TrainConfig
    evals: list[EvalSpec]
    sections: list[str] = field(default_factory=list)

    def train_argv(self) -> list[str]:
        return ["train", "--config", str(self.row.config), "--out", str(self.run_dir), *self.overrides]

    def manifest(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dataset": self.dataset,
            "row": self.row.id,
            "label": self.row.label,
            "method": self.cfg.method,
            "budget": self.budget,
            "seed": self.seed,
            "run": self.run_dir.name,
            "sections": self.sections,
            "paper": self.row.paper,
            "reference": self.row.reference,
            "config": str(self.row.config),
            "overrides": self.overrides,
            "evals": [e.filename for e in self.evals],
            "sesm": bool(self.cfg.model.sesm.enabled),
        }


def budget_tag(budget: str) -> str:
    """'5%' → '5', '0.1%' → '0.1' (the run-name part)."""
    from ..data.splits import parse_fraction

    return f"{parse_fraction(budget) * 100:g}"


def dotted(d: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            raise KeyError(key)
        d = d[part]
    return d


class Grid:
    """A parsed, validated grid: ``cells`` in order (deduplicated by run name)."""

    def __init__(self, path: str | Path, out: str | Path | None = None, set_overrides: Sequence[str] = ()):
        from ..config import shipped_config

        try:
            self.path = shipped_config(path)
        except MissingFileError:
            raise MissingFileError(f"grid file not found: {path}") from None
        try:
            raw = load_yaml(self.path.read_text(encoding="utf-8"), str(self.path)) or {}
        except (ConfigError, OSError, UnicodeDecodeError) as e:
            raise GridError(str(e) if isinstance(e, ConfigError) else f"{self.path}: cannot be read ({e})") from None
        if not isinstance(raw, dict):
            raise GridError(f"{self.path}: expected a mapping at the top level")
        self.raw = raw
        self.set_overrides = list(set_overrides)
        self._check_keys(raw, {"name", "out", "budgets", "seeds", "datasets", "sections", "description"}, "the grid")
        self.name = str(raw.get("name") or self.path.stem)
        self.description = str(raw.get("description") or "")
        self.out = Path(out or raw.get("out") or Path("runs") / self.name)
        self.datasets = self._datasets(raw.get("datasets"))
        self.sections = [self._section(s, i, raw) for i, s in enumerate(self._list(raw.get("sections"), "sections"))]
        if not self.sections:
            raise GridError(f"{self.path}: no sections")
        ids = [s.id for s in self.sections]
        if len(set(ids)) != len(ids):
            raise GridError(f"{self.path}: section ids repeat: {ids}")
        self.cells = self._cells()

    # ------------------------------------------------------------------ parsing
    def _fail(self, msg: str) -> GridError:
        return GridError(f"{self.path}: {msg}")

    def _set_for(self, dataset: str) -> list[str]:
        """The ``--set`` overrides of ``dataset``'s cells: the plain ones and its ``DATASET:key=value`` ones."""
        out = []
        for o in self.set_overrides:
            head, sep, rest = o.partition(":")
            if sep and "=" not in head and "." not in head:  # DATASET:key=value
                if head not in self.datasets:
                    raise self._fail(f"--set {o}: no dataset {head!r} in the grid ({', '.join(self.datasets)})")
                if head == dataset:
                    out.append(rest)
            else:
                out.append(o)
        return out

    def _check_keys(self, d: dict, allowed: set[str], where: str) -> None:
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise self._fail(f"unknown key(s) {unknown} in {where}; allowed: {sorted(allowed)}")

    def _list(self, v: Any, where: str) -> list:
        if v is None:
            return []
        if not isinstance(v, list):
            raise self._fail(f"{where}: expected a list, got {type(v).__name__}")
        return v

    def _datasets(self, v: Any) -> dict[str, DatasetSpec]:
        if not isinstance(v, dict) or not v:
            raise self._fail("datasets: expected a non-empty mapping name → settings")
        out = {}
        for name, d in v.items():
            d = d or {}
            if not ID.match(str(name)):
                raise self._fail(f"dataset name {name!r}: use letters, digits, _ . + -")
            self._check_keys(d, {"overrides", "splits", "guided_priors", "paper", "prepare"}, f"dataset {name}")
            prep = []
            for cmd in self._list(d.get("prepare"), f"dataset {name}.prepare"):
                if not isinstance(cmd, list) or not cmd or str(cmd[0]) not in PREPARE_COMMANDS:
                    raise self._fail(
                        f"dataset {name}.prepare: each entry is an l2l command as a list starting with "
                        f"one of {PREPARE_COMMANDS}, got {cmd!r}"
                    )
                prep.append(tuple(str(c) for c in cmd))
            splits = tuple(str(s) for s in self._list(d.get("splits"), f"dataset {name}.splits")) or ("val",)
            gp = d.get("guided_priors") or {}
            if not isinstance(gp, dict) or not set(gp) <= set(splits):
                raise self._fail(f"dataset {name}.guided_priors: a mapping split → prior store, splits among {splits}")
            paper = d.get("paper")
            if paper is not None:
                if paper not in PAPER_DATASETS:
                    raise self._fail(f"dataset {name}.paper: {paper!r} is not one of {PAPER_DATASETS}")
            out[str(name)] = DatasetSpec(
                str(name),
                tuple(str(o) for o in self._list(d.get("overrides"), name)),
                splits,
                {str(k): str(p) for k, p in gp.items()},
                paper,
                tuple(prep),
            )
        return out

    def _section(self, s: Any, i: int, top: dict) -> Section:
        if not isinstance(s, dict):
            raise self._fail(f"sections[{i}]: expected a mapping")
        self._check_keys(
            s, {"id", "kind", "title", "rows", "budgets", "seeds", "datasets", "x", "note"}, f"sections[{i}]"
        )
        sid = str(s.get("id") or "")
        if not ID.match(sid):
            raise self._fail(f"sections[{i}]: id {sid!r} missing or not a plain name")
        kind = s.get("kind", "ablation")
        if kind not in KINDS:
            raise self._fail(f"section {sid}: kind {kind!r} is not one of {KINDS}")
        if kind == "sweep" and not s.get("x"):
            raise self._fail(f"section {sid}: a sweep needs x (the swept config key, e.g. semi.tau_fg)")
        budgets = tuple(str(b) for b in (s.get("budgets") or top.get("budgets") or []))
        seeds = tuple(int(x) for x in (s.get("seeds") or top.get("seeds") or []))
        if not budgets or not seeds:
            raise self._fail(f"section {sid}: no budgets or no seeds (set them in the section or at the top)")
        for b in budgets:
            try:
                budget_tag(b)
            except ValueError as e:
                raise self._fail(f"section {sid}: budget {b!r}: {e}") from None
        datasets = tuple(str(d) for d in (s.get("datasets") or self.datasets))
        for d in datasets:
            if d not in self.datasets:
                raise self._fail(f"section {sid}: dataset {d!r} is not defined (have {sorted(self.datasets)})")
        rows = []
        for j, r in enumerate(self._list(s.get("rows"), f"section {sid}.rows")):
            if not isinstance(r, dict):
                raise self._fail(f"section {sid}.rows[{j}]: expected a mapping")
            self._check_keys(
                r, {"id", "label", "config", "method", "overrides", "paper", "reference"}, f"section {sid}.rows[{j}]"
            )
            rid = str(r.get("id") or "")
            if not ID.match(rid):
                raise self._fail(f"section {sid}.rows[{j}]: id {rid!r} missing or not a plain name")
            if not r.get("config"):
                raise self._fail(f"section {sid}, row {rid}: no config")
            cfg = Path(r["config"])
            cfg = cfg if cfg.is_absolute() else self.path.parent / cfg
            if not cfg.exists():
                raise self._fail(f"section {sid}, row {rid}: config file not found: {cfg}")
            rows.append(
                Row(
                    rid,
                    str(r.get("label") or rid),
                    cfg,
                    r.get("method"),
                    tuple(str(o) for o in self._list(r.get("overrides"), f"row {rid}.overrides")),
                    r.get("paper"),
                    bool(r.get("reference", False)),
                )
            )
        if not rows:
            raise self._fail(f"section {sid}: no rows")
        if len({r.id for r in rows}) != len(rows):
            raise self._fail(f"section {sid}: row ids repeat")
        return Section(
            sid,
            kind,
            str(s.get("title") or sid),
            tuple(rows),
            budgets,
            seeds,
            datasets,
            s.get("x"),
            str(s.get("note") or ""),
        )

    # ------------------------------------------------------------------ cells
    def _cells(self) -> dict[str, Cell]:
        from ..engine.trainer import build_method

        cells: dict[str, Cell] = {}
        for sec in self.sections:
            for ds_name in sec.datasets:
                ds = self.datasets[ds_name]
                for row in sec.rows:
                    for budget in sec.budgets:
                        for seed in sec.seeds:
                            name = f"{ds_name}/{row.id}_{budget_tag(budget)}_s{seed}"
                            ov = (
                                ([f"method={row.method}"] if row.method else [])
                                + list(ds.overrides)
                                + [
                                    f"data.label_fraction={budget}",
                                    f"seed={seed}",
                                    *row.overrides,
                                    *self._set_for(ds_name),
                                ]
                            )
                            if name in cells:
                                prev = cells[name]
                                if config_identity(to_dict(prev.cfg)) != config_identity(
                                    to_dict(self._resolve(row, ov, sec, name))
                                ):
                                    raise self._fail(
                                        f"row {row.id} of section {sec.id} resolves to another config "
                                        f"than in section {prev.sections[0]} (same run {name}); "
                                        f"give one of them another id"
                                    )
                                if sec.id not in prev.sections:
                                    prev.sections.append(sec.id)
                                continue
                            cfg = self._resolve(row, ov, sec, name)
                            try:
                                build_method(cfg)  # validates the method's preset and semi.* values
                            except ValueError as e:
                                raise self._fail(f"section {sec.id}, row {row.id} ({name}): {e}") from None
                            if cfg.data.eval_split != ds.splits[0]:
                                raise self._fail(
                                    f"{name}: data.eval_split is {cfg.data.eval_split!r} but the dataset "
                                    f"{ds_name}'s first split is {ds.splits[0]!r}"
                                )
                            res = cfg.data.eval_resolution
                            # the training's own evaluation marks a finished run; every split is then evaluated
                            # from best/ — with per-epoch evaluations (eval_every > 0) best/ is the epoch best
                            # on the first split, and its first-split numbers are re-evaluated from it too
                            evals = [EvalSpec(ds.splits[0], "none", None, res, by_training=True)]
                            evals += [
                                EvalSpec(s, "none", None, res) for s in ds.splits[1 if cfg.eval_every <= 0 else 0 :]
                            ]
                            if cfg.model.sesm.uses_guidance:
                                evals += [EvalSpec(s, "prior", p, res) for s, p in ds.guided_priors.items()]
                            cells[name] = Cell(
                                name, ds_name, row, budget, seed, self.out / name, ov, cfg, evals, [sec.id]
                            )
        return cells

    def _resolve(self, row: Row, overrides: list[str], sec: Section, name: str):
        from ..engine.trainer import TrainConfig

        try:
            cfg = load_config(TrainConfig, row.config, overrides)
        except (ConfigError, ValueError) as e:
            raise self._fail(f"section {sec.id}, row {row.id} ({name}): {e}") from None
        if sec.kind == "sweep":
            assert sec.x is not None  # a sweep without x is refused when the grid is read
            try:
                dotted(to_dict(cfg), sec.x)
            except KeyError:
                raise self._fail(f"section {sec.id}: x = {sec.x!r} is not a config key") from None
        return cfg

    # ------------------------------------------------------------------ manifest
    def manifest(self) -> dict[str, Any]:
        """What ``l2l report`` needs, written to ``<out>/grid.json`` by every ``experiment run``."""
        return {
            "format": "l2l-grid/1",
            "name": self.name,
            "description": self.description,
            "grid_file": str(self.path),
            "host": socket.gethostname(),
            "set_overrides": self.set_overrides,
            "datasets": {
                k: {"splits": list(d.splits), "paper": d.paper, "guided": sorted(d.guided_priors)}
                for k, d in self.datasets.items()
            },
            "sections": [
                {
                    "id": s.id,
                    "kind": s.kind,
                    "title": s.title,
                    "x": s.x,
                    "note": s.note,
                    "budgets": list(s.budgets),
                    "seeds": list(s.seeds),
                    "datasets": list(s.datasets),
                    "rows": [
                        {"id": r.id, "label": r.label, "paper": r.paper, "reference": r.reference} for r in s.rows
                    ],
                }
                for s in self.sections
            ],
            "cells": {n: c.manifest() for n, c in self.cells.items()},
        }

    def select(self, only: Sequence[str] = (), shard: tuple[int, int] = (0, 1)) -> list[Cell]:
        """The cells this worker runs: those matching any ``only`` pattern (fnmatch on the name),
        then every n-th from the i-th (``shard = (i, n)``)."""
        from fnmatch import fnmatch

        cells = [c for c in self.cells.values() if not only or any(fnmatch(c.name, p) for p in only)]
        i, n = shard
        return [c for k, c in enumerate(cells) if k % n == i]
