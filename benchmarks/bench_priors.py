"""Prior-generation throughput per (image, sentence): Qwen2.5-VL grounding + SAM2 box → mask.

    python benchmarks/bench_priors.py --device cuda --pairs 16 --batch 8     # real-size architectures
    python benchmarks/bench_priors.py --tiny --pairs 4 --batch 2             # a CPU check of the script

Random weights, a fixed number of generated tokens (``--tokens``, default 30: a typical
grounding answer), 640×480 images. Compare with the paper's App. B.4 Table 16 (RTX A6000):
1.743 s/pair for Qwen2.5-VL-7B and 0.166 s/pair for SAM2. The SAM2 here is transformers'
default ``Sam2Config`` (31 M parameters; the paper does not name its SAM2 size).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

QWEN_7B = dict(
    text_config=dict(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        vocab_size=152064,
        rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
        max_position_embeddings=128000,
    ),
    vision_config=dict(
        depth=32,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        out_hidden_size=3584,
        fullatt_block_indexes=[7, 15, 23, 31],
        window_size=112,
    ),
)
QWEN_TINY = dict(
    text_config=dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=152064,
        rope_scaling={"type": "mrope", "mrope_section": [4, 2, 2]},
    ),
    vision_config=dict(
        depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, fullatt_block_indexes=[1]
    ),
)


def main() -> None:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Sam2Config,
        Sam2Model,
    )

    from l2l.foundation.mask_model import Sam2MaskPredictor

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=30)
    ap.add_argument("--max-pixels", type=int, default=1280 * 28 * 28)
    a = ap.parse_args()
    dev = torch.device(a.device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    cfg = Qwen2_5_VLConfig(**(QWEN_TINY if a.tiny else QWEN_7B))
    with torch.device(dev):
        qwen = Qwen2_5_VLForConditionalGeneration(cfg).to(dtype).eval()
    sam = Sam2MaskPredictor(Sam2Model(Sam2Config()), str(dev), dtype)
    ip = Qwen2VLImageProcessor(max_pixels=a.max_pixels)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(a.batch)]
    vis = ip(images=images, return_tensors="pt")
    n_img = int(vis["image_grid_thw"][0].prod()) // 4
    text = rng.integers(1000, 2000, size=24).tolist()
    ids = [cfg.vision_start_token_id] + [cfg.image_token_id] * n_img + [cfg.vision_end_token_id] + text
    input_ids = torch.tensor([ids] * a.batch, device=dev)
    pix = vis["pixel_values"].to(dev, dtype)
    grid = vis["image_grid_thw"].to(dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def ground():
        with torch.no_grad():
            qwen.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                pixel_values=pix,
                image_grid_thw=grid,
                max_new_tokens=a.tokens,
                min_new_tokens=a.tokens,
                do_sample=False,
            )

    boxes = [(100.0, 80.0, 400.0, 360.0)] * a.batch
    ground(), sam(images, boxes)  # warm-up
    sync()
    steps = max(1, a.pairs // a.batch)
    t = time.perf_counter()
    for _ in range(steps):
        ground()
    sync()
    tq = (time.perf_counter() - t) / (steps * a.batch)
    t = time.perf_counter()
    for _ in range(steps):
        sam(images, boxes)
    sync()
    ts = (time.perf_counter() - t) / (steps * a.batch)
    out = {
        "benchmark": "prior_generation",
        "device": str(dev),
        "tiny": a.tiny,
        "batch": a.batch,
        "generated_tokens": a.tokens,
        "image": "640x480",
        "image_tokens": n_img,
        "qwen_params_b": round(sum(p.numel() for p in qwen.parameters()) / 1e9, 3),
        "qwen_s_per_pair": round(tq, 4),
        "sam2_s_per_pair": round(ts, 4),
        "total_s_per_pair": round(tq + ts, 4),
        "paper_A6000_s_per_pair": {"qwen2.5-vl-7b": 1.743, "sam2": 0.166},
    }
    if dev.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name()
        out["peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
