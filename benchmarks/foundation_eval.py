"""The foundation stand-ins measured against issue 13's targets, on a SynthRef dataset.

    python benchmarks/foundation_eval.py --data runs/data/synthref --out docs/results/foundation/metrics.json

Measures (each on the named split of the dataset; the stand-ins never saw a SynthRef image):
* mask model: mean IoU with a perfect box prompt (every referred object of the split); automatic-mode
  recall of all objects of ``--auto-images`` images at IoU 0.5;
* dual encoder: text → crop top-1 among each val image's objects, with SynthRef's own sentences (and,
  for an encoder trained with regions, text → box-in-its-scene top-1: ``encode_regions``);
* learned prior (grounder → box → mask model): a prior store of every train sample (``--priors``,
  resumable), its mean IoU by expression kind (``l2l priors eval``), and samples/s of generation;
* training wall time of each stand-in (from its card).
Folders default to the shipped ``builtin:`` ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="runs/data/synthref")
    ap.add_argument("--mask-model", default="builtin:synthpool-sam")
    ap.add_argument("--grounder", default="builtin:synthpool-grounder")
    ap.add_argument("--dual-encoder", default="builtin:synthpool-clip")
    ap.add_argument("--priors", default="runs/data/synthref_priors_standin", help="prior store of every train sample")
    ap.add_argument("--auto-images", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip", action="append", default=[], help="mask | clip | prior (repeatable)")
    ap.add_argument("--out", default=None, help="JSON to write")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from l2l.data.refer import ReferDataset
    from l2l.utils.folders import resolve_model_path

    ds = ReferDataset.synthref(args.data)
    res: dict = {"data": args.data, "threads": args.threads, "date": time.strftime("%Y-%m-%d"), "train_minutes": {}}
    for name, folder in (
        ("mask_model", args.mask_model),
        ("grounder", args.grounder),
        ("dual_encoder", args.dual_encoder),
    ):
        card = resolve_model_path(folder) / "card.json"
        if card.exists():
            res["train_minutes"][name] = round(json.loads(card.read_text())["wall_seconds"] / 60, 2)
    if "mask" not in args.skip:
        from l2l.foundation.mask_model import MaskPredictor
        from l2l.pretrain.mask_model import synthref_auto_recall, synthref_box_iou

        pred = MaskPredictor.from_pretrained(args.mask_model)
        t = time.perf_counter()
        res["mask_box_iou_train"] = round(synthref_box_iou(pred, ds, "train"), 4)
        res["mask_box_seconds"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        res["mask_auto_recall50_train"] = round(synthref_auto_recall(pred, ds, "train", args.auto_images), 4)
        res["mask_auto_seconds_per_image"] = round((time.perf_counter() - t) / args.auto_images, 3)
        print({k: v for k, v in res.items() if k.startswith("mask")}, flush=True)
    if "clip" not in args.skip:
        from l2l.foundation.dual_encoder import DualEncoder
        from l2l.pretrain.dual_encoder import synthref_retrieval

        enc = DualEncoder.from_pretrained(args.dual_encoder)
        res["dual_encoder_val"] = synthref_retrieval(enc, ds, "val")
        print(res["dual_encoder_val"], flush=True)
        if enc.net.cfg.regions:  # each box in its scene (l2l.foundation.region_context)
            res["dual_encoder_val_regions"] = synthref_retrieval(enc, ds, "val", view="regions")
            print(res["dual_encoder_val_regions"], flush=True)
    if "prior" not in args.skip:
        from l2l.priors.base import PriorInput
        from l2l.priors.evaluate import evaluate_priors
        from l2l.priors.standin import build
        from l2l.priors.store import PriorStore

        prov = build(args.grounder, args.mask_model)
        ids = [r.sample_id for r in ds.samples("train")]
        ids.sort(key=lambda s: ds.sample(s).image_id)  # sentences of one image together: one embedding

        def load(sid: int) -> PriorInput:
            r = ds.sample(sid)
            return PriorInput(sid, ds.load_image(r.image_id), r.sentence)

        store = PriorStore(args.priors)
        t = time.perf_counter()
        gen = store.generate(prov, ids, load, batch_size=32, dataset={"name": ds.name, "fingerprint": ds.fingerprint()})
        dt = time.perf_counter() - t
        if gen["generated"]:
            res["prior_samples_per_s"] = round(gen["generated"] / dt, 1)
        ev = evaluate_priors(store, ds, ids)
        res["prior_train"] = {k: v for k, v in ev.items() if k != "provider"}
        print(res.get("prior_samples_per_s"), ev["mean_IoU"], flush=True)
    print(json.dumps(res, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
