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

from l2l.data.dataset import HiddenMasks
from l2l.engine.trainer import TrainConfig, Trainer
from l2l.semi import rple as R
from l2l.semi.telemetry import Telemetry, Visit
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


def collect(run: Path, samples: int):
    """The run's last model replayed on its first ``samples`` unlabeled visits: the visits (static
    thresholds as the "chosen" ones), the probe's base settings, the method and the hidden masks."""
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
    base = method.probe_config()
    static = torch.tensor(base.init_thresholds)
    visits: list[Visit] = []
    step, n = tr.state.step, 0
    tr.model.train()  # the weak pass of a training visit (batch-norm statistics of the batch)
    while n < samples:
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
        k = min(len(unl.sample_ids), samples - n)
        p_w, q = p_w[:k].cpu(), q[:k].cpu()
        thr = static.expand(k, 2)
        labels = R.pseudo_label(q, thr, base.band, base.band_regions)
        ids, geos = list(unl.sample_ids[:k]), list(unl.geometries[:k])
        visits.append(Visit(ids, geos, None, torch.zeros(k, dtype=torch.bool), p_w, q, labels, thr))
        n += k
    shutil.rmtree(scratch, ignore_errors=True)
    return visits, base, cfg.method, HiddenMasks(tr.dataset)


def analyse(visits: list[Visit], cfg: R.RPLEConfig, hidden: HiddenMasks) -> dict:
    """The telemetry's own probe (:meth:`Telemetry.add_landscape`) over ``visits`` with the reward ``cfg``."""
    tele = Telemetry(hidden, cfg)
    for v in visits:
        tele.add_landscape(v)
    s = tele.summary()
    best, oracle = tele.values("land_tau_fg"), tele.values("oracle_tau_fg")
    corr = torch.corrcoef(torch.tensor([best, oracle]))[0, 1]

    def q(name: str) -> dict[str, float]:
        return {k: round(s[f"tele_{name}_{k}"], 4) for k in ("mean", "p10", "p50", "p90")}

    return {
        "samples": int(s["tele_land_n"]),
        "argmax_tau_fg": q("land_tau_fg"),
        "argmax_tau_bg": q("land_tau_bg"),
        "share_at_lowest_tau_fg": round(s["tele_land_fg_at_min"], 4),
        "oracle_tau_fg": q("oracle_tau_fg"),
        "corr_argmax_oracle_tau_fg": None if torch.isnan(corr) else round(float(corr), 4),
        "fg_iou_argmax": round(s["tele_land_fg_iou_argmax"], 4),
        "fg_iou_static": round(s["tele_land_fg_iou_static"], 4),
        "fg_iou_oracle": round(s["tele_land_fg_iou_oracle"], 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a finished self-training run folder (read only)")
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--variant", action="append", default=[], help="NAME=key=value;key=value (repeatable)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    thread_policy.apply()
    visits, base, method, hidden = collect(Path(a.run), a.samples)
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
            **analyse(visits, cfg, hidden),
            "cpu": cpu_name(),
        }
        print(json.dumps(rec))
        with open(a.out, "a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
