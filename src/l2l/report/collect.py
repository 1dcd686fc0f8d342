"""Read a grid folder (``grid.json`` + run folders) into what the report tables and figures need."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import MissingFileError, UsageError
from ..utils.jsonl import read_records
from ..utils.run_folder import RunFolder


@dataclass
class CellData:
    name: str
    info: dict[str, Any]  # the cell's manifest (grid.json)
    run_dir: Path
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)  # file name → eval JSON

    @property
    def done(self) -> bool:
        return all(f in self.evals for f in self.info["evals"])

    def result(self, split: str, guidance: str = "none") -> dict[str, Any] | None:
        # `l2l eval` files (the run's best/ model) before the training's own end-of-run evaluation
        names = [RunFolder.eval_name(split, guidance, res) for res in ("original", "train")]
        if guidance == "none":
            names.append(RunFolder.eval_name(split))
        return next((self.evals[n] for n in names if n in self.evals), None)

    @cached_property
    def records(self) -> list[dict[str, Any]]:
        """Every record of the run's ``metrics.jsonl``, read once per report."""
        return read_records(RunFolder(self.run_dir).metrics)  # a run still writing: its torn last line is skipped

    def telemetry(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("kind") == "telemetry"]

    @cached_property
    def env(self) -> dict[str, Any]:
        f = RunFolder(self.run_dir).env
        return json.loads(f.read_text()) if f.exists() else {}

    def steps_per_epoch(self) -> int | None:
        return self.env.get("steps_per_epoch")


class GridData:
    def __init__(self, grid_dir: str | Path):
        self.root = Path(grid_dir)
        f = self.root / "grid.json"
        if not f.exists():
            raise MissingFileError(
                f"{self.root} has no grid.json: is it the folder of `l2l experiment run`? "
                f"(it is written when a grid starts)"
            )
        self.manifest = json.loads(f.read_text())
        if self.manifest.get("format") != "l2l-grid/1":
            raise UsageError(f"{f}: unknown format {self.manifest.get('format')!r}")
        self.sections = self.manifest["sections"]
        self.datasets = self.manifest["datasets"]
        self.cells: dict[str, CellData] = {}
        for name, info in self.manifest["cells"].items():
            run = self.root / name
            c = CellData(name, info, run)
            for fn in info["evals"]:
                p = run / fn
                if p.exists():
                    c.evals[fn] = json.loads(p.read_text())
            self.cells[name] = c

    def cell(self, dataset: str, row: str, budget: str, seed: int) -> CellData | None:
        from ..experiment.grid import budget_tag

        return self.cells.get(f"{dataset}/{row}_{budget_tag(budget)}_s{seed}")

    def runs(self, section: dict, dataset: str, row: str, budget: str) -> list[CellData]:
        return [c for s in section["seeds"] if (c := self.cell(dataset, row, budget, s)) is not None]

    def values(
        self,
        section: dict,
        dataset: str,
        row: str,
        budget: str,
        split: str,
        metric: str = "oIoU",
        guidance: str = "none",
    ) -> list[float]:
        out = []
        for c in self.runs(section, dataset, row, budget):
            r = c.result(split, guidance)
            if r is not None and metric in r:
                out.append(float(r[metric]))
        return out


def fmt(values: list[float], expected: int, scale: float = 100.0) -> str:
    """'12.80 ± 0.07' (mean ± sample std over seeds, %), '12.80' for one run, '–' for none;
    '(2/3)' when seeds are missing."""
    if not values:
        return "–"
    m = scale * statistics.mean(values)
    s = f"{m:.2f}" if len(values) == 1 else f"{m:.2f} ± {scale * statistics.stdev(values):.2f}"
    return s + (f" ({len(values)}/{expected})" if len(values) < expected else "")


def mean_or_none(values: list[float]) -> float | None:
    return statistics.mean(values) if values else None
