"""Where PPT loses (docs/results.md, "PPT on SynthRef"): per evaluation sample, the IoU of the mask
PPT answers with (its most confident query), the best IoU among all K queries' masks (an oracle
ScoreHead) and the share of samples where the answering query is that best one. A large gap
between the two says the referent *selection* is the bottleneck; a low oracle says the points /
the mask model are. ``prompt_ceiling_mIoU``: the frozen mask model prompted with the pseudo-label
recipe applied to the *ground truth* (M points drawn in its box, labelled inside / outside) — what
perfect points of PPT's kind can get from this mask model.

    python benchmarks/ppt_diagnose.py --data runs/data/synthref --run runs/ppt/full_s0 --split val \
        --out docs/results/ppt/diagnose_full_s0_val.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from l2l.data.refer import ReferDataset
from l2l.ppt.data import square_mask, to_square
from l2l.ppt.train import load_run, sample_points


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--max-samples", type=int, default=None)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    ds = ReferDataset.open(a.data)
    model = load_run(a.run)
    s = model.image_size
    recs = ds.samples(a.split)[: a.max_samples]
    chosen, best, hit, ceiling, by_kind = [], [], [], [], {}
    rng = np.random.default_rng(0)
    for i in range(0, len(recs), 16):
        batch = recs[i : i + 16]
        x = torch.cat([to_square(ds.load_image(r.image_id), s)[0] for r in batch])
        out, state = model(x, [r.sentence for r in batch])
        k_n = out.scores.shape[1]
        idx = torch.arange(len(batch)).repeat_interleave(k_n)
        q = torch.arange(k_n).repeat(len(batch))
        masks = (model.decode(state, out, idx, q) > 0).view(len(batch), k_n, s, s)
        gts = [square_mask(ds.mask(r.ann_id).astype(bool), s) > 0.5 for r in batch]
        drawn = [sample_points(g.numpy(), out.points.shape[2], rng) for g in gts]
        pts = torch.from_numpy(np.stack([p for p, _ in drawn]))
        lab = torch.from_numpy(np.stack([la for _, la in drawn])).long()
        ceil = model.decoder.decode(state, torch.arange(len(batch)), pts, lab) > 0
        for b, r in enumerate(batch):
            gt = gts[b]
            ceiling.append(float((ceil[b] & gt).sum() / (ceil[b] | gt).sum().clamp(min=1)))
            inter = (masks[b] & gt).flatten(1).sum(1).float()
            union = (masks[b] | gt).flatten(1).sum(1).float().clamp(min=1)
            iou = inter / union
            k = int(out.scores[b].argmax())
            chosen.append(float(iou[k]))
            best.append(float(iou.max()))
            hit.append(float(iou[k] == iou.max()))
            by_kind.setdefault(r.kind, []).append((chosen[-1], best[-1]))
    res = {
        "samples": len(chosen),
        "chosen_mIoU": float(np.mean(chosen)),
        "oracle_query_mIoU": float(np.mean(best)),
        "answer_is_best_query": float(np.mean(hit)),
        "queries": k_n,
        "prompt_ceiling_mIoU": float(np.mean(ceiling)),
        "by_kind": {
            k: {
                "chosen_mIoU": float(np.mean([c for c, _ in v])),
                "oracle_query_mIoU": float(np.mean([o for _, o in v])),
            }
            for k, v in sorted(by_kind.items())
        },
        "run": a.run,
        "split": a.split,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
