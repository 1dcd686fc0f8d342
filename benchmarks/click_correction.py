"""Correcting masks with clicks (issue 36, target 2 and the page's answer time): the simulated annotator
(`l2l.label.clicks`) on the first ``--refs`` objects of a SynthRef split, with the stand-in (or a real)
promptable mask model.

    python benchmarks/click_correction.py --data runs/data/synthref --split val --refs 300 \\
        --priors runs/data/synthref_priors_val --out runs/clicks/val.json

Per start (``empty``: no mask; ``prior``: the stored prior at 0.5, when ``--priors`` is given) it reports
the share of objects at IoU ≥ 0.85 after at most 3 clicks (target: ≥ 80 %), the share accepted with no
click (IoU ≥ 0.9 at the start), NoC@90 (clicks to IoU ≥ 0.9; 6 when 5 clicks do not reach it), the mean
IoU after k clicks and the mask model's seconds per click (``set_image`` once per object, not counted).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from l2l.data.refer import ReferDataset
from l2l.foundation.mask_model import MaskPredictor
from l2l.label.clicks import simulate
from l2l.priors.store import PriorStore
from l2l.utils import threads as thread_policy
from l2l.utils.folders import resolve_model_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import cpu_name  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="runs/data/synthref")
    ap.add_argument("--split", default="val")
    ap.add_argument("--refs", type=int, default=300)
    ap.add_argument("--mask-model", default="builtin:synthpool-sam")
    ap.add_argument("--priors", default=None, help="a prior store of the split (adds the 'prior' start)")
    ap.add_argument("--max-clicks", type=int, default=5)
    ap.add_argument("--target-iou", type=float, default=0.9)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    thread_policy.apply()
    ds = ReferDataset.open(a.data)
    pred = MaskPredictor.from_pretrained(resolve_model_path(a.mask_model))
    first = {}
    for r in ds.samples(a.split):
        first.setdefault(r.ref_id, r)  # one object per ref, its first sentence's prior
    refs = [first[k] for k in sorted(first)][: a.refs]
    store = PriorStore(a.priors) if a.priors else None
    starts = ["empty"] + (["prior"] if store is not None else [])
    res: dict = {
        "data": a.data,
        "split": a.split,
        "refs": len(refs),
        "mask_model": a.mask_model,
        "max_clicks": a.max_clicks,
        "target_iou": a.target_iou,
        "cpu": cpu_name(),
        "date": time.strftime("%Y-%m-%d"),
        "starts": {},
    }
    for start in starts:
        curves, noc, secs = [], [], []
        for r in refs:
            image, truth = ds.load_image(r.image_id), ds.mask(r.ann_id)
            mask = None
            if start == "prior" and store is not None:
                p = store.get(r.sample_id)
                mask = None if p is None else p >= 0.5
            out = simulate(pred, image, truth, mask, a.max_clicks, a.target_iou)
            ious = out["ious"] + [out["ious"][-1]] * (a.max_clicks + 1 - len(out["ious"]))  # done: stays
            curves.append(ious)
            noc.append(next((k for k, v in enumerate(out["ious"]) if v >= a.target_iou), a.max_clicks + 1))
            secs += out["seconds"]
        c = np.array(curves)
        res["starts"][start] = {
            "iou085_within_3_clicks": round(float((c[:, :4].max(1) >= 0.85).mean()), 4),
            "accepted_without_click": round(float((c[:, 0] >= a.target_iou).mean()), 4),
            "noc90": round(float(np.mean(noc)), 3),
            "mean_iou_after_k_clicks": [round(float(v), 4) for v in c.mean(0)],
            "seconds_per_click_mean": round(float(np.mean(secs)), 4) if secs else None,
            "seconds_per_click_p95": round(float(np.quantile(secs, 0.95)), 4) if secs else None,
            "clicks": len(secs),
        }
        print(start, json.dumps(res["starts"][start]))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
