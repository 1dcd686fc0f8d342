"""``l2l plot RUN``: one PNG of a run's curves from its ``metrics.jsonl``.

Panels (those with data): training losses; validation oIoU/mIoU; prior quality over training
(raw prior, target/calibrated prior, weak prediction — the paper's Fig. 9); accuracy and
coverage of the selected pseudo-label pixels; RPLE's thresholds (mean and 10–90 % band); the
reward terms of Eq. 8; with the reward-landscape probe (``telemetry_landscape_every``), the reward's
argmax thresholds against the oracle τ_fg and the pseudo-foreground IoU of each threshold choice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import MissingFileError
from ..utils.jsonl import read_records
from ..utils.run_folder import RunFolder


def read_metrics(run: str | Path) -> list[dict[str, Any]]:
    f = RunFolder(run).metrics
    if not f.exists():
        raise MissingFileError(f"{run}: no metrics.jsonl (is this a run folder of `l2l train`?)")
    return read_records(f)  # a torn last line is skipped, any other bad line named


def _series(recs, key):
    pts = [(r["step"], r[key]) for r in recs if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_run(run: str | Path, out: str | Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run)
    recs = read_metrics(run)
    tele = [r for r in recs if r.get("kind") == "telemetry"]
    train = [r for r in recs if "loss" in r]
    Series = list[tuple[str, list[dict[str, Any]], str]]
    panels: list[tuple[str, Series, tuple[float, float] | None]] = []
    panels.append(
        (
            "training loss (smoothed)",
            [("loss", train, "loss"), ("labeled", train, "loss_sup"), ("unlabeled", train, "loss_unsup")],
            None,
        )
    )
    panels.append(("validation", [("oIoU", recs, "val_oIoU"), ("mIoU", recs, "val_mIoU")], (0, 1)))
    if tele:
        panels.append(
            (
                "quality on unlabeled samples (mean IoU vs hidden GT)",
                [
                    ("raw prior P†", tele, "tele_prior_iou"),
                    ("target q (P̃ under SPM)", tele, "tele_target_iou"),
                    ("weak prediction p_w", tele, "tele_weak_iou"),
                ],
                (0, 1),
            )
        )
        panels.append(
            (
                "selected pseudo-label pixels",
                [
                    ("accuracy", tele, "tele_sel_acc"),
                    ("coverage", tele, "tele_sel_cov"),
                    ("fg precision", tele, "tele_fg_precision"),
                    ("fg recall", tele, "tele_fg_recall"),
                ],
                (0, 1.02),
            )
        )
        panels.append(
            ("thresholds (mean, 10–90 % band)", [("τ_fg", tele, "tele_tau_fg"), ("τ_bg", tele, "tele_tau_bg")], (0, 1))
        )
        terms = [
            k[len("tele_reward_") : -len("_mean")]
            for k in tele[-1]
            if k.startswith("tele_reward_") and k.endswith("_mean")
        ]
        if terms:
            panels.append(
                ("reward terms of Eq. 8 (mean per visit)", [(t, tele, f"tele_reward_{t}_mean") for t in terms], None)
            )
        if any("tele_land_tau_fg_mean" in r for r in tele):  # the reward-landscape probe (telemetry_landscape_every)
            panels.append(
                (
                    "reward's argmax vs the oracle τ (10–90 % band)",
                    [
                        ("argmax τ_fg", tele, "tele_land_tau_fg"),
                        ("argmax τ_bg", tele, "tele_land_tau_bg"),
                        ("oracle τ_fg (hidden masks)", tele, "tele_oracle_tau_fg"),
                    ],
                    (0, 1),
                )
            )
            panels.append(
                (
                    "pseudo-foreground IoU by threshold choice",
                    [
                        ("policy's", tele, "tele_land_fg_iou_chosen"),
                        ("reward's argmax", tele, "tele_land_fg_iou_argmax"),
                        ("static (0.70, 0.20)", tele, "tele_land_fg_iou_static"),
                        ("oracle", tele, "tele_land_fg_iou_oracle"),
                        ("share with argmax at the lowest τ_fg", tele, "tele_land_fg_at_min"),
                    ],
                    (0, 1.02),
                )
            )
    rows = -(-len(panels) // 3)
    fig, axes = plt.subplots(rows, 3, figsize=(15, 4.25 * rows))
    axes = axes.ravel()
    for ax, (title, lines, ylim) in zip(axes, panels):
        for label, src, key in lines:
            if key.endswith(("_tau_fg", "_tau_bg")):
                x, y = _series(src, key + "_mean")
                _, lo = _series(src, key + "_p10")
                _, hi = _series(src, key + "_p90")
                if x:
                    ax.plot(x, y, marker="o", ms=3, label=label)
                    ax.fill_between(x, lo, hi, alpha=0.2)
                continue
            x, y = _series(src, key)
            if not x:
                continue
            if src is train and len(y) > 10:  # running mean over ~5 % of the points
                k = max(1, len(y) // 20)
                y = [sum(y[max(0, i - k + 1) : i + 1]) / len(y[max(0, i - k + 1) : i + 1]) for i in range(len(y))]
            ax.plot(x, y, marker="o" if len(x) < 30 else None, ms=3, label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        if ylim:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
    for ax in axes[len(panels) :]:
        ax.axis("off")
    env = RunFolder(run).env
    method = json.loads(env.read_text()).get("method", {}).get("method", "?") if env.exists() else "?"
    fig.suptitle(f"{run.name} — method {method}", fontsize=12)
    fig.tight_layout()
    out = Path(out) if out else run / "curves.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
