"""``l2l serve``: the page that tries one or two models."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import UsageError
from .common import _with_examples


def cmd_serve(args: argparse.Namespace) -> int:
    from ..serve.session import ServedModel, Session

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
        from ..priors.providers import build_provider
        from ..registry import PRIOR_PROVIDERS

        if args.prior not in ("standin", "mllm-sam2"):
            raise UsageError(
                f"--prior {args.prior}: serve needs a provider that reads any image (standin, mllm-sam2); "
                "simulated and files need a dataset's samples"
            )
        provider = build_provider(PRIOR_PROVIDERS.get(args.prior), args.prior, vars(args), (), None)
        print(f"guidance 'prior': the {args.prior} provider")
    from ..serve.app import serve

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


def add_parsers(sub: Any) -> None:
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
