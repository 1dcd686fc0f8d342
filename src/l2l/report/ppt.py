"""The PPT section of the report: the full model, the paper's Table 3 rows and the weakly supervised
baselines from the evaluation JSONs that ``scripts/ppt_table3.sh`` writes
(``{row}_s{seed}_{split}.json``, ``{naive,proposals}_{split}.json``), mean ± std over seeds."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .collect import fmt

ROWS = [  # (row key, Table 3 row, label)
    ("naive", "1", "dual encoder + mask model (naive prompting)"),
    ("proposals", "–", "mask-model proposals ranked by the dual encoder"),
    ("pt_no_img", "2", "point prompting w/o object-centric data (no curriculum)"),
    ("sem", "3", "semantic-alignment stage only"),
    ("ris", "4", "3 + RIS learning"),
    ("full", "5", "4 + domain refinement (full PPT)"),
    ("no_cl", "6", "5 w/o curriculum"),
    ("no_dref", "7", "5 w/o augmented object-centric data (D_ref)"),
    ("no_dsem", "8", "5 w/o free object-centric data (D_sem)"),
    ("no_img", "9", "5 w/o object-centric data"),
]
PAPER = {  # RefCOCO val, the paper's Table 3: P@0.3, P@0.5, P@0.7, mIoU
    "naive": (28.72, 24.84, 11.67, 26.46),
    "pt_no_img": (43.85, 25.45, 18.35, 34.19),
    "sem": (51.69, 39.63, 28.44, 38.91),
    "ris": (59.42, 48.53, 35.62, 44.14),
    "full": (61.16, 50.20, 36.22, 46.76),
    "no_cl": (57.93, 44.64, 34.27, 43.28),
    "no_dref": (56.56, 45.19, 33.03, 42.29),
    "no_dsem": (47.29, 38.51, 27.94, 39.33),
    "no_img": (43.78, 27.11, 18.77, 34.47),
}
METRICS = ("mIoU", "oIoU", "P@0.3", "P@0.5", "P@0.7")


def collect(folder: str | Path, split: str = "val") -> dict[str, list[dict]]:
    """Evaluation results per row key, from ``{key}_s{seed}_{split}.json`` (one per seed) or
    ``{key}_{split}.json`` (a deterministic baseline)."""
    out: dict[str, list[dict]] = {}
    for p in sorted(Path(folder).glob(f"*_{split}.json")):
        m = re.fullmatch(rf"(.+?)(?:_s(\d+))?_{split}\.json", p.name)
        if m:
            out.setdefault(m.group(1), []).append(json.loads(p.read_text()))
    return out


def seed_table(
    res: dict[str, list[dict]],
    rows: list[tuple[str, str, str]],
    metrics: tuple[str, ...],
    seeds: int,
    single: tuple[str, ...] = (),
    paper: dict[str, str] | None = None,
    paper_head: str = "paper",
) -> str:
    """Markdown: one line per (key, row, label) with results, mean ± std over seeds (%); ``single``
    keys expect one run; ``paper`` adds a column of the paper's numbers."""
    head = "| row | method | seeds | " + " | ".join(metrics) + (f" | {paper_head} |" if paper is not None else " |")
    lines = [head, "| " + " | ".join(["---"] * (len(metrics) + 3 + (paper is not None))) + " |"]
    for key, row, label in rows:
        rs = res.get(key, [])
        if not rs:
            continue
        cells = [fmt([float(r[m]) for r in rs if m in r], 1 if key in single else seeds) for m in metrics]
        tail = f" | {paper.get(key, '–')} |" if paper is not None else " |"
        lines.append(f"| {row} | {label} | {len(rs)} | " + " | ".join(cells) + tail)
    return "\n".join(lines) + "\n"


def ppt_table(folder: str | Path, split: str = "val", seeds: int = 3) -> str:
    """Markdown: ours (mean ± std over seeds, %) beside the paper's RefCOCO numbers."""
    paper = {k: f"{v[3]:.2f}" for k, v in PAPER.items()}
    return seed_table(
        collect(folder, split), ROWS, METRICS, seeds, ("naive", "proposals"), paper, "paper mIoU (RefCOCO val)"
    )
