"""Where the objects grounder fails on SynthRef: is the referred object *found* (a detected box at IoU
≥ 0.5 with its ground-truth box) and is it *chosen* (the answered box at IoU ≥ 0.5), by expression kind.

Reads the ground-truth masks of the training split for measurement only (as ``l2l priors eval``).

    python benchmarks/grounder_diagnose.py --sentences 1500
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="runs/data/synthref")
    ap.add_argument("--grounder", default="builtin:synthpool-grounder")
    ap.add_argument("--split", default="train")
    ap.add_argument("--sentences", type=int, default=1500, help="the first N sentences of the split")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from l2l.data.refer import ReferDataset
    from l2l.foundation.common import image_batch
    from l2l.foundation.grounder import GrounderPredictor
    from l2l.foundation.object_grounder import ObjectGrounderNet
    from l2l.utils.masks import box_iou

    ds = ReferDataset.synthref(args.data)
    pred = GrounderPredictor.from_pretrained(args.grounder)
    if not isinstance(pred.net, ObjectGrounderNet):
        raise SystemExit(f"{args.grounder} is not an objects-body grounder")
    recs = ds.samples(args.split)[: args.sentences]
    found: dict[str, list[bool]] = defaultdict(list)
    chosen: dict[str, list[bool]] = defaultdict(list)
    for a in range(0, len(recs), 64):
        chunk = recs[a : a + 64]
        images = [ds.load_image(r.image_id) for r in chunk]
        answers = pred.ground(images, [r.sentence for r in chunk])
        with torch.no_grad():
            boxes, _, valid = pred.net.detect(pred.net.dense(image_batch(images, pred.net.cfg.image_size)))
        for i, (r, (box, _)) in enumerate(zip(chunk, answers)):
            m = ds.mask(r.ann_id) > 0
            ys, xs = np.nonzero(m)
            h, w = m.shape
            gt = [xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h]
            kind = getattr(r, "kind", None) or "all"
            found[kind].append(any(box_iou(gt, d) >= 0.5 for d in boxes[i][valid[i]].tolist()))
            chosen[kind].append(box_iou([box[0] / w, box[1] / h, box[2] / w, box[3] / h], gt) >= 0.5)
    every_f = [v for f in found.values() for v in f]
    every_c = [v for c in chosen.values() for v in c]
    res = {
        "sentences": len(every_f),
        "found": round(float(np.mean(every_f)), 4),
        "chosen": round(float(np.mean(every_c)), 4),
        "by_kind": {
            k: {
                "n": len(found[k]),
                "found": round(float(np.mean(found[k])), 4),
                "chosen": round(float(np.mean(chosen[k])), 4),
            }
            for k in sorted(found)
        },
    }
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
