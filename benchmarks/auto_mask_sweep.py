"""Automatic mask mode: recall and time per image over a grid of its settings (issue 13's recall target).

The operating point is chosen on one split (``--tune``, default val): the setting with the fewest
masks per image whose recall reaches ``--min-recall`` (recall alone only rewards more masks), or the
best recall when none does; it is then measured on another split (``--report``, default train, as
in benchmarks/foundation_eval.py), so that the reported recall is not the tuning split's.

    python benchmarks/auto_mask_sweep.py --threads 1 --out docs/results/foundation/auto_sweep.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="runs/data/synthref")
    ap.add_argument("--mask-model", default="builtin:synthpool-sam")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--tune", default="val")
    ap.add_argument("--report", default="train")
    ap.add_argument("--points", type=int, nargs="+", default=[12])
    ap.add_argument("--iou", type=float, nargs="+", default=[0.75, 0.7, 0.65])
    ap.add_argument("--stability", type=float, nargs="+", default=[0.85, 0.8])
    ap.add_argument("--nms", type=float, nargs="+", default=[0.7])
    ap.add_argument("--min-recall", type=float, default=0.8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--also", action="store_true", help="measure the function's defaults on --report too")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from l2l.data.refer import ReferDataset
    from l2l.foundation.mask_model import MaskPredictor
    from l2l.pretrain.mask_model import synthref_auto_recall

    ds = ReferDataset.synthref(args.data)
    pred = MaskPredictor.from_pretrained(args.mask_model)

    def measure(split: str, **kw) -> dict:
        t, stats = time.perf_counter(), {}
        recall = synthref_auto_recall(pred, ds, split, args.images, stats=stats, **kw)
        return {
            "recall50": round(recall, 4),
            "seconds_per_image": round((time.perf_counter() - t) / args.images, 3),
            **{k: round(v, 2) for k, v in stats.items()},
        }

    rows = []
    for p, i, s, n in itertools.product(args.points, args.iou, args.stability, args.nms):
        kw = {"points_per_side": p, "pred_iou_thresh": i, "stability_thresh": s, "nms_thresh": n}
        rows.append({**kw, args.tune: measure(args.tune, **kw)})
        print(rows[-1], flush=True)
    enough = [r for r in rows if r[args.tune]["recall50"] >= args.min_recall]
    if enough:
        best = min(enough, key=lambda r: (r[args.tune]["masks_per_image"], -r[args.tune]["recall50"]))
    else:
        best = max(rows, key=lambda r: (r[args.tune]["recall50"], -r[args.tune]["masks_per_image"]))
    kw = {k: best[k] for k in ("points_per_side", "pred_iou_thresh", "stability_thresh", "nms_thresh")}
    chosen = {**kw, args.report: measure(args.report, **kw)}
    print("chosen on", args.tune, "->", chosen, flush=True)
    if args.also:
        chosen["defaults_" + args.report] = measure(args.report)
    res = {
        "data": args.data,
        "images": args.images,
        "threads": args.threads,
        "date": time.strftime("%Y-%m-%d"),
        "tuned_on": args.tune,
        "min_recall": args.min_recall,
        "sweep": rows,
        "chosen": chosen,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
