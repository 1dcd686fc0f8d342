"""``l2l pretrain``: the pretraining world's stand-ins (targets: ``l2l.pretrain.targets``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import UsageError


def cmd_pretrain_visual(args: argparse.Namespace) -> int:
    """Train the conv encoder on the pretraining pool and write a model folder (or check one)."""
    from ..config import load_config
    from ..pretrain.visual import VisualPretrainConfig, pretrain_visual, rebuild_check, resolve_visual_path

    if args.check:
        res = rebuild_check(args.check, args.check_steps, show_progress=not args.quiet)
        for step, card, new in res["compared"]:
            print(f"step {step:5d}: card loss {card:.5f}  rebuilt {new:.5f}")
        ok = res["max_rel_diff"] <= args.tolerance
        print(
            f"max relative difference {res['max_rel_diff']:.2e} ({'matches' if ok else 'DIFFERS from'} the card of "
            f"{resolve_visual_path(args.check)}, tolerance {args.tolerance:g})"
        )
        return 0 if ok else 1
    if not args.out:
        raise UsageError("l2l pretrain visual: give --out FOLDER (or --check FOLDER)")
    overrides = [*args.overrides]
    if args.steps is not None:
        overrides.append(f"steps={args.steps}")
    cfg = load_config(VisualPretrainConfig, args.config, overrides)
    out = Path(args.out)
    if (out / "card.json").exists() and not args.force:
        print(f"{out} already holds a pretrained encoder (card.json); --force trains it again")
        return 0
    cmd = (
        "l2l pretrain visual --out FOLDER"
        + (f" --config {args.config}" if args.config else "")
        + "".join(f" {o}" for o in overrides)
    )
    card = pretrain_visual(cfg, out, show_progress=not args.quiet, command=cmd)
    m = card["metrics_eval_pool"]
    print(
        f"pretrained encoder -> {out} ({card['parameters']:,} parameters, {card['wall_seconds']:.0f} s): "
        + ", ".join(f"{k} {v:.3f}" for k, v in m.items())
    )
    return 0


def cmd_pretrain_foundation(args: argparse.Namespace) -> int:
    """Train one foundation stand-in in the pretraining world and write its model folder."""
    from ..config import load_config
    from ..pretrain.targets import TARGETS

    target = TARGETS[args.pretrain_command]
    cfg_cls, pretrain = target.load()
    what = target.what
    overrides = [*args.overrides] + ([f"steps={args.steps}"] if args.steps is not None else [])
    cfg: Any = load_config(cfg_cls, args.config, overrides)
    out = Path(args.out)
    if (out / "card.json").exists() and not args.force:
        print(f"{out} already holds a trained {what} (card.json); --force trains it again")
        return 0
    cmd = f"l2l pretrain {args.pretrain_command} --out FOLDER" + (f" --config {args.config}" if args.config else "")
    card = pretrain(cfg, out, show_progress=not args.quiet, command=cmd + "".join(f" {o}" for o in overrides))
    m = card["metrics_eval_pool"]
    print(
        f"{what} -> {out} ({card['parameters']:,} parameters, {card['wall_seconds']:.0f} s): "
        + ", ".join(f"{k} {v:.3f}" for k, v in m.items())
    )
    return 0


def add_parsers(sub: Any) -> None:
    pre = sub.add_parser("pretrain", help="the pretraining world: stand-in foundation components").add_subparsers(
        dest="pretrain_command", required=True
    )
    p = pre.add_parser("visual", help="train the conv encoder on the pretraining pool (dense labels, no sentences)")
    p.add_argument("--out", help="model folder to write (config.json, model.safetensors, card.json, README.md)")
    p.add_argument("--config", default=None, help="YAML of VisualPretrainConfig fields")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the config's)")
    p.add_argument("--force", action="store_true", help="train again into a folder that has a card")
    p.add_argument(
        "--check",
        metavar="FOLDER",
        help="re-run the first --check-steps steps of FOLDER's card config "
        "and compare the losses with its card (builtin:synthpool-conv is the shipped one)",
    )
    p.add_argument("--check-steps", type=int, default=100, help="steps re-run by --check")
    p.add_argument("--tolerance", type=float, default=1e-3, help="largest relative loss difference accepted")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. pool.size=128 conv_channels=[32,64,128,256]")
    p.set_defaults(func=cmd_pretrain_visual)
    from ..pretrain.targets import TARGETS

    for name, target in TARGETS.items():
        p = pre.add_parser(name, help=f"train the {target.what} on the pretraining pool (docs/foundation.md)")
        p.add_argument("--out", required=True, help="model folder to write (config.json, model.safetensors, card)")
        p.add_argument("--config", default=None, help="YAML of the training config's fields")
        p.add_argument("--steps", type=int, default=None, help="training steps (default: the config's)")
        p.add_argument("--force", action="store_true", help="train again into a folder that has a card")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train_images=2000 model.dim=64")
        p.set_defaults(func=cmd_pretrain_foundation)
