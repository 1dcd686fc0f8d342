"""``l2l ppt``: pseudo-labels, the curriculum, evaluation, baselines, quality, pictures, the table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import (
    _add_dataset_args,
    _add_run_arg,
    _add_table_parser,
    _device,
    _evaluate_predictor,
    _open_dataset,
    _positive_int,
    seed_int,
)


def cmd_ppt_prepare(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..ppt.config import PPTConfig
    from ..ppt.data import prepare
    from ..utils.devices import best_device

    ds = _open_dataset(args)
    cfg = load_config(PPTConfig, args.config, list(args.overrides))
    res = prepare(
        ds,
        args.out,
        cfg,
        limit=args.max_images,
        device=best_device(args.device),
        masks_from=args.masks_from,
        show_progress=not args.quiet,
    )
    print(
        f"ppt pseudo-labels in {args.out}: D_sem {res['d_sem']} (mean IoU with the pool's instance mask "
        f"{res['d_sem_pool_iou']}), {res['images']} images, {res['sentences']} sentences: H_sem {res['h_sem']}, "
        f"H_ref {res['h_ref']}, no candidate {res['no_candidate']}"
    )
    return 0


def cmd_ppt_train(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..ppt.config import PPTConfig
    from ..ppt.train import train
    from ..utils.devices import best_device

    ds = _open_dataset(args)
    cfg = load_config(PPTConfig, args.config, list(args.overrides))
    res = train(cfg, args.labels, ds, args.out, best_device(args.device), args.max_steps, not args.quiet)
    print(
        f"ppt: {res['steps']} / {res['total_steps']} steps in {args.out}"
        + (" (done)" if res["done"] else " (stopped early: run again to resume)")
        + f"; sources {res['sources']}"
    )
    return 0


def cmd_ppt_eval(args: argparse.Namespace) -> int:
    from ..ppt.train import load_run

    _evaluate_predictor(args, load_run(args.run, _device(args)), {"method": "ppt", "run": str(args.run)}, args.out)
    return 0


def cmd_ppt_baseline(args: argparse.Namespace) -> int:
    if args.kind == "naive":
        from ..ppt.baselines import NaivePredictor
        from ..ppt.encoders import FrozenDualEncoder, FrozenMaskDecoder

        dev = _device(args)
        pred = NaivePredictor(
            FrozenDualEncoder.load(args.dual_encoder, dev),
            FrozenMaskDecoder.load(args.mask_model, args.size, dev),
            args.points,
        )
        what = {"method": f"naive dual encoder + mask model ({args.points} peak point(s))"}
    else:
        from ..pseudoris.config import MaskConfig
        from ..pseudoris.generate import load_models
        from ..pseudoris.zero_shot import ZeroShotPredictor

        models = load_models(args.mask_model, None, args.dual_encoder, _device(args))
        pred = ZeroShotPredictor(models.masks, models.dual, MaskConfig())  # type: ignore[assignment]
        what = {"method": "mask-model proposals ranked by the dual encoder"}
    what.update(kind=args.kind, dual_encoder=args.dual_encoder, mask_model=args.mask_model)
    _evaluate_predictor(args, pred, what, args.out)
    return 0


def cmd_ppt_quality(args: argparse.Namespace) -> int:
    from ..ppt.quality import label_quality
    from ..utils.io import atomic_write_text

    text = json.dumps(label_quality(_open_dataset(args), args.labels, args.run), indent=2)
    if args.out:
        atomic_write_text(Path(args.out), text)
    print(text)
    return 0


def cmd_ppt_show(args: argparse.Namespace) -> int:
    from ..ppt.show import save_show
    from ..ppt.train import load_run

    out = save_show(
        load_run(args.run, _device(args)), _open_dataset(args), args.split, args.out, args.samples, args.seed
    )
    print(f"wrote {out}")
    return 0


def add_parsers(sub: Any) -> None:
    ppt = sub.add_parser(
        "ppt", help="PPT: weakly supervised RES (sentences, no masks) by curriculum point prompting"
    ).add_subparsers(dest="ppt_command", required=True)
    p = ppt.add_parser("prepare", help="pseudo-labels: D_sem (object-centric) and H candidates per noun phrase")
    _add_dataset_args(p)
    p.add_argument("--out", required=True, help="folder for the pseudo-labels (resumable)")
    p.add_argument("--config", default=None, help="YAML of PPTConfig fields")
    p.add_argument("--max-images", type=_positive_int, default=None, help="the first N training images only")
    p.add_argument("--masks-from", default=None, help="reuse the proposals of a pseudo-ris generation folder")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one) | cpu | cuda | cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. objects.images=600")
    p.set_defaults(func=cmd_ppt_prepare)
    p = ppt.add_parser("train", help="train the point generator through the curriculum (resumable)")
    _add_dataset_args(p)
    p.add_argument("--labels", required=True, help="a `l2l ppt prepare` folder")
    p.add_argument("--out", required=True, help="run folder (checkpoints/, log.jsonl)")
    p.add_argument("--config", default=None, help="YAML of PPTConfig fields (e.g. configs/synthref_ppt.yaml)")
    p.add_argument("--max-steps", type=_positive_int, default=None, help="stop after N steps (resume later)")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one) | cpu | cuda | cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. curriculum.enabled=false seed=1")
    p.set_defaults(func=cmd_ppt_train)
    for name, helptext in (
        ("eval", "evaluate a PPT run (mIoU, oIoU, P@0.3/0.5/0.7)"),
        ("baseline", "weakly supervised baselines: naive prompting, or ranked proposals"),
    ):
        p = ppt.add_parser(name, help=helptext)
        _add_dataset_args(p)
        if name == "eval":
            _add_run_arg(p, "--run", "--ckpt", "a `l2l ppt train` run folder")
        else:
            p.add_argument("--kind", default="naive", choices=["naive", "proposals"], help="naive | proposals")
            p.add_argument("--points", type=_positive_int, default=1, help="naive: positive points at the peaks")
            p.add_argument("--mask-model", default="builtin:synthpool-sam", help="mask model folder (stand-in or SAM2)")
            p.add_argument("--dual-encoder", default="builtin:synthpool-clip", help="dual encoder (stand-in or CLIP)")
        p.add_argument("--split", default="val", help="split to evaluate (default val)")
        p.add_argument("--size", type=int, default=128, help="resolution the images are read at (default 128)")
        p.add_argument("--max-samples", type=_positive_int, default=None, help="the first N samples only")
        p.add_argument("--out", required=True, help="result JSON")
        p.add_argument("--device", default="auto", help="auto (a GPU when there is one) | cpu | cuda | cuda:N")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(func=cmd_ppt_eval if name == "eval" else cmd_ppt_baseline)

    p = ppt.add_parser("quality", help="pseudo-label quality against the ground truth (analysis only)")
    _add_dataset_args(p)
    p.add_argument("--labels", required=True, help="a `l2l ppt prepare` folder")
    p.add_argument("--run", default=None, help="a run folder: also score its H_ref selection")
    p.add_argument("--out", default=None, help="JSON to write")
    p.set_defaults(func=cmd_ppt_quality)
    p = ppt.add_parser("show", help="PNG: sentences, the chosen query's points and mask, the ground truth")
    _add_dataset_args(p)
    _add_run_arg(p, "--run", "--ckpt", "a `l2l ppt train` run folder")
    p.add_argument("--split", default="val", help="split (default val)")
    p.add_argument("--samples", type=_positive_int, default=6, help="samples shown (default 6)")
    p.add_argument("--seed", type=seed_int, default=0, help="which samples (seeded choice)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one) | cpu | cuda | cuda:N")
    p.set_defaults(func=cmd_ppt_show)
    _add_table_parser(ppt, "ppt", "PPT, Table 3's rows and the baselines", "docs/results/ppt", "scripts/ppt_table3.sh")
