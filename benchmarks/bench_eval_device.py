"""Evaluation throughput of the paper-scale segmenter on the CPU and on a GPU (why `l2l eval --device`).

    python benchmarks/bench_eval_device.py [--batch 8] [--cpu-iters 2] [--gpu-iters 20]

Swin-B at 480² + BERT-base (random weights: the speed does not depend on them) with SESM, the
model of the paper and of `configs/refcoco_*.yaml`; `Segmenter.predict` on a batch of random
images, after one warm-up batch. Prints one JSON line per device with images/s and seconds/batch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from param_count import paper_config  # noqa: E402

from l2l.models.segmenter import Segmenter  # noqa: E402

TEXTS = ["the man in the red shirt on the left", "a dog", "second cup from the right", "the tall lamp behind the sofa"]


def bench(model: Segmenter, device: str, batch: int, iters: int, amp: bool) -> dict:
    model = model.to(device).eval()
    x = torch.rand(batch, 3, 480, 480, device=device)
    texts = [TEXTS[i % len(TEXTS)] for i in range(batch)]
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if amp else torch.autocast("cpu", enabled=False)
    with torch.no_grad(), ctx:
        model.predict(x, texts)  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(iters):
            model.predict(x, texts)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t) / iters
    return {
        "device": device,
        "amp_bf16": amp,
        "batch": batch,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "seconds_per_batch": round(dt, 4),
        "images_per_s": round(batch / dt, 2),
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--cpu-iters", type=int, default=2)
    ap.add_argument("--gpu-iters", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = Segmenter(paper_config(sesm=True))
    runs = [("cpu", args.cpu_iters, False)]
    if torch.cuda.is_available():
        runs += [("cuda", args.gpu_iters, False), ("cuda", args.gpu_iters, True)]
    for dev, iters, amp in runs:
        if iters > 0:
            print(json.dumps(bench(model, dev, args.batch, iters, amp)), flush=True)


if __name__ == "__main__":
    main()
