"""Training-step throughput, peak memory and (on GPU) model FLOPs utilisation.

    python benchmarks/bench_train.py                       # the CPU default (configs/synthref_supervised.yaml)
    python benchmarks/bench_train.py --paper-scale --device cuda --batch 4 --steps 20
        # Swin-B w12 + BERT-base at 480² with random weights, bf16 autocast; MFU vs --peak-tflops

Synthetic inputs (random images, masks and sentences) so that only the model is measured.
FLOPs per step come from torch.utils.flop_counter on one forward+backward pass.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from l2l.config import load_config
from l2l.engine.trainer import TrainConfig
from l2l.models.segmenter import Segmenter
from l2l.semi.methods.supervised import weighted_ce_per_sample

SENTS = [
    "the second red ball from the left",
    "big striped square",
    "the star above the blue heart",
    "man in the red shirt on the left holding a bat",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/synthref_supervised.yaml")
    ap.add_argument("--paper-scale", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU (H100 SXM: 989)")
    a = ap.parse_args()
    if a.paper_scale:
        from param_count import paper_config  # benchmarks/ is on sys.path when run as a script

        mcfg, size = paper_config(sesm=True), 480
        mcfg.sesm.prior_dropout = 0.0
    else:
        cfg = load_config(TrainConfig, a.config)
        mcfg, size = cfg.model, cfg.data.size
    dev = torch.device(a.device)
    model = Segmenter(mcfg).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    amp = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    x = torch.rand(a.batch, 3, size, size, device=dev)
    y = (torch.rand(a.batch, size, size, device=dev) > 0.8).long()
    g = torch.rand(a.batch, 1, size, size, device=dev) if model.uses_guidance else None
    texts = [SENTS[i % len(SENTS)] for i in range(a.batch)]

    def step():
        with amp:
            loss = weighted_ce_per_sample(model(x, texts, g).float(), y).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    for _ in range(2):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t) / a.steps
    out = {
        "benchmark": "train_step",
        "paper_scale": a.paper_scale,
        "device": str(dev),
        "image_size": size,
        "batch": a.batch,
        "step_s": round(dt, 4),
        "samples_per_s": round(a.batch / dt, 2),
        "gflops_per_step": round(flops / 1e9, 1),
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch": torch.__version__,
        "cpu": platform.machine(),
    }
    if dev.type == "cuda":
        out["peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        out["gpu"] = torch.cuda.get_device_name()
        out["mfu"] = round(flops / dt / (a.peak_tflops * 1e12), 4)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
