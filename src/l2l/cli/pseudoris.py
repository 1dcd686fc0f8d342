"""``l2l pseudo-ris``: generation, the zero-shot baseline, quality, pictures, the table."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .common import (
    _add_dataset_args,
    _add_table_parser,
    _evaluate_predictor,
    _open_dataset,
    _positive_int,
    _shard,
    seed_int,
)


def cmd_pseudoris_generate(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..pseudoris.config import PseudoRISConfig
    from ..pseudoris.generate import build_dataset, generate, load_models
    from ..utils.devices import best_device

    ds = _open_dataset(args)
    cfg = load_config(PseudoRISConfig, args.config, list(args.overrides))
    labeled: list[int] = []
    if args.setting == "semi":
        from ..data.splits import make_split

        if not args.label_fraction:
            raise UsageError("--setting semi needs --label-fraction (e.g. 1%) and --split-seed")
        labeled = sorted(make_split(ds.name, ds.image_ids("train"), args.label_fraction, args.split_seed).labeled)
    device = best_device(args.device)
    mask_model = None if cfg.masks.source == "gt" or args.masks_from else args.mask_model
    models = load_models(mask_model, args.captioner, args.dual_encoder, device, cfg.masks if mask_model else None)
    where = (
        f"from {args.masks_from or args.records_from}"
        if args.masks_from or args.records_from
        else f"model ({args.mask_model}, selected by {cfg.masks.select})"
        if mask_model
        else "ground truth (an upper bound, not zero-shot)"
    )
    print(
        f"pseudo-ris: {ds.name} -> {args.out}: masks {where}"
        + f", captioner {args.captioner}, dual encoder {args.dual_encoder}; {cfg.candidates_per_mask} candidates "
        f"per mask, {'distinctive' if cfg.captions.distinctive else 'naive'} sampling, filter "
        + (f"{cfg.filter.score} ≥ {cfg.filter.tau}" if cfg.filter.enabled else "off")
    )
    counts = generate(
        ds,
        args.out,
        models,
        cfg,
        max_images=args.max_images,
        shard=args.shard,
        show_progress=not args.quiet,
        masks_from=args.masks_from,
        records_from=args.records_from,
    )
    print("images: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if int(os.environ.get("RANK", "0")) == 0 and (args.shard is None or args.shard[1] == 1):
        meta = build_dataset(ds, args.out, args.setting, labeled)
        st = meta["pseudo"]
        print(
            f"{args.out}: {st['refs']} pseudo refs with {st['sentences']} sentences on {st['images']} images "
            f"({st['masks']} masks, {st['candidates']} distinct candidates; by status {st['status']})"
            + (f"; + ground truth of {len(labeled)} labeled images" if labeled else "")
            + f" — train on it: l2l train --config configs/synthref_supervised.yaml data.root={args.out} "
            "data.label_fraction=100%"
        )
    return 0


def cmd_pseudoris_baseline(args: argparse.Namespace) -> int:
    from ..pseudoris.config import MaskConfig
    from ..pseudoris.generate import load_models
    from ..pseudoris.zero_shot import ZeroShotPredictor
    from ..utils.devices import best_device

    models = load_models(args.mask_model, None, args.dual_encoder, best_device(args.device))
    pred = ZeroShotPredictor(
        models.masks, models.dual, MaskConfig(points_per_side=args.points_per_side), args.alpha, scoring=args.scoring
    )
    what = {
        "method": "zero-shot baseline (mask-model proposals ranked by the dual encoder)",
        "mask_model": args.mask_model,
        "dual_encoder": args.dual_encoder,
        "alpha": args.alpha,
        "scoring": args.scoring,
    }
    _evaluate_predictor(args, pred, what, args.out or f"zero_shot_baseline_{args.split}.json", batch_size=8)
    print(f"  ({pred.no_proposal} samples without a proposal)")
    return 0


def cmd_pseudoris_quality(args: argparse.Namespace) -> int:
    from ..pseudoris.quality import caption_counts, pseudo_label_quality
    from ..utils.io import atomic_write_text

    ds = _open_dataset(args)
    res = pseudo_label_quality(ds, args.folder)
    res["counts"] = caption_counts(args.folder, [r.sentence for r in ds.samples("train")], args.tau)
    text = json.dumps(res, indent=2)
    if args.out:
        atomic_write_text(Path(args.out), text)
    print(text)
    return 0


def cmd_pseudoris_show(args: argparse.Namespace) -> int:
    from ..pseudoris.show import save_show

    print(f"-> {save_show(args.folder, args.out, args.images, args.seed)}")
    return 0


def add_parsers(sub: Any) -> None:
    pris = sub.add_parser(
        "pseudo-ris", help="Pseudo-RIS: pseudo (mask, caption) supervision without labels"
    ).add_subparsers(dest="pseudoris_command", required=True)
    p = pris.add_parser("generate", help="masks → distinctive captions → filter → a REFER-format dataset (resumable)")
    _add_dataset_args(p)
    p.add_argument("--out", required=True, help="folder: records/ (resumable), then instances.json, refs, meta.json")
    p.add_argument("--config", default=None, help="YAML of PseudoRISConfig fields (masks, captions, filter)")
    p.add_argument("--mask-model", default="builtin:synthpool-sam", help="mask model folder (stand-in or SAM2)")
    p.add_argument("--captioner", default="builtin:synthpool-captioner", help="captioner folder (stand-in or BLIP)")
    p.add_argument("--dual-encoder", default="builtin:synthpool-clip", help="dual encoder folder (stand-in or CLIP)")
    p.add_argument(
        "--setting", default="zero-shot", choices=["zero-shot", "semi"], help="zero-shot | semi (+ a label split)"
    )
    p.add_argument("--label-fraction", default=None, help="semi: share of training images with their ground truth")
    p.add_argument("--split-seed", type=int, default=22, help="semi: label split seed (default 22)")
    p.add_argument("--max-images", type=_positive_int, default=None, help="the first N training images only")
    p.add_argument("--masks-from", default=None, help="reuse the masks of another generation folder (ablations)")
    p.add_argument(
        "--records-from",
        default=None,
        help="reuse masks and scored captions of a generation with other filter settings; refilter",
    )
    p.add_argument("--shard", type=_shard, default=None, help="i/n: this process takes every n-th image (or torchrun)")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one) | cpu | cuda | cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "overrides", nargs="*", help="dotted overrides, e.g. filter.enabled=false captions.distinctive=false"
    )
    p.set_defaults(func=cmd_pseudoris_generate)
    p = pris.add_parser("baseline", help="the direct zero-shot baseline: mask proposals ranked by the dual encoder")
    _add_dataset_args(p)
    p.add_argument("--split", default="val", help="split to evaluate (default val)")
    p.add_argument("--mask-model", default="builtin:synthpool-sam", help="mask model folder (stand-in or SAM2)")
    p.add_argument("--dual-encoder", default="builtin:synthpool-clip", help="dual encoder folder (stand-in or CLIP)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the global (context crop) term (default 0.5)")
    p.add_argument(
        "--scoring",
        default="global-local",
        choices=["global-local", "regions"],
        help="global-local (the paper's) | regions: each proposal's box in its scene (a dual encoder "
        "trained with regions, e.g. builtin:synthpool-clip-regions)",
    )
    p.add_argument("--points-per-side", type=int, default=12, help="mask model's automatic-mode grid (default 12)")
    p.add_argument("--size", type=int, default=128, help="resolution the images are read at (default 128)")
    p.add_argument("--max-samples", type=_positive_int, default=None, help="the first N samples only")
    p.add_argument("--out", default=None, help="result JSON (default zero_shot_baseline_<split>.json)")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one) | cpu | cuda | cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_pseudoris_baseline)
    p = pris.add_parser("quality", help="pseudo-label quality against the source's ground truth (analysis only)")
    p.add_argument("folder", help="a pseudo-ris generate --out folder")
    _add_dataset_args(p)
    p.add_argument("--out", default=None, help="JSON to write")
    p.add_argument(
        "--tau",
        type=float,
        default=1.3,
        help="the DoS threshold whose kept count the printed UoS / CoS thresholds match (default 1.3)",
    )
    p.set_defaults(func=cmd_pseudoris_quality)
    p = pris.add_parser("show", help="PNG: masks with their kept and rejected captions and scores")
    p.add_argument("folder", help="a pseudo-ris generate --out folder")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--num-images", dest="images", type=_positive_int, default=4, help="images shown (default 4)")
    p.add_argument("--images", dest="images", type=_positive_int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=seed_int, default=0, help="which images (seeded choice)")
    p.set_defaults(func=cmd_pseudoris_show)
    _add_table_parser(
        pris,
        "pseudo-ris",
        "L2L's Table 2 layout and Pseudo-RIS's Tables 5 / 6",
        "docs/results/pseudo_ris",
        "scripts/pseudoris_table.sh",
    )
