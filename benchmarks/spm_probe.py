"""How good is the calibrated prior P̃ (SPM, Eqs. 4–6) under other settings, for a trained model?

    python benchmarks/spm_probe.py RUN [--data runs/data/synthref] [--priors runs/data/synthref_priors] [--n 300]

Takes unlabeled training samples of RUN's label split, the model's weak prediction p_w conditioned
on the stored prior P† (what the bank holds at its first visit; unconditioned for a model without SESM), and prints the IoU with the
ground truth (at the training resolution, threshold 0.5) of P†, p_w and P̃ for several SPM
settings. An analysis of a finished run: the masks are read here, never by training.
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
from l2l.data.splits import LabelSplit
from l2l.models.segmenter import Segmenter
from l2l.priors.store import PriorStore
from l2l.semi.spm import SPMConfig, calibrate

SETTINGS = {
    "spec default (κ 1)": SPMConfig(),
    "κ 0.5": SPMConfig(kappa=0.5),
    "κ 0 (no agreement damping)": SPMConfig(kappa=0.0),
    "κ 0, γ 0.5": SPMConfig(kappa=0.0, gamma=0.5),
    "κ 1, γ 0.5": SPMConfig(gamma=0.5),
}


def iou(p: torch.Tensor, gt: torch.Tensor) -> float:
    a, b = p >= 0.5, gt > 0.5
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--data", default="runs/data/synthref")
    ap.add_argument("--priors", default="runs/data/synthref_priors")
    ap.add_argument("--n", type=int, default=300)
    a = ap.parse_args()
    m = Segmenter.from_pretrained(a.run)
    ds = ReferDataset.open(a.data)
    split = LabelSplit.load(f"{a.run}/label_split.json")
    unl = set(split.unlabeled)
    recs = [r for r in ds.samples("train") if r.image_id in unl][: a.n]
    store = PriorStore(a.priors)
    s = m.cfg.image_size
    b = collate_eval([EvalRefDataset(ds, recs, WeakAugConfig(s))[i] for i in range(len(recs))])
    pri = torch.stack([torch.from_numpy(store.get(r.sample_id).astype(np.float32)) for r in recs])[:, None]
    pri = F.interpolate(pri, size=(s, s), mode="bilinear", align_corners=False).clamp(0, 1)
    gt = torch.stack([torch.from_numpy(ds.mask(r.ann_id).astype(np.float32)) for r in recs])[:, None]
    gt = F.interpolate(gt, size=(s, s), mode="nearest")
    guided = m.uses_guidance  # a model without SESM predicts p_w from image and sentence alone
    mode = "prior" if guided else "none"
    with torch.no_grad():
        pw = torch.cat(
            [
                m.predict(b.images[i : i + 50], b.texts[i : i + 50], mode, pri[i : i + 50] if guided else None)
                for i in range(0, len(recs), 50)
            ]
        )[:, None]
    out = {
        "run": a.run,
        "samples": len(recs),
        "prior P†": np.mean([iou(pri[i], gt[i]) for i in range(len(recs))]),
        "weak p_w": np.mean([iou(pw[i], gt[i]) for i in range(len(recs))]),
    }
    for name, cfg in SETTINGS.items():
        fused, w, agree = calibrate(pw, pri, cfg)
        out[f"P̃ {name}"] = np.mean([iou(fused[i], gt[i]) for i in range(len(recs))])
        out[f"mean w, {name}"] = float(w.mean())
    print(
        json.dumps(
            {k: (round(float(v), 4) if not isinstance(v, str) else v) for k, v in out.items()},
            indent=1,
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
