"""How well does the CutLER substitute (``masks.select=ncut``, ``l2l.pseudoris.ncut``) find SynthRef's objects?

    python benchmarks/ncut_objects.py --data runs/data/synthref --images 20 --tau 0.15,0.3,0.5

Per τ: the cuts' mean share of the image, the mean best IoU of a cut with a ground-truth object, and
the share of ground-truth objects covered by some cut at IoU ≥ 0.5. Reads ground-truth masks of
training images: a measurement of the discoverer, never an input of it.
"""

from __future__ import annotations

import argparse
import json
import platform

import numpy as np
import torch

from l2l.data.refer import ReferDataset
from l2l.pseudoris.ncut import NCutDiscoverer


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="runs/data/synthref")
    ap.add_argument("--images", type=int, default=20, help="the first N training images")
    ap.add_argument("--tau", default="0.15,0.3,0.5")
    ap.add_argument("--encoder", default="builtin:synthpool-conv")
    a = ap.parse_args()
    torch.set_num_threads(1)
    ds = ReferDataset.open(a.data)
    ids = ds.image_ids("train")[: a.images]
    for tau in (float(t) for t in a.tau.split(",")):
        disc = NCutDiscoverer.from_pretrained(a.encoder, tau=tau)
        areas, best, covered = [], [], []
        for image_id in ids:
            found = disc(ds.load_image(image_id))
            gts = [ds.mask(ann).astype(bool) for ann in ds.image_anns(image_id)]
            areas += [float(f.mean()) for f in found]
            best += [max(iou(f, g) for g in gts) for f in found]
            covered += [max([iou(f, g) for f in found] or [0.0]) >= 0.5 for g in gts]
        print(
            json.dumps(
                {
                    "tau": tau,
                    "images": len(ids),
                    "cuts": len(areas),
                    "cut_area_share": round(float(np.mean(areas)), 3),
                    "cut_best_iou": round(float(np.mean(best)), 3),
                    "objects": len(covered),
                    "objects_covered_iou50": round(float(np.mean(covered)), 3),
                    "cpu": platform.processor(),
                }
            )
        )


if __name__ == "__main__":
    main()
