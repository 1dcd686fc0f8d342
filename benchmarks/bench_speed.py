"""The hot paths at a known fraction of the machine's peak, per thread count, dtype and load.

    python benchmarks/bench_speed.py                        # every path: today's default vs the policy, idle
    python benchmarks/bench_speed.py --paths train l2l --settings 2:default 1 2 --busy 0 1 --dtype fp32 bf16
    python benchmarks/bench_speed.py --out docs/results/speed/speed.json

Each (path, setting, dtype, busy) is measured in a fresh process (the thread policy and the OpenMP
runtime are set when a process starts: utils/threads.py), with ``--busy 1`` a second process spinning
on one core beside it (what "another job on the machine" does to a run). Every child first measures
the peak of its own thread count and dtype (a 2048² matmul, best of three), then the path:

  train      one supervised training step (configs/synthref_supervised.yaml, real batches from the loader)
  fixmatch   one FixMatch step (configs/synthref_semi.yaml, 5 % labels, no warm-up)
  l2l        one L2L step (configs/synthref_l2l.yaml, 5 % labels, no warm-up)
  eval       the val evaluation of a fresh segmenter (inference_on_dataset, 128 samples)
  predict    SegmenterPredictor: 20 val images, all their sentences
  prior      the learned (stand-in) prior: grounder → box → mask model, 192 training samples
  pseudoris  Pseudo-RIS generation (automatic masks → captions → filter), 6 training images

and prints, per path: items per second, FLOPs per item (``torch.utils.flop_counter``: matmuls,
convolutions and attention, forward and backward; elementwise work is not counted), the achieved
GFLOP/s and its share of the measured peak. Needs the SynthRef data and the stand-in priors of the
configs (``l2l demo`` or ``l2l data synth`` + ``l2l priors generate --provider standin``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
PATHS = ("train", "fixmatch", "l2l", "eval", "predict", "prior", "pseudoris")


# ---------------------------------------------------------------------------------------- the child
def peak(dtype: str, n: int = 2048) -> float:
    """GFLOP/s of an n×n matmul at this process's thread count (best of three)."""
    import torch

    dt = torch.bfloat16 if dtype == "bf16" else torch.float32
    a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
    a @ b
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        best = min(best, (time.perf_counter() - t) / 4)
    return 2 * n**3 / best / 1e9


def _timed(fn: Callable[[], int], min_seconds: float) -> tuple[int, float]:
    """Call ``fn`` (returns the items it did) until ``min_seconds`` have passed."""
    items, t0 = 0, time.perf_counter()
    while True:
        items += fn()
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            return items, dt


def _flops(fn: Callable[[], int]) -> tuple[int, int]:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        items = fn()
    return fc.get_total_flops(), items


def _rate(run: Callable[[int], int], warm: int, probe: int, full: int, dtype: str, seconds: float, unit: str):
    """``run(k)`` does k items (returns how many it did): once to warm up, FLOPs counted on ``probe``
    items, then timed on ``full`` items for ``seconds``; under bf16 autocast when ``dtype`` says so."""
    import torch

    def go(k: int) -> int:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            return run(k)

    go(warm)
    flops, items = _flops(lambda: go(probe))
    n, dt = _timed(lambda: go(full), seconds)
    return {"items": n, "seconds": dt, "flops_per_item": flops / items, "unit": unit}


def _trainer(method: str, dtype: str, data: str, priors: str, tmp: str, extra: list[str] = ()):
    from l2l.config import load_config
    from l2l.engine.trainer import TrainConfig, Trainer

    config = {"train": "synthref_supervised", "fixmatch": "synthref_semi", "l2l": "synthref_l2l"}[method]
    over = [f"data.root={data}", "ckpt_every=100000", "amp=bf16" if dtype == "bf16" else 'amp="off"', *extra]
    if method != "train":
        over += [f"semi.priors={priors}", "semi.warmup_steps=0", "data.label_fraction=5%"]
    cfg = load_config(TrainConfig, ROOT / "configs" / f"{config}.yaml", over)
    tr = Trainer(cfg, Path(tmp) / "run", show_progress=False)
    tr.prepare(resume=False)
    return tr


def path_train(method: str, dtype: str, args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    tr = _trainer(method, dtype, args.data, args.priors, tmp, args.set)
    batches = [tr.stream[i] for i in range(args.steps + 4)]
    tr.model.train()
    for h in tr.hooks:
        h.before_train(tr)
    it = itertools.count()

    def step() -> int:
        i = next(it) % len(batches)
        lab, unl = batches[i]
        out, _ = tr.train_step(lab, unl)
        for h in tr.hooks:
            if type(h).__name__ not in ("EvalHook", "CheckpointHook"):
                h.after_step(tr, out)
        tr.state.step += 1
        return lab.images.shape[0] + (unl.images.shape[0] if unl is not None else 0)

    step()
    step()
    flops, items = _flops(step)
    n, dt = _timed(step, args.seconds)
    return {"items": n, "seconds": dt, "flops_per_item": flops / items, "unit": "samples (labeled + unlabeled)"}


def path_eval(dtype: str, args: argparse.Namespace, tmp: str) -> dict[str, Any]:

    from l2l.evaluation.inference import inference_on_dataset

    tr = _trainer("train", dtype, args.data, args.priors, tmp)
    recs = tr.dataset.samples("val")[:128]

    def run(k: int) -> int:
        inference_on_dataset(tr.model, tr.dataset, recs[:k], tr.cfg.data.size, show_progress=False)
        return k

    return _rate(run, 16, 16, len(recs), dtype, args.seconds, "val sentences")


def path_predict(dtype: str, args: argparse.Namespace, tmp: str) -> dict[str, Any]:

    from l2l.models.predictor import SegmenterPredictor

    tr = _trainer("train", dtype, args.data, args.priors, tmp)
    ds = tr.dataset
    pred = SegmenterPredictor(tr.model, "cpu", domain=None)
    by_image: dict[int, list[str]] = {}
    for r in ds.samples("val"):
        by_image.setdefault(r.image_id, []).append(r.sentence)
    images = [(ds.load_image(i), s) for i, s in list(by_image.items())[:20]]

    def run(k: int) -> int:
        done = 0
        for img, sents in images[:k]:
            pred.set_image(img)
            pred.predict(sents)
            done += len(sents)
        return done

    return _rate(run, 2, 4, len(images), dtype, args.seconds, "sentences (20 images)")


def path_prior(dtype: str, args: argparse.Namespace, tmp: str) -> dict[str, Any]:

    from l2l.data.refer import ReferDataset
    from l2l.priors.base import PriorInput
    from l2l.priors.standin import build

    ds = ReferDataset.synthref(args.data)
    provider = build()
    recs = sorted(ds.samples("train")[:192], key=lambda r: r.image_id)
    images = {r.image_id: ds.load_image(r.image_id) for r in recs}
    inputs = [PriorInput(r.sample_id, images[r.image_id], r.sentence) for r in recs]

    def run(k: int) -> int:
        for i in range(0, k, 32):
            provider(inputs[i : min(i + 32, k)])
        return k

    return _rate(run, 32, 32, len(inputs), dtype, args.seconds, "(image, sentence) samples")


def path_pseudoris(dtype: str, args: argparse.Namespace, tmp: str) -> dict[str, Any]:

    from l2l.data.refer import ReferDataset
    from l2l.pseudoris.config import PseudoRISConfig
    from l2l.pseudoris.generate import generate, load_models

    ds = ReferDataset.synthref(args.data)
    cfg = PseudoRISConfig()
    models = load_models("builtin:synthpool-sam", "builtin:synthpool-captioner", "builtin:synthpool-clip")
    runs = iter(range(1000))

    def run(k: int) -> int:
        generate(ds, Path(tmp) / f"g{next(runs)}", models, cfg, max_images=k, show_progress=False)
        return k

    return _rate(run, 2, 2, 6, dtype, args.seconds, "training images")


def child(args: argparse.Namespace) -> None:
    import torch  # the parent set OMP_NUM_THREADS / OMP_WAIT_POLICY (or left libgomp's default) for this process

    torch.set_num_threads(args.threads[0])

    res: dict[str, Any] = {"path": args.child, "threads": torch.get_num_threads(), "dtype": args.dtype[0]}
    res["peak_gflops"] = round(peak(args.dtype[0]), 1)
    with tempfile.TemporaryDirectory() as tmp:
        if args.child in ("train", "fixmatch", "l2l"):
            r = path_train(args.child, args.dtype[0], args, tmp)
        else:
            r = globals()[f"path_{args.child}"](args.dtype[0], args, tmp)
    rate = r["items"] / r["seconds"]
    gflops = rate * r["flops_per_item"] / 1e9
    res.update(
        r,
        items_per_s=round(rate, 2),
        gflop_per_item=round(r["flops_per_item"] / 1e9, 4),
        gflops=round(gflops, 1),
        share_of_peak=round(gflops / res["peak_gflops"], 3),
    )
    del res["flops_per_item"]
    print("RESULT " + json.dumps(res), flush=True)


# ---------------------------------------------------------------------------------------- the parent
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_setting(text: str) -> tuple[int, str]:
    """``THREADS[:WAIT]``: a thread count and an OMP_WAIT_POLICY (PASSIVE, ACTIVE or default = libgomp's)."""
    n, _, wait = text.partition(":")
    wait = (wait or "PASSIVE").upper()
    if not n.isdigit() or int(n) < 1 or wait not in ("PASSIVE", "ACTIVE", "DEFAULT"):
        raise argparse.ArgumentTypeError(f"expected THREADS[:PASSIVE|ACTIVE|default], got {text!r}")
    return int(n), wait


def measure(path: str, setting: tuple[int, str], dtype: str, busy: int, args: argparse.Namespace) -> dict[str, Any]:
    threads, wait = setting
    env = {**os.environ, "L2L_THREADS": str(threads), "OMP_NUM_THREADS": str(threads), "L2L_NO_PROGRESS": "1"}
    env.pop("OMP_WAIT_POLICY", None)
    if wait != "DEFAULT":
        env["OMP_WAIT_POLICY"] = wait
    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            path,
            "--threads",
            str(threads),
            "--dtype",
            dtype,
            "--seconds",
            str(args.seconds),
            "--steps",
            str(args.steps),
            "--data",
            args.data,
            "--priors",
            args.priors,
            "--set",
            *args.set,
        ]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    finally:
        for s in spin:
            s.kill()
            s.wait()
    line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        return {"path": path, "threads": threads, "dtype": dtype, "busy": busy, "error": p.stderr[-2000:]}
    return {**json.loads(line[7:]), "busy": busy, "wait_policy": wait.lower() if wait == "DEFAULT" else wait}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    ap.add_argument(
        "--settings",
        nargs="+",
        type=parse_setting,
        default=[(2, "DEFAULT"), (1, "PASSIVE")],
        help="THREADS[:WAIT] per measurement; the first is the reference of the ratio column "
        "(default: 2:default = torch's default on a 2-core machine before the thread policy, then "
        "1:PASSIVE = the policy)",
    )
    ap.add_argument("--threads", nargs="+", type=int, default=[1], help=argparse.SUPPRESS)  # the child's count
    ap.add_argument("--dtype", nargs="+", choices=["fp32", "bf16"], default=["fp32"])
    ap.add_argument("--busy", nargs="+", type=int, default=[0], help="spinning processes beside the measured one")
    ap.add_argument("--seconds", type=float, default=8.0, help="timed seconds per measurement (after warm-up)")
    ap.add_argument("--steps", type=int, default=16, help="distinct batches a training path cycles through")
    ap.add_argument(
        "--set", nargs="*", default=[], help="config overrides of the training paths (channels_last=true, …)"
    )
    ap.add_argument("--data", default=str(ROOT / "runs/data/synthref"))
    ap.add_argument("--priors", default=str(ROOT / "runs/data/synthref_priors"))
    ap.add_argument("--out", default=None, help="JSON file of every measurement")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    import torch

    machine = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "bf16_hardware": {
            "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
            "amx": torch.cpu._is_amx_tile_supported(),
        },
        "load_before": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(json.dumps(machine))
    rows = []
    print(
        "| path | threads | wait | dtype | busy | items/s | × first setting | GFLOP/item | GFLOP/s | peak GFLOP/s "
        "| share of peak |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for path in args.paths:
        for busy in args.busy:
            ref = None
            for dtype in args.dtype:
                for setting in args.settings:
                    r = measure(path, setting, dtype, busy, args)
                    rows.append(r)
                    head = f"| {path} | {setting[0]} | {setting[1].lower()} | {dtype} | {busy} |"
                    if "error" in r:
                        print(f"{head} failed: {r['error'].strip().splitlines()[-1:]} |", flush=True)
                        continue
                    ref = ref or r["items_per_s"]
                    r["ratio"] = round(r["items_per_s"] / ref, 2)
                    print(
                        f"{head} {r['items_per_s']} | {r['ratio']} | {r['gflop_per_item']} | {r['gflops']} | "
                        f"{r['peak_gflops']} | {100 * r['share_of_peak']:.1f} % |",
                        flush=True,
                    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
