"""``l2l experiment run`` and ``l2l report``: grids of runs and their reports."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import UsageError
from .common import _shard, seed_int


def cmd_experiment_run(args: argparse.Namespace) -> int:
    from ..experiment.grid import Grid
    from ..experiment.runner import Runner, check_paths, describe

    grid = Grid(args.grid, args.out, args.set)
    cells = grid.select(args.only, args.shard)
    if not cells:
        raise UsageError(f"{args.grid}: no cell matches --only {args.only} in shard {args.shard[0]}/{args.shard[1]}")
    print(
        f"grid {grid.name}: {len(grid.cells)} runs in {len(grid.sections)} sections -> {grid.out}"
        + (f"; this worker: {len(cells)}" if len(cells) != len(grid.cells) else "")
    )
    if args.dry_run:
        print(describe(cells))
        if args.commands:
            from shlex import join

            for c in cells:
                print(f"# {c.name}\nl2l {join(c.train_argv())}")
                for e in c.evals[1:]:
                    print(f"l2l {join(e.argv(c.run_dir))}")
        warnings = check_paths(grid, cells)
        for w in warnings:
            print(f"warning: {w}")
        print(
            f"every config resolves ({len(cells)} runs){'; ' + str(len(warnings)) + ' warning(s)' if warnings else ''}"
        )
        return 0
    runner = Runner(grid, args.launcher, args.jobs, devices=args.devices)
    if not args.no_prepare:
        runner.prepare(cells)
    try:
        results = runner.run(cells)
    except KeyboardInterrupt:
        print(f"interrupted: run the same command again to continue ({grid.out})", file=sys.stderr)
        return 130
    counts: dict[str, int] = {}
    for r in results:
        counts[r.after] = counts.get(r.after, 0) + 1
    print(
        f"grid {grid.name}: "
        + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        + f" -> {grid.out}; report: l2l report {grid.out}"
    )
    bad = [r for r in results if r.after in ("failed", "conflict", "interrupted")]
    for r in bad + [r for r in results if r.after == "locked"]:
        print(f"{r.after}: {r.name}: {r.message}", file=sys.stderr)
    # a lock file nobody holds (empty, unreadable) needs the user: not a success
    stuck = [r for r in results if r.after == "locked" and "empty or unreadable" in r.message]
    return 1 if bad or stuck else 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..report.build import build_report
    from ..utils.devices import best_device

    out = build_report(
        args.grid_dir, args.out, qualitative=args.qualitative, seed=args.seed, device=best_device(args.device)
    )
    print(f"report -> {out}/report.md, {out}/report.html")
    return 0


def add_parsers(sub: Any) -> None:
    exp = sub.add_parser("experiment", help="grids of runs (dataset × budget × method × seed)").add_subparsers(
        dest="experiment_command", required=True
    )
    p = exp.add_parser("run", help="train and evaluate every cell of a grid (skips finished cells, resumes the rest)")
    p.add_argument("grid", help="grid YAML (configs/*_table1.yaml)")
    p.add_argument("--out", default=None, help="grid folder (default: the grid's `out`)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their state, check every config resolves")
    p.add_argument("--commands", action="store_true", help="with --dry-run: print each run's l2l commands")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time on this machine")
    p.add_argument("--shard", type=_shard, default=(0, 1), help="i/n: this worker takes every n-th run from the i-th")
    p.add_argument("--only", nargs="*", default=[], help="run-name patterns (fnmatch), e.g. 'refcoco/l2l_*'")
    p.add_argument("--launcher", default=None, help='training launcher, e.g. "torchrun --nproc_per_node 4"')
    p.add_argument(
        "--devices",
        nargs="*",
        default=[],
        help="GPU groups, one per concurrent run: '0 1 2 3' (4 runs, 1 GPU each) or '0,1 2,3'",
    )
    p.add_argument("--set", nargs="*", default=[], help="overrides for every run, e.g. data.workers=8")
    p.add_argument("--no-prepare", action="store_true", help="skip the datasets' prepare commands")
    p.set_defaults(func=cmd_experiment_run)

    p = sub.add_parser("report", help="Markdown + PNG + HTML report of a grid folder")
    p.add_argument("grid_dir", help="folder written by `l2l experiment run` (holds grid.json)")
    p.add_argument("--out", default=None, help="report folder (default GRID_DIR/report)")
    p.add_argument("--qualitative", type=int, default=6, help="rows of the qualitative grid (0 = none)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the qualitative sample choice")
    p.add_argument("--device", default="auto", help="device for the qualitative predictions (auto: a GPU if any)")
    p.set_defaults(func=cmd_report)
