"""The Pseudo-RIS section of the report: L2L's Table 2 layout (no human label vs a handful) and
Pseudo-RIS's Tables 5 and 6 as trained models, from the evaluation JSONs that
``scripts/pseudoris_table.sh`` writes (``{row}_s{seed}_{split}.json``, ``zero_shot_baseline_{split}.json``),
mean ± std over seeds."""

from __future__ import annotations

from pathlib import Path

from .ppt import collect, seed_table

ROWS = [  # (row key, table, label)
    ("zero_shot_baseline", "L2L T2", "zero-shot baseline: mask-model proposals ranked by the dual encoder (no label)"),
    ("full", "L2L T2", "Pseudo-RIS → segmenter, all training images (no label)"),
    (
        "cris_full",
        "L2L T2",
        "Pseudo-RIS → CRIS (the paper's target model, on the dual encoder's towers), all training images (no label)",
    ),
    ("semi1", "L2L T2", "Pseudo-RIS → segmenter, then fine-tuned on the 1 % labels (the paper's semi-supervised)"),
    ("sup_1pct", "L2L T2", "supervised, 1 % labeled"),
    ("l2l_03pct", "L2L T2", "L2L, 0.3 % labeled (5 images), learned prior"),
    ("l2l_1pct", "L2L T2", "L2L, 1 % labeled (16 images), learned prior"),
    ("naive", "PR T5", "naive captions, no filter (first 800 images)"),
    ("dcs", "PR T5", "+ distinctive caption sampling (800)"),
    ("filter", "PR T5", "+ distinctiveness filter, naive captions (800)"),
    ("full800", "PR T5", "+ both = Pseudo-RIS (800)"),
    ("gt800", "PR T6", "ground-truth masks + Pseudo-RIS captions (800; masks are human labels)"),
    ("uos800", "PR T12", "filter by uniqueness (UoS) alone, as many captions kept as DoS ≥ 1.3 (800)"),
    ("cos800", "PR T12", "filter by correctness (CoS) alone, as many captions kept as DoS ≥ 1.3 (800)"),
    ("wsum800", "PR T14", "weighted-sum aggregation in Eq. 2 (800)"),
    *[(f"tau{t}", "PR F9", f"filter threshold τ = {t} (800)") for t in ("1.0", "1.1", "1.2", "1.3", "1.5", "2.0")],
    ("ceiling", "–", "supervised, 100 % human labels (the ceiling)"),
    ("cris_ceiling", "–", "CRIS supervised, 100 % human labels (its ceiling)"),
]
PAPER = {  # Pseudo-RIS Table 5 (mIoU, RefCOCO) and Table 6 (mIoU, RefCOCO+ val); L2L Table 2 (oIoU, RefCOCO val)
    "naive": "37.96 (T5 mIoU)",
    "dcs": "40.01 (T5 mIoU)",
    "filter": "40.40 (T5 mIoU)",
    "full800": "41.05 (T5 mIoU)",
    "gt800": "52.54 (T6 mIoU, RefCOCO+)",
    "full": "41.1 (L2L T2)",
    "cris_full": "41.1 (L2L T2; Pseudo-RIS's own CRIS)",
    "uos800": "40.55 (T12 mIoU)",
    "cos800": "40.65 (T12 mIoU)",
    "wsum800": "39.66 (T14 mIoU)",
    "l2l_03pct": "65.08 at 0.1 % (L2L T2)",
}
METRICS = ("oIoU", "mIoU", "P@0.5", "P@0.7", "P@0.9")


def pseudoris_table(folder: str | Path, split: str = "val", seeds: int = 3) -> str:
    """Markdown: our rows on SynthRef (%) beside the papers' RefCOCO numbers."""
    return seed_table(
        collect(folder, split),
        ROWS,
        METRICS,
        seeds,
        (
            "zero_shot_baseline",
            "naive",
            "dcs",
            "filter",
            "full800",
            "gt800",
            "uos800",
            "cos800",
            "wsum800",
            *[f"tau{t}" for t in ("1.0", "1.1", "1.2", "1.3", "1.5", "2.0")],
            "ceiling",
            "cris_ceiling",
        ),
        PAPER,
        "paper (RefCOCO val)",
    )
