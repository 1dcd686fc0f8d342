"""``l2l priors``: making, evaluating and showing offline priors (the providers: ``l2l.priors.providers``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .common import _add_dataset_args, _open_dataset, _shard, seed_int


def _prior_samples(args: argparse.Namespace, ds) -> list[int]:
    from ..data.dataset import train_records
    from ..data.splits import make_split

    recs = ds.samples(args.split)
    if args.subset != "all":
        if args.split != "train":
            raise UsageError("--subset labeled/unlabeled applies to the train split")
        lab, unl = train_records(ds, make_split(ds.name, ds.image_ids("train"), args.label_fraction, args.split_seed))
        recs = lab if args.subset == "labeled" else unl
    return [r.sample_id for r in recs]


def cmd_priors_generate(args: argparse.Namespace) -> int:
    from ..priors.providers import build_provider
    from ..registry import PRIOR_PROVIDERS

    ds = _open_dataset(args)

    name = args.provider
    if name == "auto":  # SynthRef: the learned prior of the pretraining world; elsewhere the labelled simulation
        name = "standin" if ds.name == "synthref" else "simulated"
    provider = build_provider(PRIOR_PROVIDERS.get(name), name, vars(args), args.overrides, ds)
    ids = _prior_samples(args, ds)
    res = _generate_priors(ds, provider, ids, args.out, args.batch_size, args.shard)
    print(
        f"{args.out}: {res['generated']} generated, {res['skipped']} already present "
        f"(rank {res['rank']}/{res['world']}, {res['assigned']} assigned of {len(ids)} {args.split}/{args.subset} samples)"
    )
    return 0


def _eda_pools_beside(cfg: Any, ds: Any, split: Any) -> Any:
    """The demo's EDA pools (the strong text view of its unlabeled sentences) built in a thread beside
    the prior generation — one torch thread each, so they run on the two cores side by side; the
    trainer then finds them in the cache. None when the run uses no strong text or the pools are there."""
    import threading

    from ..data.dataset import train_records
    from ..registry import METHODS
    from ..semi.data import text_strong_augmenter

    if not cfg.data.strong_text or not getattr(METHODS.get(cfg.method), "needs_unlabeled", False):
        return None
    sentences = [r.sentence for r in train_records(ds, split)[1]]

    def build() -> None:
        try:
            text_strong_augmenter(cfg.data, ds, sentences)
        except Exception:  # noqa: S110 — the trainer builds what is missing and reports the error there
            pass

    t = threading.Thread(target=build, name="eda-pools", daemon=True)
    t.start()
    return t


def _generate_priors_beside(ds, provider, ids: list[int], out: Path, data_dir: Path) -> None:
    """The demo's priors by two processes of one thread each (the thread policy): a second ``l2l priors
    generate --shard 1/2`` beside this process's shard 0/2, into the same store. A failed helper costs
    time only: the caller then generates whatever is still missing."""
    import subprocess

    cmd = [
        sys.executable,
        "-m",
        "l2l.cli",
        "priors",
        "generate",
        "--provider",
        "standin",
        "--data",
        str(data_dir),
        "--split",
        "train",
        "--subset",
        "all",
        "--out",
        str(out),
        "--batch-size",
        "32",
        "--shard",
        "1/2",
    ]
    env = {**os.environ, "L2L_NO_PROGRESS": "1"}
    helper = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _generate_priors(ds, provider, ids, out, batch_size=32, shard=(0, 2))
    except BaseException:  # Ctrl-C or an error here: the helper stops too (what both stored stays)
        helper.terminate()
        helper.wait()
        raise
    _, err = helper.communicate()
    if helper.returncode != 0:
        tail = (err or "").strip().splitlines()[-1:] or ["no message"]
        print(f"      the second prior process failed (exit {helper.returncode}: {tail[0]}); this one makes its share")


def _generate_priors(
    ds, provider, ids: list[int], out: str | Path, batch_size: int = 16, shard: tuple[int, int] | None = None
) -> dict:
    """Fill the prior store ``out`` with ``provider``'s maps of samples ``ids`` (this rank's share:
    ``shard`` = (i, n), else torchrun's RANK / WORLD_SIZE, else all)."""
    from ..priors.base import PriorInput
    from ..priors.store import PriorStore

    rank, world = shard or (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))

    def load(sid: int) -> PriorInput:
        rec = ds.sample(sid)
        return PriorInput(sid, ds.load_image(rec.image_id), rec.sentence)

    ids = sorted(ids, key=lambda sid: ds.sample(sid).image_id)  # one image's sentences together: one encoding
    res = PriorStore(out).generate(
        provider, ids, load, batch_size, rank, world, dataset={"name": ds.name, "fingerprint": ds.fingerprint()}
    )
    return {**res, "rank": rank, "world": world}


def cmd_priors_eval(args: argparse.Namespace) -> int:
    from ..priors.evaluate import evaluate_priors
    from ..priors.store import PriorStore

    ds = _open_dataset(args)
    store = PriorStore(args.priors)
    store.check_dataset(ds)
    res = evaluate_priors(store, ds, threshold=args.threshold)
    out = Path(args.priors) / "eval.json"
    out.write_text(json.dumps(res, indent=2))
    note = " (SIMULATED prior)" if res["provider"] == "simulated" else ""
    print(
        f"prior {res['provider']}{note}: mean IoU {res['mean_IoU']:.4f}  oIoU {res['oIoU']:.4f}  "
        f"P@0.5 {res['P@0.5']:.4f}  ({res['samples']} samples, {res['missing']} missing) -> {out}"
    )
    return 0


def cmd_priors_show(args: argparse.Namespace) -> int:
    from ..priors.show import save_prior_grid
    from ..priors.store import PriorStore

    ds = _open_dataset(args)
    store = PriorStore(args.priors)
    store.check_dataset(ds)
    out = save_prior_grid(store, ds, args.out, args.n, args.seed)
    print(f"prior grid -> {out}")
    return 0


def add_parsers(sub: Any) -> None:
    pri = sub.add_parser("priors", help="offline priors P† (docs/spec.md §3)").add_subparsers(
        dest="priors_command", required=True
    )
    p = pri.add_parser("generate", help="make and store priors (skips what is already there; torchrun shards)")
    _add_dataset_args(p)
    p.add_argument("--split", default="train", help="split of the samples to make priors for (default train)")
    p.add_argument(
        "--subset",
        default="unlabeled",
        choices=["unlabeled", "labeled", "all"],
        help="train split only: the unlabeled or labeled samples of --label-fraction, or all",
    )
    p.add_argument("--label-fraction", default="5%", help="label budget that defines --subset (default 5%%)")
    p.add_argument("--split-seed", type=int, default=22, help="seed of that label split (default 22)")
    from ..registry import PRIOR_PROVIDERS

    p.add_argument(
        "--provider",
        default="auto",
        help="auto (standin on SynthRef, simulated elsewhere) | " + " | ".join(PRIOR_PROVIDERS.names()),
    )
    p.add_argument("--device", default="auto", help="teacher, mllm-sam2: auto (a GPU when there is one) | cpu | cuda")
    p.add_argument(
        "--shard",
        type=_shard,
        default=None,
        help="i/n: this process takes every n-th sample, into the same --out (run n of them side by side, "
        "one thread each; or torchrun)",
    )
    p.add_argument("--mllm", default=None, help="mllm-sam2: local Qwen2.5-VL folder")
    p.add_argument("--sam2", default=None, help="mllm-sam2: local SAM2 folder (transformers format)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="mllm-sam2: generation budget per answer")
    p.add_argument("--ckpt", default=None, help="teacher: a trained l2l run or model folder")
    p.add_argument("--guidance", default="none", choices=["none", "self"], help="teacher: inference mode")
    p.add_argument("--grounder", default=None, help="standin: grounder folder (default builtin:synthpool-grounder)")
    p.add_argument("--mask-model", default=None, help="standin: mask-model folder (default builtin:synthpool-sam)")
    p.add_argument("--folder", default=None, help="files: folder of <sample_id>.png / .npy maps")
    p.add_argument("--cues", default=None, help="files: optional JSON of cues by sample id")
    p.add_argument("--out", required=True, help="prior store folder")
    p.add_argument("--seed", type=seed_int, default=0, help="simulated: seed of the noise model")
    p.add_argument("--batch-size", type=int, default=16, help="samples per provider call")
    p.add_argument(
        "overrides",
        nargs="*",
        help="KEY=VALUE options of the provider's config, as for training (e.g. grounder=FOLDER for standin, "
        "noise=0.1 for simulated); the options above set the fields of the same name",
    )
    p.set_defaults(func=cmd_priors_generate)
    p = pri.add_parser("eval", help="IoU of stored priors against the ground truth")
    _add_dataset_args(p)
    p.add_argument("--priors", required=True, help="prior store folder (l2l priors generate --out)")
    p.add_argument(
        "--threshold", type=float, default=0.5, help="probability at which a prior counts as foreground (default 0.5)"
    )
    p.set_defaults(func=cmd_priors_eval)
    p = pri.add_parser("show", help="PNG grid: image and sentence, prior, ground truth")
    _add_dataset_args(p)
    p.add_argument("--priors", required=True, help="prior store folder")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--n", type=int, default=8, help="number of samples shown")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the sample choice")
    p.set_defaults(func=cmd_priors_show)
