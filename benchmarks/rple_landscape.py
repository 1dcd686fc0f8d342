"""Where does RPLE's reward point? The one-step optimum of Eq. 8 per unlabeled sample (issue 33).

    python benchmarks/rple_landscape.py --run runs/land/l2l_s22 --samples 512 \\
        --variant paper= --variant no_cov=terms=sep+con+stab --variant cov0.1=lambdas=1,1,0.1,0.1 \\
        --out runs/land/landscape.jsonl

Takes a finished self-training run (its ``last`` checkpoint, bank and config; the folder is copied to a
scratch folder first and never written), replays the weak pass and the soft target ``q`` (P̃ under SPM)
of the method on ``--samples`` unlabeled training samples in the order of the run's own step stream,
and evaluates the gain of Eq. 8 without its stability term (:func:`l2l.semi.rple.landscape`) on a 0.05
grid of (τ_fg, τ_bg) for every ``--variant`` of the reward (``NAME=`` the run's own settings;
``NAME=lambdas=a,b,c,d`` and/or ``terms=sep+con+...``, ``;`` between keys). For each variant it
reports the quantiles of the argmax thresholds across samples (the spread a perfect actor could reach
at best), the share at the lowest τ_fg, and the IoU with the **hidden** mask of the pseudo-foreground
under the argmax, under the static default and under the per-sample oracle τ_fg (the τ_fg whose
``{q ≥ τ_fg}`` matches the hidden mask best). One JSON line per variant to ``--out`` (appended).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from l2l.data.augment import IGNORE_INDEX
from l2l.data.dataset import HiddenMasks
from l2l.engine.trainer import TrainConfig, Trainer
from l2l.semi import rple as R
from l2l.utils import threads as thread_policy
from l2l.utils.run_paths import load_run_config

sys.path.insert(0, str(Path(__file__).parent))
from bench_speed import cpu_name  # noqa: E402


def parse_variant(text: str, base: R.RPLEConfig) -> tuple[str, R.RPLEConfig]:
    name, _, rest = text.partition("=")
    cfg = base
    for item in filter(None, rest.split(";")):
        key, _, value = item.partition("=")
        if key == "lambdas":
            lam = tuple(float(v) for v in value.split(","))
            if len(lam) != 4:
                raise SystemExit(f"--variant {text}: lambdas needs four numbers (sep, con, cov, stab)")
            cfg = replace(cfg, lambdas=lam)  # type: ignore[arg-type]
        elif key == "terms":
            cfg = replace(cfg, terms=tuple(value.split("+")))
        elif key == "temperature":
            cfg = replace(cfg, temperature=float(value))
        else:
            raise SystemExit(f"--variant {text}: unknown key {key!r} (lambdas, terms, temperature)")
    return name, cfg


def _iou(pred: torch.Tensor, gt: torch.Tensor) -> float:
    valid = gt != IGNORE_INDEX
    p, g = pred & valid, (gt == 1) & valid
    u = int((p | g).sum())
    return int((p & g).sum()) / u if u else 0.0


def _quantiles(v: list[float]) -> dict[str, float]:
    t = torch.tensor(v, dtype=torch.float64)
    q = torch.quantile(t, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)).tolist()
    return {"mean": round(float(t.mean()), 4), "p10": round(q[0], 4), "p50": round(q[1], 4), "p90": round(q[2], 4)}


def collect(run: Path, samples: int) -> tuple[list[dict], R.RPLEConfig, str]:
    """(per-sample p_w, q, hidden mask) of the run's last model on the first ``samples`` unlabeled visits."""
    cfg = load_run_config(run, TrainConfig)
    if cfg is None:
        raise SystemExit(f"{run}: not a run folder (no config.yaml)")
    scratch = Path(tempfile.mkdtemp(prefix="rple_landscape_"))
    shutil.copytree(run, scratch / "run", ignore=shutil.ignore_patterns("tb"))
    cfg.data.workers = 0
    tr = Trainer(cfg, scratch / "run", show_progress=False)
    tr.prepare(resume=True)
    method = tr.method
    if not hasattr(method, "weak_pass"):
        raise SystemExit(f"{run}: method {cfg.method} is not a self-training method")
    hidden = HiddenMasks(tr.dataset)
    out: list[dict] = []
    step = tr.state["step"]
    tr.model.train()  # the weak pass of a training visit (batch-norm statistics of the batch)
    while len(out) < samples:
        _, unl = tr.stream[step]
        step += 1
        if unl is None:
            raise SystemExit(f"{run}: no unlabeled samples")
        if unl.text_features is not None:
            tr.model.text.absorb(unl.text_features)
        with torch.no_grad():
            p_w, _ = method.weak_pass(tr.net, unl, tr.device)
            prior = (
                unl.priors.to(tr.device)[:, 0].float() if (method.cfg.uses_prior and unl.priors is not None) else None
            )
            has = (
                unl.has_prior.to(tr.device) if prior is not None else torch.zeros(len(unl.sample_ids), dtype=torch.bool)
            )
            q, _ = method.soft_target(p_w, prior, has)
        for j, (sid, geo) in enumerate(zip(unl.sample_ids, unl.geometries)):
            out.append({"p_w": p_w[j].cpu(), "q": q[j].cpu(), "gt": hidden.get(sid, geo).long()})
    shutil.rmtree(scratch, ignore_errors=True)
    return out[:samples], method.probe_config(), cfg.method


def analyse(rows: list[dict], cfg: R.RPLEConfig, chunk: int = 8) -> dict:
    grid = R.threshold_grid(cfg)
    fg_levels = torch.unique(grid[:, 0])
    default = torch.tensor(cfg.init_thresholds)[None]
    best_fg, best_bg, iou_arg, iou_static, iou_oracle, oracle_fg = [], [], [], [], [], []
    for i in range(0, len(rows), chunk):
        part = rows[i : i + chunk]
        p_w = torch.stack([r["p_w"] for r in part])
        q = torch.stack([r["q"] for r in part])
        g = R.landscape(p_w, q, cfg, grid)
        best = grid[g.argmax(1)]
        lab_best = R.pseudo_label(q, best, cfg.band, cfg.band_regions)
        lab_static = R.pseudo_label(q, default.expand(len(part), 2), cfg.band, cfg.band_regions)
        for j, r in enumerate(part):
            ious = [_iou(r["q"] >= t, r["gt"]) for t in fg_levels.tolist()]
            k = max(range(len(ious)), key=ious.__getitem__)
            best_fg.append(float(best[j, 0]))
            best_bg.append(float(best[j, 1]))
            oracle_fg.append(float(fg_levels[k]))
            iou_oracle.append(ious[k])
            iou_arg.append(_iou(lab_best[j] == 1, r["gt"]))
            iou_static.append(_iou(lab_static[j] == 1, r["gt"]))
    n = len(rows)
    fg_min = float(fg_levels[0])
    corr = torch.corrcoef(torch.tensor([best_fg, oracle_fg]))[0, 1]
    return {
        "samples": n,
        "argmax_tau_fg": _quantiles(best_fg),
        "argmax_tau_bg": _quantiles(best_bg),
        "share_at_lowest_tau_fg": round(sum(f <= fg_min + 1e-6 for f in best_fg) / n, 4),
        "oracle_tau_fg": _quantiles(oracle_fg),
        "corr_argmax_oracle_tau_fg": None if torch.isnan(corr) else round(float(corr), 4),
        "fg_iou_argmax": round(sum(iou_arg) / n, 4),
        "fg_iou_static": round(sum(iou_static) / n, 4),
        "fg_iou_oracle": round(sum(iou_oracle) / n, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a finished self-training run folder (read only)")
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--variant", action="append", default=[], help="NAME=key=value;key=value (repeatable)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    thread_policy.apply()
    rows, base, method = collect(Path(a.run), a.samples)
    variants = [parse_variant(v, base) for v in (a.variant or ["run="])]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    for name, cfg in variants:
        rec = {
            "run": a.run,
            "method": method,
            "variant": name,
            "lambdas": list(cfg.lambdas),
            "terms": list(cfg.terms),
            "temperature": cfg.temperature,
            "band": cfg.band,
            **analyse(rows, cfg),
            "cpu": cpu_name(),
        }
        print(json.dumps(rec))
        with open(a.out, "a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
