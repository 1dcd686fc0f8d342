"""``l2l demo``: the main job on SynthRef, end to end (resumable)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ..utils.run_folder import RunFolder
from .common import _fraction, _old_split_spellings, _read_image
from .priors import _eda_pools_beside, _generate_priors, _generate_priors_beside
from .runs import _predict_to_files


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on SynthRef: data, priors, L2L training, evaluation, plots. Every step skips
    work that is already done, and training resumes from its last checkpoint."""

    from ..config import load_config
    from ..data.preview import save_preview
    from ..data.refer import ReferDataset
    from ..data.splits import LabelSplit, make_split, split_filename
    from ..data.stats import dataset_stats, format_stats
    from ..data.synthref import SynthRefConfig, generate
    from ..engine.plot_run import plot_run
    from ..engine.trainer import TrainConfig, Trainer

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
        from ..priors.standin import build

        print(
            "      provider: standin — the pretraining world's grounder → box → mask model (stand-ins for an "
            "MLLM and SAM2, docs/foundation.md)"
        )
        provider = build()
    else:
        from ..priors.simulated import WARNING, SimulatedConfig, SimulatedProvider

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
    r = res["results"] or json.loads(RunFolder(run).eval_file(cfg.data.eval_split).read_text())
    print(
        f"[6/7] {cfg.data.eval_split}: oIoU {100 * r['oIoU']:.1f} %  mIoU {100 * r['mIoU']:.1f} %  "
        f"P@0.5 {100 * r['P@0.5']:.1f} %"
    )
    print(f"      curves (losses, prior quality, pseudo-labels, RPLE) -> {plot_run(run)}")
    from ..models.segmenter import Segmenter
    from ..report.qualitative import fixed_samples_figure

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


def add_parsers(sub: Any) -> None:
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
