"""Does a model prefer the referred object over the other objects of the image?

    python benchmarks/grounding_probe.py RUN_OR_MODEL [--data runs/data/synthref] [--split val] [--n 200]

Prints the mean foreground probability over the referred object's mask and over the masks of
the image's other objects (objectness without grounding gives two similar numbers).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

from l2l.data.augment import WeakAugConfig
from l2l.data.dataset import EvalRefDataset, collate_eval
from l2l.data.refer import ReferDataset
from l2l.models.segmenter import Segmenter


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--data", default="runs/data/synthref")
    ap.add_argument("--split", default="val")
    ap.add_argument("--n", type=int, default=200)
    a = ap.parse_args()
    m = Segmenter.from_pretrained(a.model)
    ds = ReferDataset.open(a.data)
    recs = ds.samples(a.split)[: a.n]
    b = collate_eval([EvalRefDataset(ds, recs, WeakAugConfig(m.cfg.image_size))[i] for i in range(len(recs))])
    with torch.no_grad():
        p = torch.cat([m.predict(b.images[i : i + 50], b.texts[i : i + 50]) for i in range(0, len(recs), 50)])
    ref, other = [], []
    for j, r in enumerate(recs):
        pj = F.interpolate(p[j][None, None], size=b.masks_orig[j].shape, mode="bilinear", align_corners=False)[0, 0]
        for ann in ds.image_anns(r.image_id):
            (ref if ann == r.ann_id else other).append(pj[torch.from_numpy(ds.mask(ann))].mean().item())
    print(
        json.dumps(
            {
                "model": a.model,
                "split": a.split,
                "sentences": len(recs),
                "p_referred": round(float(np.mean(ref)), 3),
                "p_other_objects": round(float(np.mean(other)), 3),
                "max_p": round(float(p.max()), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
