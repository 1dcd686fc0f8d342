"""Pseudo-label quality of the Pseudo-RIS variants (the paper's Table 5 and 6 axes), on SynthRef.

    python benchmarks/pseudo_ris_quality.py --data runs/data/synthref --images 100 \
        --out docs/results/pseudo_ris/quality.json

For each variant — distinctive sampling (the default), naive sampling (``captions.distinctive=false``),
ground-truth masks (``masks.source=gt``, Table 6's upper bound), and distinctive sampling at other
temperatures of Eq. 2 (``--temperatures``) — generates pseudo-labels for
the first ``--images`` training images (resumable, under ``--work``) and measures them against the
ground truth with :func:`l2l.pseudoris.quality.pseudo_label_quality`: the share of captions that
pick out their mask, among the kept captions (with the filter, DoS ≥ τ) and among all candidates
(without the filter). Also the wall time per image of each generation. A measurement of the
pseudo-labels, not of a model trained on them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

VARIANTS = {
    "distinctive": {},
    "naive": {"captions": {"distinctive": False}},
    "gt_masks": {"masks": {"source": "gt"}},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="runs/data/synthref")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--work", default="runs/pseudo_ris/quality")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--temperatures",
        type=float,
        nargs="*",
        default=[],
        help="also distinctive sampling at these temperatures of Eq. 2 (default 0.1 is the 'distinctive' row)",
    )
    ap.add_argument("--only-extra", action="store_true", help="run only the --temperatures variants")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    variants = {} if args.only_extra else dict(VARIANTS)
    variants.update({f"distinctive_T{t:g}": {"captions": {"temperature": t}} for t in args.temperatures})
    torch.set_num_threads(args.threads)

    from l2l.data.refer import ReferDataset
    from l2l.pseudoris.config import PseudoRISConfig
    from l2l.pseudoris.generate import generate, load_models
    from l2l.pseudoris.quality import pseudo_label_quality

    ds = ReferDataset.open(args.data)
    models = load_models("builtin:synthpool-sam", "builtin:synthpool-captioner", "builtin:synthpool-clip")
    res: dict = {"data": args.data, "images": args.images, "date": time.strftime("%Y-%m-%d"), "variants": {}}
    for name, over in variants.items():
        cfg = PseudoRISConfig(**over)
        t = time.perf_counter()
        counts = generate(ds, Path(args.work) / name, models, cfg, max_images=args.images, show_progress=False)
        wall = time.perf_counter() - t
        q = pseudo_label_quality(ds, Path(args.work) / name)
        k, r = q["kept"], q["rejected"]
        n = k["captions"] + r["captions"]
        every = {
            key: round((k[key] * k["captions"] + r[key] * r["captions"]) / max(n, 1), 4)
            for key in ("picks_out", "correct", "contradictory", "bad_mask")
        }
        res["variants"][name] = {
            "counts": counts,
            "seconds_per_image": round(wall / max(1, args.images - counts.get("skipped", 0)), 3)
            if counts.get("skipped", 0) < args.images
            else None,
            "quality": q,
            "all_candidates": {"captions": n, **every},
        }
        print(
            f"{name:12s} masks matching an object {q['masks_matching_an_object']:.1%}; picks out its mask: "
            f"kept {k['picks_out']:.1%} of {k['captions']}, all {every['picks_out']:.1%} of {n}"
        )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        if Path(args.out).exists():  # add to the variants measured before
            old = json.loads(Path(args.out).read_text())
            res["variants"] = {**old.get("variants", {}), **res["variants"]}
        Path(args.out).write_text(json.dumps(res, indent=2))
        print(f"-> {args.out}")


if __name__ == "__main__":
    main()
