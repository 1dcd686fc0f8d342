"""``l2l report GRID_DIR``: the paper's tables and figures from a grid folder.

Per dataset of the grid: Table 1 layout (every ``main`` section: rows × budgets × splits, oIoU,
then mIoU and P@0.5/0.7/0.9, mean ± std over seeds), every ablation section (Tables 3/4/5/7/15…),
every sweep (Fig. 5, with the reference rows as horizontal lines), Fig. 9 (telemetry of the
reference method), Table 10 (oIoU per expression-length bucket, and per expression kind where the
dataset has kinds), a qualitative grid (Fig. 4) — and, where the grid names the paper's dataset
(RefCOCO/+/g), the paper's own numbers beside ours, labelled as the paper's. Unfinished runs show
as "–" (or "(n/N)" seeds), so a report can be made while a grid is still running.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from ..experiment.paper import FIG9, paper_value
from ..utils.run_folder import RunFolder
from . import figures
from .collect import GridData, fmt, mean_or_none
from .render import Doc

METRICS = (
    ("oIoU", "overall IoU"),
    ("mIoU", "mean IoU"),
    ("P@0.5", "precision at IoU 0.5"),
    ("P@0.7", "precision at IoU 0.7"),
    ("P@0.9", "precision at IoU 0.9"),
)


def _git() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or "?"
        )
    except (OSError, subprocess.SubprocessError):
        return "?"


def _reference_row(section: dict[str, Any], g: GridData, dataset: str) -> dict[str, Any]:
    rows = section["rows"]
    ours = [r for r in rows if r.get("paper") == "Ours"]
    if ours:
        return ours[0]
    for r in rows:
        c = next((c for c in g.cells.values() if c.info["dataset"] == dataset and c.info["row"] == r["id"]), None)
        if c and c.info["method"] == "l2l":
            return r
    return rows[-1]


class ReportBuilder:
    def __init__(self, grid_dir: str | Path, out: str | Path | None, qualitative: int, seed: int, device: str):
        self.g = GridData(grid_dir)
        self.out = Path(out) if out else self.g.root / "report"
        self.n_qual, self.seed, self.device = qualitative, seed, device
        m = self.g.manifest
        self.doc = Doc(f"{m['name']} — results")
        self.lvl = 2 if len(self.g.datasets) > 1 else 1  # section heading level

    # ------------------------------------------------------------------ tables
    def metric_table(
        self, sec: dict[str, Any], ds: str, metric: str = "oIoU", guidance: str = "none", with_paper: bool = True
    ) -> tuple[list[str], list[list[str]]]:
        splits = self.g.datasets[ds]["splits"]
        cols = [(b, s) for b in sec["budgets"] for s in splits]
        header = ["method"] + [f"{b} {s}" for b, s in cols]
        paper_ds = self.g.datasets[ds].get("paper")
        rows = []
        for r in sec["rows"]:
            rows.append(
                [r["label"]]
                + [fmt(self.g.values(sec, ds, r["id"], b, s, metric, guidance), len(sec["seeds"])) for b, s in cols]
            )
            if with_paper and paper_ds and r.get("paper") and metric == "oIoU" and guidance == "none":
                vals = [paper_value(sec["id"], paper_ds, r["paper"], b, s) for b, s in cols]
                if any(v is not None for v in vals):
                    rows.append([f"*paper: {r['paper']}*"] + [f"*{v:.2f}*" if v is not None else "–" for v in vals])
        return header, rows

    def _seeds_note(self, sec: dict[str, Any]) -> str:
        n = len(sec["seeds"])
        return (
            f"mean ± std over {n} seeds ({', '.join(map(str, sec['seeds']))})"
            if n > 1
            else f"one seed ({sec['seeds'][0]})"
        )

    def _paper_note(self, ds: str) -> str:
        p = self.g.datasets[ds].get("paper")
        return (
            f" Rows in italics are **the paper's numbers** ({p}, oIoU, L2L paper Table 1/3/4/7), not ours." if p else ""
        )

    # ------------------------------------------------------------------ sections
    def main_section(self, sec: dict[str, Any], ds: str) -> None:
        d = self.doc
        d.h(self.lvl, sec["title"])
        if sec.get("note"):
            d.p(sec["note"])
        for metric, name in METRICS:
            header, rows = self.metric_table(sec, ds, metric)
            d.table(
                header,
                rows,
                f"**{metric}** ({name}, %), {self._seeds_note(sec)}."
                + (self._paper_note(ds) if metric == "oIoU" else ""),
            )
        if self.g.datasets[ds].get("guided"):
            header, rows = self.metric_table(sec, ds, "oIoU", "prior")
            keep = [r for r in rows if any(c != "–" for c in r[1:])]
            if keep:
                gsplits = self.g.datasets[ds]["guided"]
                d.table(
                    header,
                    keep,
                    "oIoU (%) **with the stored prior given at test time** (SESM models only; "
                    f"splits with a prior store: {', '.join(gsplits)}; not the paper's protocol, "
                    "which tests without priors).",
                )
        split = self.g.datasets[ds]["splits"][0]
        series = {b: [self.g.values(sec, ds, r["id"], b, split) for r in sec["rows"]] for b in sec["budgets"]}
        series = {f"{b} labels": [[100 * v for v in vals] for vals in rowvals] for b, rowvals in series.items()}
        png = figures.bars(
            [r["label"] for r in sec["rows"]],
            series,
            self.out / f"{ds}_{sec['id']}_oiou.png",
            f"{ds}: {split} oIoU by method and label budget (bars: mean, whiskers: min–max over seeds)",
            "oIoU (%)",
        )
        d.image(png, f"{ds} {sec['id']}: {split} oIoU per method and label budget.")

    def ablation_section(self, sec: dict[str, Any], ds: str) -> None:
        self.doc.h(self.lvl, sec["title"])
        if sec.get("note"):
            self.doc.p(sec["note"])
        header, rows = self.metric_table(sec, ds)
        self.doc.table(header, rows, f"oIoU (%), {self._seeds_note(sec)}." + self._paper_note(ds))

    def _x_value(self, ds: str, row: str, budget: str, key: str) -> float | None:
        from ..experiment.grid import dotted

        cells = [
            c
            for c in self.g.cells.values()
            if c.info["dataset"] == ds
            and c.info["row"] == row
            and c.info["budget"] == budget
            and RunFolder(c.run_dir).is_run()
        ]
        for c in cells:
            # semi.* as the method resolved it (env.json: presets filled in), else the config file
            sources = [{"semi": c.env.get("method", {})}, yaml.safe_load(RunFolder(c.run_dir).config.read_text())]
            for src in sources:
                try:
                    return float(dotted(src, key))
                except (KeyError, TypeError, ValueError):
                    continue
        return None

    def sweep_section(self, sec: dict[str, Any], ds: str) -> None:
        d = self.doc
        d.h(self.lvl, sec["title"])
        splits = self.g.datasets[ds]["splits"]
        for b in sec["budgets"]:
            points: dict[str, list] = {s: [] for s in splits}
            refs: dict[str, dict[str, list[float]]] = {s: {} for s in splits}
            rows = []
            for r in sec["rows"]:
                vals = {s: self.g.values(sec, ds, r["id"], b, s) for s in splits}
                x = self._x_value(ds, r["id"], b, sec["x"])
                for s in splits:
                    if r.get("reference"):
                        refs[s][r["label"]] = [100 * v for v in vals[s]]
                    elif x is not None:
                        points[s].append((x, [100 * v for v in vals[s]]))
                rows.append(
                    [r["label"] if r.get("reference") else f"{sec['x']} = {x:g}" if x is not None else r["label"]]
                    + [fmt(vals[s], len(sec["seeds"])) for s in splits]
                )
            d.table(["run"] + [f"{b} {s}" for s in splits], rows, f"oIoU (%), {self._seeds_note(sec)}.")
            if any(p[1] for s in splits for p in points[s]):
                png = figures.sweep(
                    points,
                    refs,
                    sec["x"],
                    self.out / f"{ds}_{sec['id']}_{b.strip('%')}pct.png",
                    f"{ds}, {b} labels: {sec['title']}",
                )
                d.image(
                    png, f"{sec['title']}: oIoU against {sec['x']}; dashed: reference rows (shaded: ± std over seeds)."
                )

    # ------------------------------------------------------------------ figures from the main section
    def fig9(self, sec: dict[str, Any], ds: str) -> None:
        ref = _reference_row(sec, self.g, ds)
        panels = {
            f"{b} labels": [c for c in self.g.runs(sec, ds, ref["id"], b) if c.telemetry()] for b in sec["budgets"]
        }
        panels = {k: v for k, v in panels.items() if v}
        if not panels:
            return
        d = self.doc
        d.h(self.lvl, f"Fig. 9: prior quality and selected pseudo-labels over training — {ref['label']}")
        png = figures.telemetry(
            panels,
            self.out / f"{ds}_fig9.png",
            f"{ds}: {ref['label']} on the unlabeled samples (hidden masks, telemetry only); "
            "mean over seeds, band min–max",
        )
        d.image(
            png,
            "Raw prior P†, calibrated prior P̃ (the target under SPM), weak prediction; accuracy and "
            "coverage of the selected pseudo-label pixels, against the hidden masks of the unlabeled set.",
        )
        rows = []
        for label, key in (
            ("raw prior IoU", "tele_prior_iou"),
            ("calibrated prior IoU", "tele_target_iou"),
            ("selected-pixel accuracy", "tele_sel_acc"),
            ("selected-pixel coverage", "tele_sel_cov"),
            ("pseudo-foreground precision", "tele_fg_precision"),
            ("pseudo-foreground recall", "tele_fg_recall"),
        ):
            row = [label]
            for cells in panels.values():
                firsts = [t[0][key] for c in cells if (t := [r for r in c.telemetry() if key in r])]
                lasts = [t[-1][key] for c in cells if (t := [r for r in c.telemetry() if key in r])]
                a, z = mean_or_none(firsts), mean_or_none(lasts)
                row.append(f"{100 * a:.2f} → {100 * z:.2f}" if a is not None and z is not None else "–")
            if self.g.datasets[ds].get("paper") == "refcoco":
                pk = {
                    "raw prior IoU": "raw prior IoU",
                    "calibrated prior IoU": "calibrated prior IoU",
                    "selected-pixel accuracy": "selected-pixel accuracy",
                    "selected-pixel coverage": "selected-pixel coverage",
                }.get(label)
                row.append(f"*{FIG9[pk][0]:.2f} → {FIG9[pk][1]:.2f}*" if pk else "–")
            rows.append(row)
        header = ["quantity (%)"] + [f"{k}: first → last record" for k in panels]
        if self.g.datasets[ds].get("paper") == "refcoco":
            header.append("*paper, RefCOCO 5 % (Fig. 9 text)*")
        d.table(header, rows, "Start and end of training (first and last telemetry record, mean over seeds).")

    def table10(self, sec: dict[str, Any], ds: str) -> None:
        split = self.g.datasets[ds]["splits"][0]
        for field_, title, fname in (
            ("oIoU_by_length", "Table 10: oIoU per expression length (words)", "length"),
            ("oIoU_by_kind", "oIoU per expression kind", "kind"),
        ):
            groups: list[str] = []
            counts: dict[str, int] = {}
            for c in self.g.cells.values():
                r = c.result(split) if c.info["dataset"] == ds else None
                for k, v in ((r or {}).get(field_) or {}).items():
                    if k not in groups:
                        groups.append(k)
                    counts[k] = v["samples"]
            if not groups:
                continue
            self.doc.h(self.lvl, f"{title} — {split}")
            plotted = False  # one figure: the first budget with a finished run (an unrun budget draws nothing)
            for b in sec["budgets"]:
                rows, series = [], {}
                for r in sec["rows"]:
                    per = {
                        k: [
                            res[field_][k]["oIoU"]
                            for c in self.g.runs(sec, ds, r["id"], b)
                            if (res := c.result(split)) and k in (res.get(field_) or {})
                        ]
                        for k in groups
                    }
                    rows.append([r["label"]] + [fmt(per[k], len(sec["seeds"])) for k in groups])
                    series[r["label"]] = [[100 * v for v in per[k]] for k in groups]
                self.doc.table(
                    ["method"] + [f"{k} ({counts[k]})" for k in groups],
                    rows,
                    f"{b} labels: oIoU (%) per {fname} group on {split} (samples per group in the header), "
                    f"{self._seeds_note(sec)}.",
                )
                if not plotted and any(any(v) for v in series.values()):
                    plotted = True
                    png = figures.bars(
                        [f"{k} (n={counts[k]})" for k in groups],
                        series,
                        self.out / f"{ds}_{sec['id']}_by_{fname}.png",
                        f"{ds}, {b} labels: {split} oIoU per {fname}",
                        "oIoU (%)",
                    )
                    self.doc.image(png, f"{title}, {b} labels (mean over seeds, whiskers min–max).")

    def qualitative(self, sec: dict[str, Any], ds: str) -> None:
        if self.n_qual <= 0:
            return
        from .qualitative import qualitative_grid

        b, s = sec["budgets"][0], sec["seeds"][0]
        cells = [(r["label"], c) for r in sec["rows"] if (c := self.g.cell(ds, r["id"], b, s)) is not None and c.done]
        if len(cells) < 2:
            return
        ref = _reference_row(sec, self.g, ds)["label"]
        if ref not in [lbl for lbl, _ in cells]:
            ref = cells[-1][0]
        split = self.g.datasets[ds]["splits"][0]
        png = self.out / f"{ds}_qualitative.png"
        recs = qualitative_grid(cells, ref, split, png, self.n_qual, self.seed, device=self.device)
        d = self.doc
        d.h(self.lvl, f"Qualitative results (Fig. 4 layout) — {split}, {b} labels, seed {s}")
        d.p(
            f"Rows chosen reproducibly (`l2l report --seed {self.seed}`): from 48 {split} samples drawn with that "
            f"seed, those where **{ref}** beats the best other method by the widest IoU margin, then its worst "
            "samples (failures). Predictions without guidance, each run's `best/` model."
        )
        d.image(png, "Image and sentence, ground truth, each method's prediction with its IoU.")
        d.table(
            ["sample", "sentence", "why"] + [lbl for lbl, _ in cells],
            [
                [str(r["sample_id"]), r["sentence"], r["why"]] + [f"{100 * r[lbl]:.1f}" for lbl, _ in cells]
                for r in recs
            ],
            "IoU (%) of the shown samples.",
        )

    def pseudo_labels(self) -> None:
        """End-of-training telemetry of every semi-supervised row (all sections): raw prior, target
        (first → last record), weak prediction, pseudo-foreground precision/recall, thresholds."""
        keys = (
            ("tele_prior_iou", "raw prior IoU"),
            ("tele_target_iou", "target q IoU (first → last)"),
            ("tele_weak_iou", "weak pred. IoU"),
            ("tele_fg_precision", "fg precision"),
            ("tele_fg_recall", "fg recall"),
            ("tele_tau_fg_mean", "τ_fg"),
            ("tele_tau_bg_mean", "τ_bg"),
        )
        groups: dict[tuple[str, str, str], list] = {}
        for c in self.g.cells.values():
            t = c.telemetry() if c.done else []
            if t:
                groups.setdefault((c.info["dataset"], c.info["row"], c.info["budget"]), []).append(t)
        if not groups:
            return
        rows = []
        for (ds, row, budget), runs in groups.items():
            out = [f"{ds}/{row}", budget, str(len(runs))]
            for k, _ in keys:
                last = [t[-1][k] for t in runs if k in t[-1]]
                if k == "tele_target_iou":
                    first = [t[0][k] for t in runs if k in t[0]]
                    out.append(f"{fmt(first, len(runs))} → {fmt(last, len(runs))}" if last else "–")
                else:
                    out.append(fmt(last, len(runs)))
            rows.append(out)
        self.doc.h(self.lvl, "Pseudo-labels at the end of training (telemetry)")
        self.doc.table(
            ["row", "labels", "runs"] + [name for _, name in keys],
            rows,
            "Last telemetry record of each run (the unlabeled samples visited in its window; mean IoU "
            "against the hidden masks, which only the telemetry reads), mean ± std over runs, %. "
            "Target q: what the pseudo-labels are cut from (P̃ under SPM), first record → last; "
            "fg precision/recall of the pseudo-foreground; thresholds mean over samples.",
        )

    def cost(self) -> None:
        """Step time per row id (from each run's metrics.jsonl): mean logged ``step_seconds`` (after a
        labeled-only warm-up, when the run has one), samples/s, and RPLE's share of a step."""
        rows: dict[tuple[str, str], list[tuple[float, float | None, int]]] = {}
        for c in self.g.cells.values():
            recs = [r for r in c.records if "step_seconds" in r] if c.done and c.env else []
            semi = [r for r in recs if "loss_unsup" in r]
            use = semi or recs
            if not use:
                continue
            per_step = c.env["batch_per_process"] + (c.env.get("unlabeled_batch_per_process", 0) if semi else 0)
            share = [r["rple_seconds"] / r["step_seconds"] for r in use if "rple_seconds" in r and r["step_seconds"]]
            rows.setdefault((c.info["dataset"], c.info["row"]), []).append(
                (statistics.mean(r["step_seconds"] for r in use), statistics.mean(share) if share else None, per_step)
            )
        if not rows:
            return
        self.doc.h(self.lvl, "Cost per training step")
        out = []
        for (ds, row), v in rows.items():
            sec = statistics.mean(x[0] for x in v)
            sh = [x[1] for x in v if x[1] is not None]
            out.append(
                [
                    f"{ds}/{row}",
                    str(len(v)),
                    f"{sec:.4f}",
                    f"{v[0][2] / sec:.1f}",
                    f"{100 * statistics.mean(sh):.1f} %" if sh else "–",
                ]
            )
        self.doc.table(
            ["row", "runs", "s/step", "samples/s (labeled + unlabeled)", "RPLE share"],
            out,
            "Mean `step_seconds` logged in `metrics.jsonl` (model, loss, optimiser; loading runs in "
            "worker processes), after the labeled-only warm-up where there is one; RPLE's own time "
            "(state, action, reward, replay, update) as a share of the step. Machine and thread "
            "count are those of the runs (see each run's env.json).",
        )

    # ------------------------------------------------------------------ all
    def build(self) -> Path:
        g, d = self.g, self.doc
        m = g.manifest
        done = sum(c.done for c in g.cells.values())
        if m.get("description"):
            d.p(m["description"])
        d.p(
            f"Made by `l2l report {g.root}` on {time.strftime('%Y-%m-%d %H:%M')} (code {_git()}) from the grid "
            f"`{m['grid_file']}`: {done} of {len(g.cells)} runs finished. Every number is read from the run "
            "folders' evaluation files; oIoU, mIoU and precision in %, without guidance at test time unless "
            "a table says otherwise."
        )
        missing = [c.name for c in g.cells.values() if not c.done]
        if missing:
            d.p(
                "Not finished (shown as –, or with the number of seeds present): "
                + ", ".join(f"`{x}`" for x in missing)
            )
        for ds in g.datasets:
            secs = [s for s in g.sections if ds in s["datasets"]]
            if not secs:
                continue
            if len(g.datasets) > 1:
                d.h(1, f"Dataset {ds}")
            for sec in secs:
                getattr(self, f"{sec['kind']}_section")(sec, ds)
            main = next((s for s in secs if s["kind"] == "main"), None)
            if main is not None:
                self.table10(main, ds)
                self.fig9(main, ds)
                self.qualitative(main, ds)
        self.pseudo_labels()
        self.cost()
        d.write(self.out)
        return self.out


def build_report(
    grid_dir: str | Path, out: str | Path | None = None, qualitative: int = 6, seed: int = 0, device: str = "cpu"
) -> Path:
    return ReportBuilder(grid_dir, out, qualitative, seed, device).build()
