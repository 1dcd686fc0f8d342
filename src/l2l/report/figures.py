"""The report's plots: methods × budgets (Table 1 at a glance), Fig. 5 (static τ_fg sweep with
RPLE as a line), Fig. 9 (prior quality and selected pixels over training), Table 10 bars."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Mapping, Sequence

from ..utils.figures import wrap
from .collect import CellData

DPI = 100


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI, bbox_inches="tight")  # titles and legends outside the axes stay in the picture
    _plt().close(fig)
    return out


def bars(
    groups: Sequence[str], series: dict[str, list[list[float]]], out: Path, title: str, ylabel: str, xlabel: str = ""
) -> Path:
    """Grouped bars: ``series[name][g]`` = values (over seeds, %) of group g; mean with a min–max whisker.
    A series without any value (a budget of the grid that was not run) takes no slot and no legend entry."""
    plt = _plt()
    import numpy as np

    series = {name: vals for name, vals in series.items() if any(vals)} or series
    n = max(1, len(series))
    w = 0.8 / n
    fig, ax = plt.subplots(figsize=(min(16.0, max(7.0, 0.45 * len(groups) * n + 2.0)), 4.8))
    x = np.arange(len(groups))
    for k, (name, vals) in enumerate(series.items()):
        means = [statistics.mean(v) if v else np.nan for v in vals]
        lo = [m - min(v) if v else 0 for m, v in zip(means, vals)]
        hi = [max(v) - m if v else 0 for m, v in zip(means, vals)]
        pos = x - 0.4 + w * (k + 0.5)
        ax.bar(pos, means, w, label=name, yerr=[lo, hi], capsize=2, error_kw={"lw": 0.8})
        for p_, m in zip(pos, means):
            if m == m:  # not NaN
                ax.text(p_, m, f"{m:.1f}", ha="center", va="bottom", fontsize=7)
    labels = [wrap(g, 16) for g in groups]
    ax.set_xticks(x, labels, fontsize=8)
    lines = max((lab.count("\n") + 1 for lab in labels), default=1)  # the legend goes below the tallest label
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_title(wrap(title, 90), fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(
        fontsize=8,
        ncol=min(3, n),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.04 - 0.045 * lines - (0.06 if xlabel else 0.0)),
        frameon=False,
    )
    return _save(fig, out)


def sweep(
    points: dict[str, list[tuple[float, list[float]]]],
    refs: dict[str, dict[str, list[float]]],
    x_label: str,
    out: Path,
    title: str,
) -> Path:
    """Fig. 5: one panel per split; ``points[split]`` = [(x, values over seeds)], ``refs[split][label]``
    = values of a reference row (horizontal line, ±std band when several seeds)."""
    plt = _plt()
    splits = list(points)
    fig, axes = plt.subplots(1, len(splits), figsize=(4.6 * len(splits), 3.8), squeeze=False)
    for ax, split in zip(axes[0], splits):
        pts = sorted(points[split])
        xs = [p[0] for p in pts if p[1]]
        ms = [statistics.mean(p[1]) for p in pts if p[1]]
        err = [statistics.stdev(p[1]) if len(p[1]) > 1 else 0.0 for p in pts if p[1]]
        ax.errorbar(xs, ms, yerr=err, marker="o", capsize=3, label="static τ_fg")
        for x, m in zip(xs, ms):
            ax.annotate(f"{m:.1f}", (x, m), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
        for k, (label, vals) in enumerate(refs.get(split, {}).items()):
            if not vals:
                continue
            m = statistics.mean(vals)
            color = f"C{k + 1}"
            ax.axhline(m, color=color, ls="--", label=f"{label} ({m:.1f})")
            if len(vals) > 1:
                s = statistics.stdev(vals)
                ax.axhspan(m - s, m + s, color=color, alpha=0.12)
        ax.margins(y=0.15)
        ax.set_xlabel(x_label)
        ax.set_ylabel(f"{split} oIoU (%)")
        ax.set_title(split, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(wrap(title, int(45 * len(splits)) + 20), fontsize=11)
    return _save(fig, out)


TELE_TOP = (
    ("raw prior P†", "tele_prior_iou"),
    ("calibrated prior P̃ (target)", "tele_target_iou"),
    ("weak prediction p_w", "tele_weak_iou"),
)
TELE_BOTTOM = (
    ("selected-pixel accuracy", "tele_sel_acc"),
    ("selected-pixel coverage", "tele_sel_cov"),
    ("pseudo-fg precision", "tele_fg_precision"),
    ("pseudo-fg recall", "tele_fg_recall"),
)


def _curve(cells: Sequence[CellData], key: str):
    """Mean (and min/max) over seeds of a telemetry key, by fractional epoch."""
    by_x: dict[float, list[float]] = {}
    for c in cells:
        spe = c.steps_per_epoch() or 1
        for r in c.telemetry():
            if isinstance(r.get(key), (int, float)):
                by_x.setdefault(round(r["step"] / spe, 3), []).append(100 * r[key])
    xs = sorted(by_x)
    return xs, [statistics.mean(by_x[x]) for x in xs], [min(by_x[x]) for x in xs], [max(by_x[x]) for x in xs]


def telemetry(panels: Mapping[str, Sequence[CellData]], out: Path, title: str) -> Path:
    """Fig. 9: a column per budget; top: raw / calibrated prior / weak prediction IoU against the
    hidden masks; bottom: accuracy and coverage of the selected pseudo-label pixels."""
    plt = _plt()
    cols = list(panels)
    fig, axes = plt.subplots(2, len(cols), figsize=(5.2 * len(cols), 7.0), squeeze=False)
    for j, col in enumerate(cols):
        for i, lines in enumerate((TELE_TOP, TELE_BOTTOM)):
            ax = axes[i][j]
            for k, (label, key) in enumerate(lines):
                xs, m, lo, hi = _curve(panels[col], key)
                if not xs:
                    continue
                ax.plot(xs, m, marker="o", ms=3, label=label, color=f"C{k}")
                ax.fill_between(xs, lo, hi, alpha=0.15, color=f"C{k}")
            ax.set_xlabel("epoch (unlabeled set)")
            ax.set_ylabel("mean IoU (%)" if i == 0 else "%")
            ax.set_title(
                f"{col}: " + ("quality vs hidden masks" if i == 0 else "selected pseudo-label pixels"), fontsize=10
            )
            ax.set_ylim(0, 102)
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(wrap(title, int(45 * len(cols)) + 20), fontsize=11)
    return _save(fig, out)
