"""Summarise runs/table (scripts/synthref_table.sh) as Markdown tables: mean ± std over seeds.

    python scripts/summarize_table.py [runs/table] > table.md
    python scripts/summarize_table.py --steps [runs/table]     # step times and RPLE's share

Run folders are named ``<row>_<fraction>_s<seed>``; a row's columns are val and testB oIoU and
mIoU without guidance (the paper's protocol), and — for models with SESM — val/testB oIoU with the
stored prior as guidance at test time (an extra column, extra inference cost). Also prints the
telemetry of the last record (prior quality, pseudo-label precision/recall) per row.
"""
from __future__ import annotations

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

NAME = re.compile(r"^(?P<row>.+)_(?P<frac>\d+)_s(?P<seed>\d+)$")


def _load(p: Path):
    return json.loads(p.read_text()) if p.exists() else None


def _fmt(xs: list[float]) -> str:
    if not xs:
        return "–"
    m = 100 * statistics.mean(xs)
    if len(xs) == 1:
        return f"{m:.2f}"
    return f"{m:.2f} ± {100 * statistics.stdev(xs):.2f}"


def collect(root: Path):
    rows: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in sorted(p for p in root.iterdir() if p.is_dir()):
        m = NAME.match(run.name)
        val = _load(run / "eval_val.json")
        if not m or val is None:
            continue
        key = (m["row"], m["frac"])
        r = rows[key]
        r["seeds"].append(int(m["seed"]))
        r["val_oIoU"].append(val["oIoU"])
        r["val_mIoU"].append(val["mIoU"])
        tb = _load(run / "eval_testB_none_original.json")
        if tb:
            r["testB_oIoU"].append(tb["oIoU"])
            r["testB_mIoU"].append(tb["mIoU"])
        for split in ("val", "testB"):
            g = _load(run / f"eval_{split}_prior_original.json")
            if g:
                r[f"{split}_prior_oIoU"].append(g["oIoU"])
        tele = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"telemetry"' in x]
        if tele:
            for k in ("tele_prior_iou", "tele_target_iou", "tele_weak_iou", "tele_fg_precision", "tele_fg_recall",
                      "tele_tau_fg_mean", "tele_tau_bg_mean"):
                if k in tele[-1]:
                    r[k].append(tele[-1][k])
            first = tele[0]
            if "tele_target_iou" in first:
                r["tele_target_iou_first"].append(first["tele_target_iou"])
    return rows


def step_times(root: Path) -> None:
    """Mean logged step time per row after the warm-up, samples/s derived from it, RPLE's share."""
    rows: dict[str, list[tuple[float, float | None, int]]] = defaultdict(list)
    for f in sorted(root.glob("*/metrics.jsonl")):
        m = NAME.match(f.parent.name)
        if not m:
            continue
        recs = [json.loads(x) for x in f.read_text().splitlines() if '"step_seconds"' in x]
        semi = [r for r in recs if "loss_unsup" in r]
        use = semi or recs
        if not use:
            continue
        rp = [r["rple_seconds"] / r["step_seconds"] for r in use if "rple_seconds" in r]
        env = json.loads((f.parent / "env.json").read_text())
        per_step = env["batch_per_process"] + (env.get("unlabeled_batch_per_process", 0) if semi else 0)
        rows[m["row"]].append((statistics.mean(r["step_seconds"] for r in use),
                               statistics.mean(rp) if rp else None, per_step))
    print("| row | runs | s/step | samples/s | RPLE share |")
    print("|---|---|---|---|---|")
    for k, v in rows.items():
        s = statistics.mean(x[0] for x in v)
        sh = [x[1] for x in v if x[1] is not None]
        print(f"| {k} | {len(v)} | {s:.4f} | {v[0][2] / s:.1f} | {100 * statistics.mean(sh):.1f} % |" if sh else
              f"| {k} | {len(v)} | {s:.4f} | {v[0][2] / s:.1f} | – |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--steps":
        step_times(Path(sys.argv[2] if len(sys.argv) > 2 else "runs/table"))
        return
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/table")
    rows = collect(root)
    order = ["sup", "fixmatch", "priorfusion", "agreement", "catm", "static060", "static070", "static080",
             "static090", "l2l"]
    keys = sorted(rows, key=lambda k: (-int(k[1]), order.index(k[0]) if k[0] in order else 99, k[0]))
    print("| row | labels | seeds | val oIoU | val mIoU | testB oIoU | testB mIoU | val oIoU, prior at test | testB oIoU, prior at test |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k in keys:
        r = rows[k]
        print(f"| {k[0]} | {k[1]} % | {len(r['seeds'])} | {_fmt(r['val_oIoU'])} | {_fmt(r['val_mIoU'])} | "
              f"{_fmt(r['testB_oIoU'])} | {_fmt(r['testB_mIoU'])} | {_fmt(r['val_prior_oIoU'])} | {_fmt(r['testB_prior_oIoU'])} |")
    print()
    print("Telemetry at the end of training (unlabeled samples, mean IoU against the hidden masks; pseudo-foreground precision/recall):")
    print()
    print("| row | labels | raw prior IoU | target q IoU (first → last) | weak pred. IoU | fg precision | fg recall | τ_fg | τ_bg |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k in keys:
        r = rows[k]
        if not r.get("tele_weak_iou"):
            continue
        print(f"| {k[0]} | {k[1]} % | {_fmt(r['tele_prior_iou'])} | {_fmt(r['tele_target_iou_first'])} → "
              f"{_fmt(r['tele_target_iou'])} | {_fmt(r['tele_weak_iou'])} | {_fmt(r['tele_fg_precision'])} | "
              f"{_fmt(r['tele_fg_recall'])} | {_fmt(r['tele_tau_fg_mean'])} | {_fmt(r['tele_tau_bg_mean'])} |")


if __name__ == "__main__":
    main()
