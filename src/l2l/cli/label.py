"""``l2l label``: the active labeling loop (docs/labeling.md)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .common import _positive_int, seed_int


def cmd_label(args: argparse.Namespace) -> int:
    from ..label import commands
    from ..label.project import LabelProject

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
        from ..foundation.loaders import load_mask_model
        from ..label.page import serve
        from ..label.session import LabelTab
        from ..models.predictor import SegmenterPredictor
        from ..priors.store import PriorStore

        masker = load_mask_model(args.mask_model)  # the stand-in or a SAM2 folder
        store = PriorStore(args.priors) if args.priors else None
        model = SegmenterPredictor.from_pretrained(args.model, args.device, domain_check=False) if args.model else None
        serve(lambda: LabelTab(project, masker, store, model), args.host, args.port)
    return 0


def add_parsers(sub: Any) -> None:
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
    from ..label.strategies import STRATEGIES

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
