"""What the command groups share: argument types, dataset and run options, examples in the help, the evaluator of a predictor, result tables."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..utils.run_folder import RunFolder


def _fraction(text: str) -> str:
    """argparse type of --fraction: checked now, so that the error names the option."""
    from ..data.splits import parse_fraction

    try:
        parse_fraction(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {v}")
    return v


def _range(text: str) -> tuple[int, int]:
    try:
        a, _, b = text.partition("-")
        lo, hi = int(a), int(b or a)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a range like 2-5, got {text!r}") from None
    if lo > hi:
        raise argparse.ArgumentTypeError(f"empty range {text!r}")
    return lo, hi


def _open_dataset(args: argparse.Namespace):
    from ..data.refer import ReferDataset

    if getattr(args, "data_pos", None) is not None:  # `l2l data stats DIR` and `--data DIR` are the same
        if args.data is not None and args.data != args.data_pos:
            raise UsageError(f"two datasets given: {args.data_pos} and --data {args.data}")
        args.data = args.data_pos
    if not getattr(args, "data", None):
        raise UsageError("give the dataset: --data DIR (SynthRef folder, or the REFER data root with --dataset)")
    return ReferDataset.open(
        args.data, getattr(args, "dataset", None), getattr(args, "split_by", None), getattr(args, "image_dir", None)
    )


def _add_run_arg(p: argparse.ArgumentParser, primary: str, alias: str, help_text: str) -> None:
    """The trained run, named ``primary`` (``--ckpt`` for segmenters, ``--run`` for PPT runs) with the
    other spelling read as well (hidden): one concept, either name works on every command."""
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument(primary, dest=primary.lstrip("-"), help=help_text)
    g.add_argument(alias, dest=primary.lstrip("-"), help=argparse.SUPPRESS)


def _old_split_spellings(p: argparse.ArgumentParser) -> None:
    """``--fraction`` / ``--seed``: the earlier names of ``--label-fraction`` / ``--split-seed``, still read."""
    p.add_argument("--fraction", dest="fraction", type=_fraction, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--seed", dest="seed", type=seed_int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _add_dataset_args(p: argparse.ArgumentParser, positional: bool = False) -> None:
    if positional:  # the dataset as the one positional argument, or --data like every other command
        p.add_argument(
            "data_pos",
            nargs="?",
            default=None,
            metavar="DATA",
            help="SynthRef folder, or the REFER data root with --dataset (or --data)",
        )
        p.add_argument("--data", default=None, help=argparse.SUPPRESS)
    else:
        p.add_argument("--data", required=True, help="SynthRef folder, or the REFER data root with --dataset")
    p.add_argument("--dataset", default=None, help="refcoco | refcoco+ | refcocog (REFER layout); default: SynthRef")
    p.add_argument("--split-by", default=None, help="unc | google | umd (REFER); default: the dataset's first")
    p.add_argument("--image-dir", default=None, help="COCO train2014 image folder (REFER); default under the root")


# ----------------------------------------------------------------------------- parser
_EXAMPLES = {
    "train": """examples:
  l2l train --config configs/synthref_supervised.yaml data.label_fraction=5% --out runs/sup_5
  l2l train --config configs/synthref_l2l.yaml --method l2l --out runs/l2l_5     # resumes when run again
  l2l train --config configs/synthref_l2l.yaml --out runs/l2l_5 --no-resume     # start that folder over""",
    "eval": """examples:
  l2l eval --ckpt runs/sup_5 --split testB                    # -> runs/sup_5/eval_testB_none_original.json
  l2l eval --ckpt runs/l2l_5 --split val --guidance prior --priors runs/data/synthref_priors_val
  l2l eval --ckpt models/a --data runs/data/synthref --split val --max-samples 100 --device cpu""",
    "predict": """examples:
  l2l predict --ckpt runs/sup_5 --image photo.jpg --text "the red ball on the left" --out mask.png
  l2l predict --ckpt runs/l2l_5 --image img.png --text "second cup" --prior prior.png --out m.png --overlay o.png
  l2l predict --ckpt runs/sup_5 --manifest pairs.jsonl --out-dir preds --device cuda   # resumable; COCO RLE
  l2l predict --ckpt runs/sup_5 --images photos/ --texts "the dog" "the cup" --out-dir preds""",
    "serve": """examples:
  l2l serve --ckpt runs/demo/l2l_5pct                          # http://127.0.0.1:7860
  l2l serve --ckpt runs/sup_5 --ckpt runs/l2l_5 --name supervised --name L2L --prior standin
  l2l serve --ckpt models/a --domain-images my_photos/ --host 0.0.0.0 --port 8080""",
}


def _with_examples(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    """A sub-command whose --help ends with the examples of ``_EXAMPLES[name]``."""
    return sub.add_parser(
        name, help=help_text, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EXAMPLES[name]
    )


def seed_int(text: str) -> int:
    """``--seed``: an integer in [0, 2**32) (numpy's and torch's seeds), else argparse's one-line error."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= v < 2**32:
        raise argparse.ArgumentTypeError(f"a seed lies in [0, 2**32), got {v}")
    return v


def _device(args: argparse.Namespace) -> str:
    from ..utils.devices import best_device

    return best_device(getattr(args, "device", "auto"))


def _evaluate_predictor(args: argparse.Namespace, pred, what: dict, out: str, batch_size: int = 16) -> dict:
    """Evaluate a predictor that is not a trained segmenter run (PPT, the zero-shot baselines) on
    ``args.split`` and write the metrics JSON (with ``what`` describing the method) to ``out``."""
    from ..evaluation.inference import inference_on_dataset
    from ..utils.io import atomic_write_text

    ds = _open_dataset(args)
    recs = ds.samples(args.split)[: args.max_samples] if args.max_samples else ds.samples(args.split)
    res = inference_on_dataset(
        pred, ds, recs, args.size, _device(args), batch_size=batch_size, show_progress=not args.quiet
    )
    res.update(split=args.split, size=args.size, **what)
    if hasattr(pred, "no_proposal"):
        res["no_proposal"] = pred.no_proposal
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(res, indent=2))
    print(
        f"{what['method']} on {ds.name} {args.split}: oIoU {res['oIoU']:.4f}  mIoU {res['mIoU']:.4f}  "
        f"P@0.3 {res['P@0.3']:.4f}  P@0.5 {res['P@0.5']:.4f}  P@0.7 {res['P@0.7']:.4f} ({res['samples']} samples) -> {path}"
    )
    return res


def _add_table_parser(sub: Any, table: str, what: str, results: str, script: str) -> None:
    p = sub.add_parser("table", help=f"Markdown table: {what} (mean ± std over seeds)")
    p.add_argument("--results", default=results, help=f"folder of eval JSONs ({script})")
    p.add_argument("--split", default="val", help="split (default val)")
    p.add_argument("--seeds", type=_positive_int, default=3, help="seeds expected per row (default 3)")
    p.add_argument("--out", default=None, help="Markdown file to write")
    p.set_defaults(func=cmd_results_table, table=table)


def cmd_results_table(args: argparse.Namespace) -> int:
    """``l2l ppt table`` and ``l2l pseudo-ris table``: a Markdown table from a folder of eval JSONs."""
    from ..report.ppt import ppt_table
    from ..report.pseudoris import pseudoris_table
    from ..utils.io import atomic_write_text

    make = {"ppt": ppt_table, "pseudo-ris": pseudoris_table}[args.table]
    text = make(args.results, args.split, args.seeds)
    if args.out:
        atomic_write_text(Path(args.out), text)
    print(text, end="")
    return 0


def _shard(text: str) -> tuple[int, int]:
    try:
        a, _, b = text.partition("/")
        i, n = int(a), int(b)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n such as 0/4, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"shard {text!r}: need 0 <= i < n")
    return i, n


def _read_image(path: str | Path):
    """An RGB uint8 array of the image file (EXIF orientation applied), or an error naming it."""
    from ..data.images import to_rgb_uint8

    return to_rgb_uint8(path, str(path), exif=True)


def _load_run(ckpt: str, device: str = "cpu"):
    from ..models.segmenter import Segmenter
    from ..schema import TrainConfig
    from ..utils.run_paths import load_run_config

    run = Path(ckpt)
    model = Segmenter.from_pretrained(run, device)
    folder = RunFolder.find(run, levels=1)
    cfg = load_run_config(folder.root, TrainConfig) if folder else None  # its paths found again from any directory
    return run, model, cfg
