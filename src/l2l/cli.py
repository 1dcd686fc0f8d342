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
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .errors import MissingFileError, UsageError


def _fraction(text: str) -> str:
    """argparse type of --fraction: checked now, so that the error names the option."""
    from .data.splits import parse_fraction

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
    from .data.refer import ReferDataset

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
    from .data.synthref import SynthRefConfig, generate
    from .data.synthref_scene import SceneProfile

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
    from .data.splits import make_split, split_filename

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
    from .data.stats import dataset_stats, format_stats

    stats = dataset_stats(_open_dataset(args))
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from .data.preview import save_preview

    out = save_preview(_open_dataset(args), args.out, args.split, args.n, args.size, args.seed)
    print(f"preview written to {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on SynthRef: data, priors, L2L training, evaluation, plots. Every step skips
    work that is already done, and training resumes from its last checkpoint."""

    from .config import load_config
    from .data.preview import save_preview
    from .data.refer import ReferDataset
    from .data.splits import LabelSplit, make_split, split_filename
    from .data.stats import dataset_stats, format_stats
    from .data.synthref import SynthRefConfig, generate
    from .engine.plot_run import plot_run
    from .engine.trainer import TrainConfig, Trainer

    work = Path(args.workdir)
    data_dir = work / "synthref"
    print(f"[1/7] SynthRef ({args.images} images) -> {data_dir}")
    generate(SynthRefConfig(images=args.images, seed=0), data_dir, workers=args.workers)
    ds = ReferDataset.synthref(data_dir)
    print(f"[2/7] label split {args.fraction} (seed {args.seed})")
    split = make_split(ds.name, ds.image_ids("train"), args.fraction, args.seed)
    path = data_dir / "splits" / split_filename(split.fraction, split.seed)
    if not path.exists() or LabelSplit.load(path).content_hash != split.content_hash:
        split.save(path)
    print(f"      {len(split.labeled)} labeled / {len(split.unlabeled)} unlabeled images -> {path}")
    print("[3/7] statistics")
    stats = dataset_stats(ds)
    (work / "stats.json").write_text(json.dumps(stats, indent=2))
    print(format_stats(stats))
    out = save_preview(ds, work / "preview.png", seed=args.seed)
    print(f"      loader preview -> {out}")
    priors = work / ("priors" if args.prior == "standin" else f"priors_{args.prior}")
    print(f"[4/7] priors P† of the training samples ({args.prior} provider) -> {priors}")
    if args.prior == "standin":
        from .priors.standin import build

        print(
            "      provider: standin — the pretraining world's grounder → box → mask model (stand-ins for an "
            "MLLM and SAM2, docs/foundation.md)"
        )
        provider = build()
    else:
        from .priors.simulated import WARNING, SimulatedConfig, SimulatedProvider

        print(f"      provider: simulated — {WARNING}")
        provider = SimulatedProvider(ds, SimulatedConfig(seed=0))
    cfg = load_config(
        TrainConfig,
        args.config,
        [
            f"data.root={data_dir}",
            f"data.label_fraction={args.fraction}",
            f"data.split_seed={args.seed}",
            f"semi.priors={priors}",
            *args.overrides,
        ],
    )
    eda = _eda_pools_beside(cfg, ds, split)  # on the second core's spare time while the priors are made
    train_ids = [r.sample_id for r in ds.samples("train")]
    try:
        if args.prior == "standin" and (os.cpu_count() or 1) > 1:
            _generate_priors_beside(ds, provider, train_ids, priors, data_dir)
        _generate_priors(ds, provider, train_ids, priors, batch_size=32)  # what is not there yet (all, when alone)
    finally:
        if eda is not None:
            eda.join()
    run = work / f"{cfg.method}_{split.fraction * 100:g}pct"
    print(f"[5/7] {cfg.method} training ({args.config}) -> {run}  (resumes if interrupted)")
    res = Trainer(cfg, run).fit()
    r = res["results"] or json.loads((run / f"eval_{cfg.data.eval_split}.json").read_text())
    print(
        f"[6/7] {cfg.data.eval_split}: oIoU {100 * r['oIoU']:.1f} %  mIoU {100 * r['mIoU']:.1f} %  "
        f"P@0.5 {100 * r['P@0.5']:.1f} %"
    )
    print(f"      curves (losses, prior quality, pseudo-labels, RPLE) -> {plot_run(run)}")
    from .models.segmenter import Segmenter
    from .report.qualitative import fixed_samples_figure

    six = ds.samples("testB")[:6]  # always the first six testB sentences: never chosen by result
    model = Segmenter.from_pretrained(run)
    fig = work / "testB_first6.png"
    print(f"[7/7] the first {len(six)} testB sentences -> {fig}")
    shown = fixed_samples_figure(model, ds, six, fig)
    for row in shown:
        print(f'      IoU {100 * row["iou"]:5.1f} %  ({row["kind"]}) "{row["sentence"]}"')
    hits = sum(row["iou"] >= 0.5 for row in shown)
    print(f"      {hits} of {len(shown)} at IoU ≥ 50 %")
    rec = six[0]
    image = _read_image(ds.image_path(rec.image_id))
    mask_png, overlay_png = work / "prediction_mask.png", work / "prediction_overlay.png"
    _predict_to_files(model, image, rec.sentence, mask_png, overlay_png)
    print(f"      the first as files (l2l predict's output): {mask_png}, {overlay_png}")
    print(f"done. Try the model on a web page: l2l serve --ckpt {run}  (docs/predict.md)")
    print(f"      compare methods: docs/results.md; other methods: l2l train --config {args.config} --method NAME")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .engine.trainer import TrainConfig, Trainer

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


def _load_run(ckpt: str, device: str = "cpu"):
    from .models.segmenter import Segmenter
    from .schema import TrainConfig
    from .utils.run_paths import load_run_config

    run = Path(ckpt)
    model = Segmenter.from_pretrained(run, device)
    folder = next((p for p in (run, run.parent) if (p / "config.yaml").exists()), None)
    cfg = load_run_config(folder, TrainConfig) if folder else None  # its paths found again from any directory
    return run, model, cfg


def _eval_file(run: Path, cfg, dataset: str, args: argparse.Namespace, fingerprint: str = "") -> Path:
    """Where ``l2l eval`` writes: in the run folder (RUN or RUN/best → RUN; a standalone model folder
    → that folder, never its parent), named by split, guidance and resolution, and — when they differ
    from the run's own data or cover a subset — by dataset and sample count, so that no evaluation
    overwrites another one."""
    folder = run if (run / "config.yaml").exists() else run.parent
    if not (folder / "config.yaml").exists():
        from .utils.run_paths import model_folder

        folder = model_folder(run) or run
    name = f"eval_{args.split}_{args.guidance}_{args.resolution}"
    own = cfg is not None and not args.data
    if not own:
        name += f"_{dataset.replace('/', '_')}-{fingerprint}"
    if args.max_samples:
        name += f"_n{args.max_samples}"
    return folder / f"{name}.json"


def cmd_eval(args: argparse.Namespace) -> int:
    from .data.refer import ReferDataset
    from .evaluation.inference import inference_on_dataset
    from .utils.devices import best_device

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
        from .priors.store import PriorStore

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
    from .utils.io import atomic_write_text

    atomic_write_text(out, json.dumps(res, indent=2))
    print(
        f"{ds.name} {args.split}: oIoU {res['oIoU']:.4f}  mIoU {res['mIoU']:.4f}  "
        + "  ".join(f"P@{t} {res[f'P@{t}']:.3f}" for t in (0.5, 0.7, 0.9))
        + f"  ({res['samples']} samples, {args.resolution} resolution, guidance {args.guidance}) -> {out}"
    )
    return 0


def _read_image(path: str | Path):
    """An RGB uint8 array of the image file (EXIF orientation applied), or an error naming it."""
    from .data.images import to_rgb_uint8

    return to_rgb_uint8(path, str(path), exif=True)


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

    from .models.domain import OutOfDomainWarning

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
        from .data.preview import overlay as draw_overlay

        Image.fromarray(draw_overlay(image, mask.astype(np.uint8))).save(overlay)
    note = "  (EMPTY: no pixel reached the threshold)" if not mask.any() else ""
    print(
        f"mask ({int(mask.sum())} px, mean p {float(prob.mean()):.3f}) -> {out}"
        + (f"; overlay -> {overlay}" if overlay else "")
        + note
    )
    return mask


def cmd_export(args: argparse.Namespace) -> int:
    from .data.export import export_refer

    ds = _open_dataset(args)
    r = export_refer(ds, args.out, args.name, args.as_split_by)
    print(
        f"{ds.name} -> {r['folder']}: {r['refs']} refs, {r['sentences']} sentences, {r['images']} images "
        f"(REFER(data_root={args.out!r}, dataset={args.name!r}, splitBy={args.as_split_by!r}))"
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .utils.devices import best_device

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
        from .data.images import check_prior

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
    from .models.batch_predict import pairs_from_folder, predict_pairs, read_manifest
    from .models.predictor import SegmenterPredictor

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


def cmd_pseudo_ris_generate(args: argparse.Namespace) -> int:
    from .config import load_config
    from .pseudoris.config import PseudoRISConfig
    from .pseudoris.generate import build_dataset, generate, load_models
    from .utils.devices import best_device

    ds = _open_dataset(args)
    cfg = load_config(PseudoRISConfig, args.config, list(args.overrides))
    labeled: list[int] = []
    if args.setting == "semi":
        from .data.splits import make_split

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


def cmd_pseudo_ris_baseline(args: argparse.Namespace) -> int:
    from .pseudoris.config import MaskConfig
    from .pseudoris.generate import load_models
    from .pseudoris.zero_shot import ZeroShotPredictor
    from .utils.devices import best_device

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


def cmd_ppt_prepare(args: argparse.Namespace) -> int:
    from .config import load_config
    from .ppt.config import PPTConfig
    from .ppt.data import prepare
    from .utils.devices import best_device

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
    from .config import load_config
    from .ppt.config import PPTConfig
    from .ppt.train import train
    from .utils.devices import best_device

    ds = _open_dataset(args)
    cfg = load_config(PPTConfig, args.config, list(args.overrides))
    res = train(cfg, args.labels, ds, args.out, best_device(args.device), args.max_steps, not args.quiet)
    print(
        f"ppt: {res['steps']} / {res['total_steps']} steps in {args.out}"
        + (" (done)" if res["done"] else " (stopped early: run again to resume)")
        + f"; sources {res['sources']}"
    )
    return 0


def _evaluate_predictor(args: argparse.Namespace, pred, what: dict, out: str, batch_size: int = 16) -> dict:
    """Evaluate a predictor that is not a trained segmenter run (PPT, the zero-shot baselines) on
    ``args.split`` and write the metrics JSON (with ``what`` describing the method) to ``out``."""
    from .evaluation.inference import inference_on_dataset
    from .utils.io import atomic_write_text

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


def _device(args: argparse.Namespace) -> str:
    from .utils.devices import best_device

    return best_device(getattr(args, "device", "auto"))


def cmd_ppt_eval(args: argparse.Namespace) -> int:
    from .ppt.train import load_run

    _evaluate_predictor(args, load_run(args.run, _device(args)), {"method": "ppt", "run": str(args.run)}, args.out)
    return 0


def cmd_ppt_baseline(args: argparse.Namespace) -> int:
    if args.kind == "naive":
        from .ppt.baselines import NaivePredictor
        from .ppt.encoders import FrozenDualEncoder, FrozenMaskDecoder

        dev = _device(args)
        pred = NaivePredictor(
            FrozenDualEncoder.load(args.dual_encoder, dev),
            FrozenMaskDecoder.load(args.mask_model, args.size, dev),
            args.points,
        )
        what = {"method": f"naive dual encoder + mask model ({args.points} peak point(s))"}
    else:
        from .pseudoris.config import MaskConfig
        from .pseudoris.generate import load_models
        from .pseudoris.zero_shot import ZeroShotPredictor

        models = load_models(args.mask_model, None, args.dual_encoder, _device(args))
        pred = ZeroShotPredictor(models.masks, models.dual, MaskConfig())  # type: ignore[assignment]
        what = {"method": "mask-model proposals ranked by the dual encoder"}
    what.update(kind=args.kind, dual_encoder=args.dual_encoder, mask_model=args.mask_model)
    _evaluate_predictor(args, pred, what, args.out)
    return 0


def cmd_ppt_quality(args: argparse.Namespace) -> int:
    from .ppt.quality import label_quality
    from .utils.io import atomic_write_text

    text = json.dumps(label_quality(_open_dataset(args), args.labels, args.run), indent=2)
    if args.out:
        atomic_write_text(Path(args.out), text)
    print(text)
    return 0


def cmd_ppt_show(args: argparse.Namespace) -> int:
    from .ppt.show import save_show
    from .ppt.train import load_run

    out = save_show(
        load_run(args.run, _device(args)), _open_dataset(args), args.split, args.out, args.samples, args.seed
    )
    print(f"wrote {out}")
    return 0


def _add_table_parser(sub: Any, table: str, what: str, results: str, script: str) -> None:
    p = sub.add_parser("table", help=f"Markdown table: {what} (mean ± std over seeds)")
    p.add_argument("--results", default=results, help=f"folder of eval JSONs ({script})")
    p.add_argument("--split", default="val", help="split (default val)")
    p.add_argument("--seeds", type=_positive_int, default=3, help="seeds expected per row (default 3)")
    p.add_argument("--out", default=None, help="Markdown file to write")
    p.set_defaults(func=cmd_results_table, table=table)


def cmd_results_table(args: argparse.Namespace) -> int:
    """``l2l ppt table`` and ``l2l pseudo-ris table``: a Markdown table from a folder of eval JSONs."""
    from .report.ppt import ppt_table
    from .report.pseudo_ris import pseudo_ris_table
    from .utils.io import atomic_write_text

    make = {"ppt": ppt_table, "pseudo-ris": pseudo_ris_table}[args.table]
    text = make(args.results, args.split, args.seeds)
    if args.out:
        atomic_write_text(Path(args.out), text)
    print(text, end="")
    return 0


def cmd_pseudo_ris_quality(args: argparse.Namespace) -> int:
    from .pseudoris.quality import caption_counts, pseudo_label_quality
    from .utils.io import atomic_write_text

    ds = _open_dataset(args)
    res = pseudo_label_quality(ds, args.folder)
    res["counts"] = caption_counts(args.folder, [r.sentence for r in ds.samples("train")], args.tau)
    text = json.dumps(res, indent=2)
    if args.out:
        atomic_write_text(Path(args.out), text)
    print(text)
    return 0


def cmd_pseudo_ris_show(args: argparse.Namespace) -> int:
    from .pseudoris.show import save_show

    print(f"-> {save_show(args.folder, args.out, args.images, args.seed)}")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from .label import commands
    from .label.project import LabelProject

    c = args.label_command
    if c == "init":
        p = commands.init(
            args.project, args.data, args.images, args.sentences, args.dataset, args.split_by, args.image_dir
        )
        print(
            f"{args.project}: {len(p.tasks)} tasks (training refs) over {p.status()['images']} images of {p.source.name}. "
            f"Label them: l2l label serve {args.project}"
        )
        return 0
    project = LabelProject(args.project)
    if c == "status":
        print(json.dumps(project.status(), indent=1))
    elif c == "rank":
        doc = commands.rank(project, args.model, args.strategy, args.k, args.priors, args.seed, args.device)
        print(f"{project.folder}/queue.json: {len(doc['images'])} images ({len(doc['refs'])} refs) by {args.strategy}")
    elif c == "train":
        row = commands.train(
            project, args.config, args.out, args.overrides, args.method, args.strategy, args.k, args.priors
        )
        print(json.dumps(row))
    elif c == "serve":
        from .foundation.loaders import load_mask_model
        from .label.page import serve
        from .label.session import LabelTab
        from .models.predictor import SegmenterPredictor
        from .priors.store import PriorStore

        masker = load_mask_model(args.mask_model)  # the stand-in or a SAM2 folder
        store = PriorStore(args.priors) if args.priors else None
        model = SegmenterPredictor.from_pretrained(args.model, args.device, domain_check=False) if args.model else None
        serve(lambda: LabelTab(project, masker, store, model), args.host, args.port)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve.session import ServedModel, Session

    if not args.ckpt:
        raise UsageError("serve needs --ckpt RUN (once, or twice to compare two models)")
    if len(args.ckpt) > 2:
        raise UsageError(f"serve shows one or two checkpoints side by side, got {len(args.ckpt)}")
    names = args.name or []
    models = []
    for i, ckpt in enumerate(args.ckpt):
        m = ServedModel(ckpt, args.device, names[i] if i < len(names) else None, args.domain_images)
        print(f"{m.name}: {ckpt} on {m.predictor.device}; {m.domain_note}")
        models.append(m)
    if len({m.name for m in models}) < len(models):
        raise UsageError("the two checkpoints have the same name: give --name A --name B")
    provider = None
    if args.prior != "none" and any(m.uses_guidance for m in models):
        from .registry import PRIOR_PROVIDERS

        if args.prior not in ("standin", "mllm-sam2"):
            raise UsageError(
                f"--prior {args.prior}: serve needs a provider that reads any image (standin, mllm-sam2); "
                "simulated and files need a dataset's samples"
            )
        provider = PRIOR_PROVIDERS.get(args.prior)(args, None)
        print(f"guidance 'prior': the {args.prior} provider")
    from .serve.app import serve

    print(f"serving on http://{args.host}:{args.port} (Ctrl-C stops)")
    if not args.max_upload_mb > 0:
        raise UsageError(f"--max-upload-mb must be > 0, got {args.max_upload_mb}")
    serve(
        Session(models, provider),
        args.host,
        args.port,
        examples_manifest=args.examples,
        max_upload_mb=args.max_upload_mb,
    )
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .engine.plot_run import plot_run

    out = plot_run(args.run, args.out)
    print(f"curves of {args.run} -> {out}")
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


def cmd_experiment_run(args: argparse.Namespace) -> int:
    from .experiment.grid import Grid
    from .experiment.runner import Runner, check_paths, describe

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
    from .report.build import build_report
    from .utils.devices import best_device

    out = build_report(
        args.grid_dir, args.out, qualitative=args.qualitative, seed=args.seed, device=best_device(args.device)
    )
    print(f"report -> {out}/report.md, {out}/report.html")
    return 0


def _prior_samples(args: argparse.Namespace, ds) -> list[int]:
    from .data.dataset import train_records
    from .data.splits import make_split

    recs = ds.samples(args.split)
    if args.subset != "all":
        if args.split != "train":
            raise UsageError("--subset labeled/unlabeled applies to the train split")
        lab, unl = train_records(ds, make_split(ds.name, ds.image_ids("train"), args.label_fraction, args.split_seed))
        recs = lab if args.subset == "labeled" else unl
    return [r.sample_id for r in recs]


def cmd_priors_generate(args: argparse.Namespace) -> int:
    from .registry import PRIOR_PROVIDERS

    ds = _open_dataset(args)

    name = args.provider
    if name == "auto":  # SynthRef: the learned prior of the pretraining world; elsewhere the labelled simulation
        name = "standin" if ds.name == "synthref" else "simulated"
    provider = PRIOR_PROVIDERS.get(name)(args, ds)
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

    from .data.dataset import train_records
    from .engine.trainer import text_strong_augmenter
    from .registry import METHODS

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
    from .priors.base import PriorInput
    from .priors.store import PriorStore

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
    from .priors.evaluate import evaluate_priors
    from .priors.store import PriorStore

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
    from .priors.show import save_prior_grid
    from .priors.store import PriorStore

    ds = _open_dataset(args)
    store = PriorStore(args.priors)
    store.check_dataset(ds)
    out = save_prior_grid(store, ds, args.out, args.n, args.seed)
    print(f"prior grid -> {out}")
    return 0


def cmd_pretrain_visual(args: argparse.Namespace) -> int:
    """Train the conv encoder on the pretraining pool and write a model folder (or check one)."""
    from .config import load_config
    from .pretrain.visual import VisualPretrainConfig, pretrain_visual, rebuild_check, resolve_visual_path

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
    from .config import load_config
    from .pretrain.targets import TARGETS

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


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="l2l", description="Label-efficient referring expression segmentation.")
    ap.add_argument("--version", action="version", version=f"l2l {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

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
    from .registry import PRIOR_PROVIDERS

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

    pris = sub.add_parser(
        "pseudo-ris", help="Pseudo-RIS: pseudo (mask, caption) supervision without labels"
    ).add_subparsers(dest="pseudo_ris_command", required=True)
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
    p.set_defaults(func=cmd_pseudo_ris_generate)
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
    p.set_defaults(func=cmd_pseudo_ris_baseline)
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
    p.set_defaults(func=cmd_pseudo_ris_quality)
    p = pris.add_parser("show", help="PNG: masks with their kept and rejected captions and scores")
    p.add_argument("folder", help="a pseudo-ris generate --out folder")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--num-images", dest="images", type=_positive_int, default=4, help="images shown (default 4)")
    p.add_argument("--images", dest="images", type=_positive_int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=seed_int, default=0, help="which images (seeded choice)")
    p.set_defaults(func=cmd_pseudo_ris_show)
    _add_table_parser(
        pris,
        "pseudo-ris",
        "L2L's Table 2 layout and Pseudo-RIS's Tables 5 / 6",
        "docs/results/pseudo_ris",
        "scripts/pseudo_ris_table.sh",
    )

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

    lab = sub.add_parser(
        "label", help="an active labeling loop: rank what to annotate, accept or correct with clicks, train, repeat"
    ).add_subparsers(dest="label_command", required=True)
    p = lab.add_parser("init", help="a label project over a dataset's training refs, or over a photo folder")
    p.add_argument("project", help="project folder (new)")
    p.add_argument("--data", default=None, help="a SynthRef folder or REFER data root (with --dataset)")
    p.add_argument("--dataset", default=None, help="refcoco | refcoco+ | refcocog (REFER layout); default: SynthRef")
    p.add_argument("--split-by", default=None, help="unc | google | umd (REFER); default: the dataset's first")
    p.add_argument("--image-dir", default=None, help="COCO train2014 image folder (REFER); default under the root")
    p.add_argument("--images", default=None, help="a folder of photos (with --sentences)")
    p.add_argument("--sentences", default=None, help="JSON lines {image, sentence[, object]} or IMAGE<TAB>SENTENCE")
    p.set_defaults(func=cmd_label)
    p = lab.add_parser("status", help="counts: tasks answered, images labeled, clicks, time spent")
    p.add_argument("project")
    p.set_defaults(func=cmd_label)
    p = lab.add_parser("serve", help="the labeling page (Gradio): accept, reject, skip, correct with clicks")
    p.add_argument("project")
    p.add_argument(
        "--mask-model",
        default="builtin:synthpool-sam",
        help="promptable mask model (a SAM2 folder, or builtin:synthpool-sam, the stand-in; default)",
    )
    p.add_argument("--priors", default=None, help="prior store of the source's training split: the start mask")
    p.add_argument("--model", default=None, help="a run or model folder: its mask is the start where no prior is")
    p.add_argument("--port", type=int, default=7861, help="port (default 7861)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--device", default="cpu", help="device of --model (default cpu)")
    p.set_defaults(func=cmd_label)
    from .label.strategies import STRATEGIES

    p = lab.add_parser("rank", help="order the unlabeled images by a strategy (writes PROJECT/queue.json)")
    p.add_argument("project")
    p.add_argument("--model", required=True, help="a run or model folder (the current model)")
    p.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="disagreement",
        help="what to annotate first (docs/labeling.md; default disagreement)",
    )
    p.add_argument("--k", type=_positive_int, default=8, help="images to put first (default 8)")
    p.add_argument("--priors", default=None, help="prior store of the training split (disagreement, rple-state)")
    p.add_argument("--seed", type=seed_int, default=0, help="the random strategy's order")
    p.add_argument("--device", default="cpu", help="device of --model (default cpu)")
    p.set_defaults(func=cmd_label)
    p = lab.add_parser("train", help="one round: train on what is labeled, record the val oIoU, rank the next images")
    p.add_argument("project")
    p.add_argument("--config", default=None, help="training config (e.g. configs/synthref_supervised.yaml)")
    p.add_argument("--method", default=None, help="method (default: the config's)")
    p.add_argument("--out", required=True, help="run folder of this round")
    p.add_argument("--strategy", choices=STRATEGIES, default=None, help="rank the next images with the new model")
    p.add_argument("--k", type=_positive_int, default=8, help="with --strategy: images to put first (default 8)")
    p.add_argument("--priors", default=None, help="with --strategy: prior store of the training split")
    p.add_argument("overrides", nargs="*", help="key.path=value config overrides")
    p.set_defaults(func=cmd_label)

    p = _with_examples(sub, "serve", "a web page to try one or two models on an image and a sentence (Gradio)")
    p.add_argument("--ckpt", action="append", default=None, help="run folder or model folder; twice: side by side")
    p.add_argument("--run", action="append", dest="ckpt", help=argparse.SUPPRESS)
    p.add_argument("--name", action="append", default=None, help="display name of each --ckpt (default: folder name)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all)")
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=50.0,
        help="largest upload the page accepts, in MB (default 50); an upload is deleted once read",
    )
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one) | cpu | cuda | cuda:N")
    p.add_argument(
        "--prior",
        default="none",
        help="prior provider for guidance 'prior' on SESM models: none (default) | standin | mllm-sam2",
    )
    p.add_argument("--mllm", default=None, help="with --prior mllm-sam2: local Qwen2.5-VL folder")
    p.add_argument("--sam2", default=None, help="with --prior mllm-sam2: local SAM2 folder")
    p.add_argument("--max-new-tokens", type=int, default=64, help="with --prior mllm-sam2: grounder answer length")
    p.add_argument(
        "--domain-images",
        default=None,
        help="folder of training-domain images for the domain check (default: the model folder's domain.json, "
        "else the run's training data)",
    )
    p.add_argument(
        "--examples",
        default=None,
        help="more examples for the page: a manifest as for l2l predict --manifest (image, text per line)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("plot", help="PNG of a run's curves: losses, validation, prior quality, pseudo-labels, RPLE")
    p.add_argument("run", help="run folder (with metrics.jsonl)")
    p.add_argument("--out", default=None, help="PNG path (default RUN/curves.png)")
    p.set_defaults(func=cmd_plot)

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
    from .pretrain.targets import TARGETS

    for name, target in TARGETS.items():
        p = pre.add_parser(name, help=f"train the {target.what} on the pretraining pool (docs/foundation.md)")
        p.add_argument("--out", required=True, help="model folder to write (config.json, model.safetensors, card)")
        p.add_argument("--config", default=None, help="YAML of the training config's fields")
        p.add_argument("--steps", type=int, default=None, help="training steps (default: the config's)")
        p.add_argument("--force", action="store_true", help="train again into a folder that has a card")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train_images=2000 model.dim=64")
        p.set_defaults(func=cmd_pretrain_foundation)

    p = sub.add_parser("demo", help="the main job on SynthRef (resumable)")
    p.add_argument(
        "--workdir", default="runs/demo", help="folder for the data, priors, run and prediction (default runs/demo)"
    )
    p.add_argument(
        "--num-images", dest="images", type=int, default=2000, help="SynthRef images to generate (default 2000)"
    )
    p.add_argument("--images", dest="images", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument(
        "--prior",
        default="standin",
        choices=["standin", "simulated"],
        help="prior P†: standin (learned: grounder → mask model, the default) or simulated (a noise model of the "
        "ground truth, for controlled studies)",
    )
    p.add_argument("--label-fraction", dest="fraction", type=_fraction, default="5%", help="label budget (default 5%%)")
    p.add_argument("--split-seed", dest="seed", type=int, default=22, help="seed of the label split (default 22)")
    _old_split_spellings(p)
    p.add_argument("--workers", type=int, default=None, help="generator worker processes (default: the CPU count)")
    p.add_argument(
        "--config", default="configs/synthref_l2l.yaml", help="training config (default configs/synthref_l2l.yaml)"
    )
    p.add_argument("overrides", nargs="*", help="dotted overrides of the training config")
    p.set_defaults(func=cmd_demo)
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
    from .errors import L2LError
    from .utils import threads

    argv = list(sys.argv[1:] if argv is None else argv)
    from .utils.lock import die_with_parent

    die_with_parent()  # a child of the grid runner dies with it (nothing otherwise)
    with threads.restored():  # a call from Python (tests, notebooks) leaves the caller's settings as they were
        try:  # before torch is imported: the OpenMP runtime reads its settings when it starts
            threads.prepare_environment(threads.threads_from_argv(argv))
        except L2LError as e:
            print(f"l2l: error: {e}", file=sys.stderr)
            return 2
        return _run(build_parser().parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    from .errors import L2LError
    from .utils import threads
    from .utils.progress import quiet_libraries

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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
