"""The supervised regime table (issue 32 item 5): oIoU / mIoU per label budget and split (mean ± std over
seeds), by expression kind, beside the learned prior's own numbers on the same splits.

    l2l experiment run configs/synthref_supervised_table.yaml --jobs 2
    for s in val testA testB; do
      l2l priors generate --provider standin --data runs/data/synthref --split $s --subset all --out runs/data/synthref_standin_priors_$s
      l2l priors eval --data runs/data/synthref --priors runs/data/synthref_standin_priors_$s
    done
    python benchmarks/supervised_table.py --grid runs/synthref_supervised_table --priors runs/data/synthref_standin_priors

Prints Markdown: one table of oIoU / mIoU per split, one of val oIoU by kind.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

BUDGETS = ("100", "10", "5", "1", "0.1")
SPLITS = ("val", "testA", "testB")
KINDS = ("attribute_only", "attribute", "location", "relation", "ordinal")


def eval_file(run: Path, split: str) -> Path:
    return run / ("eval_val.json" if split == "val" else f"eval_{split}_none_original.json")


def cell(values: list[float]) -> str:
    if not values:
        return "–"
    v = 100 * np.asarray(values)
    return f"{v.mean():.2f}" if len(v) == 1 else f"{v.mean():.2f} ± {v.std(ddof=1):.2f} ({len(v)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grid", default="runs/synthref_supervised_table")
    ap.add_argument(
        "--priors",
        default="runs/data/synthref_standin_priors",
        help="prefix of the per-split stores (PREFIX_val …), or a folder with val/ testA/ testB/",
    )
    a = ap.parse_args()
    runs = sorted((Path(a.grid) / "synthref").glob("sup*_*_s*"))
    res: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        budget = run.name.split("_")[1]
        for split in SPLITS:
            f = eval_file(run, split)
            if f.exists():
                res.setdefault((budget, split), []).append(json.loads(f.read_text()))
    # the prior's evaluations: PRIORS_<split>/eval.json (the stores), or PRIORS/<split>/eval.json (a copy)
    found = {
        s: next((f for f in (Path(f"{a.priors}_{s}/eval.json"), Path(a.priors) / s / "eval.json") if f.exists()), None)
        for s in SPLITS
    }
    prior = {s: json.loads(f.read_text()) for s, f in found.items() if f is not None}
    print("| labels | " + " | ".join(f"{s} oIoU | {s} mIoU" for s in SPLITS) + " |")
    print("| --- |" + " --- |" * (2 * len(SPLITS)))
    for b in BUDGETS:
        row = [cell([r[m] for r in res.get((b, s), [])]) for s in SPLITS for m in ("oIoU", "mIoU")]
        print(f"| {b} % supervised | " + " | ".join(row) + " |")
    if prior:
        row = [cell([prior[s][m]]) if s in prior else "–" for s in SPLITS for m in ("oIoU", "mean_IoU")]
        print("| learned prior (no label) | " + " | ".join(row) + " |")
    print()
    print("| labels | " + " | ".join(KINDS) + " |")
    print("| --- |" + " --- |" * len(KINDS))
    for b in BUDGETS:
        rs = res.get((b, "val"), [])
        print(
            f"| {b} % supervised, val | "
            + " | ".join(cell([r["oIoU_by_kind"][k]["oIoU"] for r in rs]) for k in KINDS)
            + " |"
        )
    if "val" in prior:
        print(
            "| learned prior, val | "
            + " | ".join(cell([prior["val"]["oIoU_by_kind"][k]["oIoU"]]) for k in KINDS)
            + " |"
        )


if __name__ == "__main__":
    main()
