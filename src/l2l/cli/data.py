"""``l2l data``: SynthRef, label splits, statistics, previews, REFER export."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from .common import _add_dataset_args, _fraction, _old_split_spellings, _open_dataset, _range, seed_int


def _split_images(text: str) -> dict[str, int]:
    """``val=200,testA=100,testB=100`` → {"val": 200, "testA": 100, "testB": 100}."""
    out = {}
    for part in text.split(","):
        name, _, n = part.partition("=")
        try:
            out[name.strip()] = int(n)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--split-images: {part!r} is not NAME=COUNT") from None
    return out


# ----------------------------------------------------------------------------- commands
def cmd_synth(args: argparse.Namespace) -> int:
    from ..data.synthref import SynthRefConfig, generate
    from ..data.synthref_scene import SceneProfile

    cfg = SynthRefConfig(
        images=args.images,
        image_size=args.size,
        seed=args.seed,
        easy=SceneProfile(args.objects[0], args.objects[1], args.distractor_prob),
        hard=SceneProfile(args.hard_objects[0], args.hard_objects[1], args.hard_distractor_prob),
        shapes=tuple(args.shapes.split(",")) if args.shapes else SynthRefConfig().shapes,
        colors=tuple(args.colors.split(",")) if args.colors else SynthRefConfig().colors,
        split_images=args.split_images,
    )
    t = time.perf_counter()
    meta = generate(cfg, args.out, workers=args.workers, force=args.force)
    dt = time.perf_counter() - t
    c = meta["counts"]
    print(
        f"SynthRef in {args.out}: "
        + ", ".join(f"{s} {v['images']} images / {v['sentences']} sentences" for s, v in c.items())
        + f" ({dt:.1f} s)"
    )
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from ..data.splits import make_split, split_filename

    ds = _open_dataset(args)
    split = make_split(ds.name, ds.image_ids(args.train_split), args.fraction, args.seed)
    out = Path(args.out) if args.out else Path(args.data) / "splits" / split_filename(split.fraction, split.seed)
    digest = split.save(out)
    print(
        f"{ds.name}: {len(split.labeled)} labeled / {len(split.unlabeled)} unlabeled {args.train_split} images "
        f"({split.fraction:.4%}, seed {split.seed}) -> {out} (sha256 {digest[:12]})"
    )
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from ..data.stats import dataset_stats, format_stats

    stats = dataset_stats(_open_dataset(args))
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from ..data.preview import save_preview

    out = save_preview(_open_dataset(args), args.out, args.split, args.n, args.size, args.seed)
    print(f"preview written to {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..data.export import export_refer

    ds = _open_dataset(args)
    r = export_refer(ds, args.out, args.name, args.as_split_by)
    print(
        f"{ds.name} -> {r['folder']}: {r['refs']} refs, {r['sentences']} sentences, {r['images']} images "
        f"(REFER(data_root={args.out!r}, dataset={args.name!r}, splitBy={args.as_split_by!r}))"
    )
    return 0


def add_parsers(sub: Any) -> None:
    data = sub.add_parser("data", help="datasets: SynthRef, RefCOCO/+/g, label splits").add_subparsers(
        dest="data_command", required=True
    )
    p = data.add_parser("synth", help="generate SynthRef")
    p.add_argument("--out", required=True, help="dataset folder to write (REFER layout)")
    p.add_argument("--num-images", dest="images", type=int, default=2000, help="number of images (default 2000)")
    p.add_argument("--images", dest="images", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument(
        "--seed", type=seed_int, default=0, help="generator seed: the same seed gives the same dataset, byte for byte"
    )
    p.add_argument("--size", type=int, default=128, help="image side in pixels")
    p.add_argument("--objects", type=_range, default=(2, 5), help="objects per easy scene (train/val/testA)")
    p.add_argument("--hard-objects", type=_range, default=(5, 8), help="objects per hard scene (train/val/testB)")
    p.add_argument("--distractor-prob", type=float, default=0.35, help="look-alike probability, easy scenes")
    p.add_argument("--hard-distractor-prob", type=float, default=0.8, help="look-alike probability, hard scenes")
    p.add_argument("--shapes", default=None, help="comma-separated subset of the shape vocabulary")
    p.add_argument("--colors", default=None, help="comma-separated subset of the colour vocabulary")
    p.add_argument(
        "--split-images",
        type=_split_images,
        default=None,
        help="fixed image counts of the evaluation splits, e.g. val=200,testA=100,testB=100 (train: the rest; "
        "default: 80 / 10 / 5 / 5 %% of --num-images)",
    )
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--force", action="store_true", help="overwrite a dataset made with another config")
    p.set_defaults(func=cmd_synth)

    p = data.add_parser("split", help="image-level labeled/unlabeled split of the training images")
    _add_dataset_args(p)
    p.add_argument(
        "--label-fraction",
        dest="fraction",
        type=_fraction,
        default="5%",
        help="0%% | 0.1%% | 1%% | 5%% | 10%% | any fraction such as 0.02",
    )
    p.add_argument(
        "--split-seed",
        dest="seed",
        type=int,
        default=22,
        help="seed of the hash ranking that picks the labeled images (default 22, the paper's)",
    )
    _old_split_spellings(p)
    p.add_argument("--train-split", default="train", help="split whose images are partitioned (default train)")
    p.add_argument("--out", default=None, help="split file (default: DATA/splits/label_split_<pct>pct_seed<S>.json)")
    p.set_defaults(func=cmd_split)

    p = data.add_parser("stats", help="counts per split, expression lengths, objects per image")
    _add_dataset_args(p, positional=True)
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.set_defaults(func=cmd_stats)

    p = data.add_parser("preview", help="PNG of samples as the loader produces them")
    _add_dataset_args(p, positional=True)
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--split", default="train", help="split to sample from")
    p.add_argument("--n", type=int, default=6, help="number of samples")
    p.add_argument("--size", type=int, default=128, help="training resolution of the shown views")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the sample choice and augmentations")
    p.set_defaults(func=cmd_preview)

    p = data.add_parser("export", help="write a dataset in the REFER layout (refs(<split_by>).p) for the REFER API")
    _add_dataset_args(p, positional=True)
    p.add_argument("--format", default="refer", choices=["refer"], help="refer: REFER's data_root layout")
    p.add_argument("--out", required=True, help="REFER data_root to write")
    p.add_argument(
        "--name", default="refcoco", help="dataset name in the layout: refcoco (default), refcoco+, refcocog"
    )
    p.add_argument("--as-split-by", dest="as_split_by", default="unc", help="the refs file's split name (default unc)")
    p.set_defaults(func=cmd_export)
