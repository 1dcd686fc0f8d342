"""The ``l2l`` command line.

    l2l data synth   --out DIR [--num-images N --seed S --size PX ...]   make SynthRef
    l2l data split   --data DIR --fraction 5% --seed 22              image-level label split
    l2l data stats   DIR                                             counts, lengths, objects
    l2l data preview DIR --out PNG                                   what the loader produces
    l2l train        --config FILE [key.path=value ...]              train (any method), resumable
    l2l eval         --ckpt RUN --split val                          metrics JSON next to the checkpoint
    l2l predict      --ckpt RUN --image IMG --text "..." --out PNG   a mask (and an overlay)
    l2l serve        --ckpt RUN [--ckpt RUN2] [--port 7860]          a web page to try the models (Gradio)
    l2l label        init | serve | rank | train | status PROJECT        an active labeling loop (docs/labeling.md)
    l2l demo         [--workdir runs/demo]                           the SynthRef pipeline, end to end
    l2l experiment run GRID.yaml [--dry-run --jobs N --shard i/n]    a grid of train + eval runs, resumable
    l2l report       GRID_DIR [--out DIR]                            tables, figures, HTML of a grid

Errors in user input (missing files, bad values) print one clear line and exit with 2.
"""

from __future__ import annotations

import argparse
import errno
import sys
from typing import Sequence

from .. import __version__
from . import data, demo, experiment, label, ppt, pretrain, priors, pseudoris, runs, serve
from .common import _positive_int


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="l2l", description="Label-efficient referring expression segmentation.")
    ap.add_argument("--version", action="version", version=f"l2l {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    data.add_parsers(sub)
    priors.add_parsers(sub)
    runs.add_parsers(sub)
    pseudoris.add_parsers(sub)
    ppt.add_parsers(sub)
    label.add_parsers(sub)
    serve.add_parsers(sub)
    runs.add_plot_parser(sub)
    experiment.add_parsers(sub)
    pretrain.add_parsers(sub)
    demo.add_parsers(sub)
    _add_threads(ap)
    ap.add_argument("--threads", dest="threads_global", type=_positive_int, default=None, help=argparse.SUPPRESS)
    return ap


def _add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads N`` on every command (utils/threads.py: the thread policy)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        parser.add_argument(
            "--threads",
            type=_positive_int,
            default=None,
            help="torch threads of this process (default: $L2L_THREADS, else $OMP_NUM_THREADS, else 1; "
            "use the cores through processes: --jobs, --shard, loader workers)",
        )
        return
    for child in dict.fromkeys(subs[0].choices.values()):
        _add_threads(child)


USER_OS_ERRORS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ENAMETOOLONG,
        errno.ENOENT,
        errno.EEXIST,
    }
)


def main(argv: Sequence[str] | None = None) -> int:
    from ..errors import L2LError
    from ..utils import threads

    argv = list(sys.argv[1:] if argv is None else argv)
    from ..utils.lock import die_with_parent

    die_with_parent()  # a child of the grid runner dies with it (nothing otherwise)
    with threads.restored():  # a call from Python (tests, notebooks) leaves the caller's settings as they were
        try:  # before torch is imported: the OpenMP runtime reads its settings when it starts
            threads.prepare_environment(threads.threads_from_argv(argv))
        except L2LError as e:
            print(f"l2l: error: {e}", file=sys.stderr)
            return 2
        return _run(build_parser().parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    from ..errors import L2LError
    from ..utils import threads
    from ..utils.progress import quiet_libraries

    quiet_libraries()
    try:
        args.threads = getattr(args, "threads", None) or args.threads_global  # after the command or before it
        threads.apply(args.threads)
        return int(args.func(args) or 0)
    except L2LError as e:  # the user's to fix; anything else is a bug and keeps its traceback
        print(f"l2l: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in USER_OS_ERRORS:
            raise
        # a read-only, full, missing or misnamed output place: the user's to fix, in one line
        where = f"{e.filename}: " if e.filename else ""
        print(
            f"l2l: error: {where}{e.strerror or e} (finished work is kept; fix this and run the same command again)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("l2l: interrupted (finished work is kept; run the same command again to continue)", file=sys.stderr)
        return 130
