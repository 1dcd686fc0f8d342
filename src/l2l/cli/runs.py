"""``l2l train``, ``l2l eval``, ``l2l predict``, ``l2l plot``: a training run and what is read from it."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import MissingFileError, UsageError
from ..utils.run_folder import RunFolder
from .common import _add_run_arg, _load_run, _positive_int, _read_image, _with_examples


def cmd_train(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..engine.trainer import TrainConfig, Trainer

    overrides = list(args.overrides) + ([f"method={args.method}"] if args.method else [])
    cfg = load_config(TrainConfig, args.config, overrides)
    if args.threads:  # --threads wins over the config's threads
        cfg.threads = args.threads
    stem = Path(args.config).stem if args.config else "run"
    out = Path(args.out) if args.out else Path("runs") / f"{stem}_{cfg.method}"
    res = Trainer(cfg, out, allow_changes=args.allow_change).fit(resume=not args.no_resume)
    r = res["results"]
    if r and int(os.environ.get("RANK", "0")) == 0:
        print(
            f"{out}: {cfg.data.eval_split} oIoU {r['oIoU']:.4f}  mIoU {r['mIoU']:.4f}  P@0.5 {r['P@0.5']:.4f} "
            f"({r['samples']} samples, {r['resolution']} resolution); {res['samples_per_s']:.1f} samples/s"
        )
    return 0


def _eval_file(run: Path, cfg, dataset: str, args: argparse.Namespace, fingerprint: str = "") -> Path:
    """Where ``l2l eval`` writes: in the run folder (RUN or RUN/best → RUN; a standalone model folder
    → that folder, never its parent), named by split, guidance and resolution, and — when they differ
    from the run's own data or cover a subset — by dataset and sample count, so that no evaluation
    overwrites another one."""
    found = RunFolder.find(run, levels=1)
    folder = found.root if found is not None else (RunFolder.saved_model(run) or run)
    name = RunFolder.eval_name(args.split, args.guidance, args.resolution).removesuffix(".json")
    own = cfg is not None and not args.data
    if not own:
        name += f"_{dataset.replace('/', '_')}-{fingerprint}"
    if args.max_samples:
        name += f"_n{args.max_samples}"
    return folder / f"{name}.json"


def cmd_eval(args: argparse.Namespace) -> int:
    from ..data.refer import ReferDataset
    from ..evaluation.inference import inference_on_dataset
    from ..utils.devices import best_device

    device = best_device(args.device)
    run, model, cfg = _load_run(args.ckpt, device)
    if args.data:
        ds = ReferDataset.open(args.data, args.dataset, args.split_by, args.image_dir)
    elif cfg is not None:
        ds = ReferDataset.open(cfg.data.root, cfg.data.dataset, cfg.data.split_by, cfg.data.image_dir)
    else:
        raise MissingFileError(f"{run} has no config.yaml: pass --data")
    recs = ds.samples(args.split)[: args.max_samples] if args.max_samples else ds.samples(args.split)
    lookup = None
    if args.priors:
        from ..priors.store import PriorStore

        store = PriorStore(args.priors)
        store.check_dataset(ds)
        lookup = store.get
    res = inference_on_dataset(
        model,
        ds,
        recs,
        model.cfg.image_size,
        device,
        guidance=args.guidance,
        resolution=args.resolution,
        prior_lookup=lookup,
    )
    res = {"checkpoint": str(run), "dataset": ds.name, "split": args.split, **res}
    out = Path(args.out) if args.out else _eval_file(run, cfg, ds.name, args, ds.fingerprint()[:8])
    res["max_samples"] = args.max_samples
    from ..utils.io import atomic_write_text

    atomic_write_text(out, json.dumps(res, indent=2))
    print(
        f"{ds.name} {args.split}: oIoU {res['oIoU']:.4f}  mIoU {res['mIoU']:.4f}  "
        + "  ".join(f"P@{t} {res[f'P@{t}']:.3f}" for t in (0.5, 0.7, 0.9))
        + f"  ({res['samples']} samples, {args.resolution} resolution, guidance {args.guidance}) -> {out}"
    )
    return 0


def _predict_to_files(
    model,
    image,
    text: str,
    out: str | Path,
    overlay: str | Path | None = None,
    prior=None,
    guidance: str | None = None,
    threshold: float = 0.5,
):
    """Segment ``text`` in ``image``, write the 0/255 mask PNG (and an overlay); returns the bool mask."""
    import warnings

    import numpy as np
    from PIL import Image

    from ..models.domain import OutOfDomainWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OutOfDomainWarning)
        mask, prob = model.segment(image, text, prior=prior, guidance=guidance, threshold=threshold)
    for w in caught:
        if issubclass(w.category, OutOfDomainWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((mask * 255).astype(np.uint8)).save(out)
    if overlay:
        from ..data.preview import overlay as draw_overlay

        Image.fromarray(draw_overlay(image, mask.astype(np.uint8))).save(overlay)
    note = "  (EMPTY: no pixel reached the threshold)" if not mask.any() else ""
    print(
        f"mask ({int(mask.sum())} px, mean p {float(prob.mean()):.3f}) -> {out}"
        + (f"; overlay -> {overlay}" if overlay else "")
        + note
    )
    return mask


def cmd_predict(args: argparse.Namespace) -> int:
    from ..utils.devices import best_device

    if args.manifest or args.images:
        return _predict_batch(args)
    if not (args.image and args.text is not None and args.out):
        raise UsageError("l2l predict needs --image, --text and --out (or --manifest / --images with --out-dir)")
    if not 0.0 <= args.threshold <= 1.0:
        raise UsageError(f"--threshold must lie in [0, 1], got {args.threshold}")
    if not args.text.strip():
        raise UsageError("the sentence (--text) is empty")
    image = _read_image(args.image)
    _, model, _ = _load_run(args.ckpt, best_device(args.device))
    prior = None
    if args.prior:
        from ..data.images import check_prior

        prior = check_prior(_read_image(args.prior)[:, :, 0] / 255.0, image.shape[:2], f"prior {args.prior}")
    _predict_to_files(model, image, args.text, args.out, args.overlay, prior, args.guidance, args.threshold)
    if args.save_probs:
        import numpy as np

        np.save(
            Path(args.out).with_suffix(".npy"),
            model.segment(image, args.text, prior=prior, guidance=args.guidance, domain_check=False)[1],
        )
    return 0


def _predict_batch(args: argparse.Namespace) -> int:
    from ..models.batch_predict import pairs_from_folder, predict_pairs, read_manifest
    from ..models.predictor import SegmenterPredictor

    if args.manifest and args.images:
        raise UsageError("give --manifest or --images, not both")
    if not args.out_dir:
        raise UsageError("--manifest / --images write into --out-dir DIR")
    if args.image or args.prior or args.overlay:
        raise UsageError("--image, --prior and --overlay are for one image; batch mode takes --manifest or --images")
    pairs = read_manifest(args.manifest) if args.manifest else pairs_from_folder(args.images, args.texts or [])
    predictor = SegmenterPredictor.from_pretrained(args.ckpt, args.device)
    res = predict_pairs(predictor, pairs, args.out_dir, args.threshold, args.guidance, args.save_probs)
    print(
        f"{args.out_dir}: {res['predicted']} pairs predicted, {res['skipped']} already done, {res['empty']} empty "
        f"masks of {res['pairs']} -> results.json (COCO RLE), masks/"
    )
    print(
        f"domain: {res['far_images']} of {res['images']} images far from the training domain"
        + (
            f' (they are listed with "far": true in results.jsonl; {predictor.domain_note})'
            if predictor.domain
            else f" ({predictor.domain_note})"
        )
    )
    if res["failed"]:
        print(
            f"{len(res['failed'])} pairs failed (listed in {Path(args.out_dir) / 'failed.json'}; a rerun tries them again):",
            file=sys.stderr,
        )
        for r in res["failed"][:10]:
            shown = json.dumps(r["id"], ensure_ascii=False)  # quoted: an empty id or a NUL stays visible
            print(f"  {shown if len(shown) <= 62 else shown[:60] + '…'}: {r['reason']}", file=sys.stderr)
        return 1
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from ..engine.plot_run import plot_run

    out = plot_run(args.run, args.out)
    print(f"curves of {args.run} -> {out}")
    return 0


def add_parsers(sub: Any) -> None:
    p = _with_examples(sub, "train", "train a segmenter (resumes from the run folder's last checkpoint)")
    p.add_argument("--config", default=None, help="YAML config (configs/*.yaml)")
    p.add_argument("--method", default=None, help="shorthand for method=NAME")
    p.add_argument("--out", default=None, help="run folder (default runs/<config>_<method>)")
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints already in the run folder")
    p.add_argument(
        "--allow-change",
        action="append",
        default=[],
        metavar="KEY",
        help="resume although this config key changed (e.g. optim.lr, or optim for all its fields); "
        "repeat for several; recorded in env.json",
    )
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=1e-4 data.label_fraction=5%%")
    p.set_defaults(func=cmd_train)

    p = _with_examples(sub, "eval", "evaluate a trained run on a split")
    _add_run_arg(p, "--ckpt", "--run", "run folder (uses best/) or a saved model folder")
    p.add_argument("--split", default="val", help="split to evaluate (default val)")
    p.add_argument(
        "--guidance",
        default="none",
        choices=["none", "prior", "self"],
        help="none: the plain model; prior: conditioned on stored priors (--priors); self: two passes (SESM models)",
    )
    p.add_argument(
        "--resolution",
        default="original",
        choices=["original", "train"],
        help="original: masks at each image's own size (default); train: at the training size (LAVT's protocol)",
    )
    p.add_argument("--max-samples", type=_positive_int, default=None, help="evaluate the first N samples only")
    p.add_argument(
        "--out",
        default=None,
        help="result JSON (default: eval_<split>_<guidance>_<resolution>[_<data>-<fingerprint>][_n<N>].json in the run or model folder)",
    )
    p.add_argument("--priors", default=None, help="prior store for --guidance prior (l2l priors generate)")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one) | cpu | cuda | cuda:N")
    p.add_argument("--data", default=None, help="dataset (default: the one in the run's config.yaml)")
    p.add_argument("--dataset", default=None, help="with --data: refcoco | refcoco+ | refcocog (REFER layout)")
    p.add_argument("--split-by", default=None, help="with --data: unc | google | umd")
    p.add_argument("--image-dir", default=None, help="with --data: image folder (default: DATA/images/train2014)")
    p.set_defaults(func=cmd_eval)

    p = _with_examples(
        sub, "predict", "segment what a sentence refers to: one image, or many pairs (--manifest / --images)"
    )
    _add_run_arg(p, "--ckpt", "--run", "run folder (uses best/) or a saved model folder")
    p.add_argument("--image", default=None, help="image file (photos are turned by their EXIF orientation)")
    p.add_argument("--text", default=None, help="the referring expression")
    p.add_argument("--out", default=None, help="mask PNG (0/255)")
    p.add_argument("--manifest", default=None, help='batch: JSON lines {"image": path, "text": str, "id": opt.}')
    p.add_argument("--images", default=None, help="batch: every image of this folder with every --texts sentence")
    p.add_argument("--texts", nargs="+", default=None, help="batch with --images: the sentences")
    p.add_argument(
        "--out-dir", default=None, help="batch: folder for masks/, results.jsonl and results.json (COCO RLE)"
    )
    p.add_argument("--threshold", type=float, default=0.5, help="foreground probability threshold (default 0.5)")
    p.add_argument("--save-probs", action="store_true", help="also write the probability map (.npy, float16 in batch)")
    p.add_argument("--overlay", default=None, help="overlay PNG")
    p.add_argument("--prior", default=None, help="a prior map PNG (grey levels = probability)")
    p.add_argument(
        "--guidance",
        default=None,
        choices=["none", "prior", "self"],
        help="none | prior (needs --prior) | self; default: prior when --prior is given, else none",
    )
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one) | cpu | cuda | cuda:N")
    p.set_defaults(func=cmd_predict)


def add_plot_parser(sub: Any) -> None:
    p = sub.add_parser("plot", help="PNG of a run's curves: losses, validation, prior quality, pseudo-labels, RPLE")
    p.add_argument("run", help="run folder (with metrics.jsonl)")
    p.add_argument("--out", default=None, help="PNG path (default RUN/curves.png)")
    p.set_defaults(func=cmd_plot)
