"""Throughput of the training methods on the CPU default, and RPLE's share of a training step.

    python benchmarks/bench_semi.py                      # supervised, fixmatch, l2l: 150 steps each
    python benchmarks/bench_semi.py --rple-only --size 480 --batch 4   # RPLE ops at paper resolution

The first form runs the real trainer (configs/synthref_semi.yaml / synthref_l2l.yaml, 5 % labels,
no warm-up so every step is a semi-supervised one, evaluation on 8 samples) on the SynthRef data
and priors of the configs, and reads the per-step wall time, samples/s and RPLE's own time from
the run's metrics.jsonl (the first log window, which includes start-up, is dropped). The second
form times RPLE alone (state, action, reward, replay, one DDPG update) on random maps, to set
against a paper-scale step (benchmarks/bench_train.py --paper-scale).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def run_method(method: str, steps: int, data: str, priors: str) -> dict:
    from l2l.config import load_config
    from l2l.engine.trainer import TrainConfig, Trainer

    config = ROOT / (
        "configs/synthref_l2l.yaml" if method in ("l2l", "static-threshold") else "configs/synthref_semi.yaml"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(
            TrainConfig,
            config,
            [
                f"method={method}",
                f"total_steps={steps}",
                "log_every=25",
                "semi.warmup_steps=0",
                "data.eval_max_samples=8",
                f"data.root={data}",
                f"semi.priors={priors}",
                "ckpt_every=100000",
            ],
        )
        t0 = time.perf_counter()
        Trainer(cfg, Path(tmp) / "run", show_progress=False).fit(resume=False)
        wall = time.perf_counter() - t0
        recs = [json.loads(x) for x in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    logs = [r for r in recs if "step_seconds" in r][1:]
    step_s = statistics.mean(r["step_seconds"] for r in logs)
    out = {
        "method": method,
        "steps": steps,
        "step_seconds": step_s,
        "wall_seconds": wall,
        "samples_per_s": logs[-1]["samples_per_s"],
        "labeled_batch": cfg.batch_size,
        "unlabeled_batch": cfg.semi.unlabeled_batch_size if method != "supervised" else 0,
    }
    if any("rple_seconds" in r for r in logs):
        rp = statistics.mean(r["rple_seconds"] for r in logs if "rple_seconds" in r)
        out.update(rple_seconds=rp, rple_share=rp / step_s)
    return out


def rple_only(size: int, batch: int, reps: int) -> dict:
    from l2l.semi import rple as R

    torch.manual_seed(0)
    r = R.RPLE()
    q, pw = torch.rand(batch, size, size), torch.rand(batch, size, size)
    prev, a = torch.tensor([[0.7, 0.2]]).repeat(batch, 1), torch.rand(batch)
    for _ in range(80):
        s = R.state(q, prev, a)
        r.buffer.add(s, prev, torch.zeros(batch), s)

    def once():
        s = R.state(q, prev, a)
        thr = r.act(s)
        rew, _ = R.reward(pw, q, thr, prev, r.cfg)
        r.buffer.add(s, thr, rew, s)
        r.update()

    for _ in range(3):
        once()
    t0 = time.perf_counter()
    for _ in range(reps):
        once()
    return {"size": size, "batch": batch, "rple_ms_per_minibatch": (time.perf_counter() - t0) / reps * 1000}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", nargs="+", default=["supervised", "fixmatch", "l2l"])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--data", default=str(ROOT / "runs/data/synthref"))
    ap.add_argument("--priors", default=str(ROOT / "runs/data/synthref_priors"))
    ap.add_argument("--rple-only", action="store_true")
    ap.add_argument("--size", type=int, default=480)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    os.environ.setdefault("L2L_NO_PROGRESS", "1")
    info = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }
    if a.rple_only:
        print(json.dumps({**info, **rple_only(a.size, a.batch, a.reps)}, indent=2))
        return
    rows = [run_method(m, a.steps, a.data, a.priors) for m in a.methods]
    print(json.dumps({**info, "rows": rows}, indent=2))
    print(f"{'method':<12}{'s/step':>9}{'samples/s':>11}{'RPLE s/step':>13}{'RPLE share':>12}")
    for r in rows:
        print(
            f"{r['method']:<12}{r['step_seconds']:>9.4f}{r['samples_per_s']:>11.1f}"
            f"{r.get('rple_seconds', float('nan')):>13.4f}{100 * r.get('rple_share', float('nan')):>11.1f}%"
        )


if __name__ == "__main__":
    main()
