"""Data loader throughput on SynthRef, with the training augmentations.

Measures samples/s for
  * labeled samples: image decode + weak view (resize, scale jitter, flip + word swap) + mask;
  * unlabeled samples: the same + the strong text view (EDA pools precomputed with MiniLM, then
    one survivor drawn per visit) — the pool precomputation is timed separately;
  * the strong image view (StrongAugment) on batches of 8, on the CPU.

    python benchmarks/bench_loader.py [--data DIR] [--workers 2] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch
from torch.utils.data import DataLoader

from l2l.data.augment import StrongAugment, WeakAugConfig
from l2l.data.dataset import LabeledRefDataset, UnlabeledRefDataset, collate_labeled, collate_unlabeled, train_records
from l2l.data.refer import ReferDataset
from l2l.data.splits import make_split
from l2l.data.synthref import SynthRefConfig, generate
from l2l.data.text_augment import SentenceEncoder, TextStrongAugmenter


def rate(dl: DataLoader, limit: int) -> float:
    n, t = 0, None
    for i, b in enumerate(dl):
        if i == 1:  # skip worker start-up
            t, n = time.perf_counter(), 0
        n += b.images.shape[0]
        if n >= limit and t is not None:
            break
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--samples", type=int, default=2000)
    a = ap.parse_args()
    data = a.data or os.path.join(tempfile.gettempdir(), "l2l_bench_synthref_2000")
    generate(SynthRefConfig(images=2000), data, show_progress=False)
    ds = ReferDataset.synthref(data)
    split = make_split(ds.name, ds.image_ids("train"), "5%", 22)
    lab, unl = train_records(ds, split)
    aug = WeakAugConfig(size=a.size, scale_range=(0.9, 1.1))
    res = {"benchmark": "data_loader", "workers": a.workers, "size": a.size, "batch": 8}

    dl = DataLoader(
        LabeledRefDataset(ds, lab * 20, aug),
        batch_size=8,
        shuffle=True,
        num_workers=a.workers,
        collate_fn=collate_labeled,
        persistent_workers=a.workers > 0,
    )
    res["labeled_samples_per_s"] = round(rate(dl, a.samples), 1)

    text_aug = TextStrongAugmenter(SentenceEncoder())
    sents = sorted({r.sentence for r in unl})  # pools of the original sentences (flips reuse them)
    t = time.perf_counter()
    text_aug.precompute(sents)
    res["eda_pool_sentences"] = len(sents)
    res["eda_pool_seconds"] = round(time.perf_counter() - t, 1)
    dl = DataLoader(
        UnlabeledRefDataset(ds, unl, aug, text_strong=text_aug),
        batch_size=8,
        shuffle=True,
        num_workers=a.workers,
        collate_fn=collate_unlabeled,
        persistent_workers=a.workers > 0,
    )
    res["unlabeled_samples_per_s"] = round(rate(dl, a.samples), 1)

    sa, x, g = StrongAugment(), torch.rand(8, 3, a.size, a.size), torch.Generator().manual_seed(0)
    sa(x, g)
    t, n = time.perf_counter(), 0
    while time.perf_counter() - t < 3:
        sa(x, g)
        n += 8
    res["strong_image_aug_samples_per_s"] = round(n / (time.perf_counter() - t), 1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
