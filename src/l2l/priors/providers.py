"""Factories of the prior providers that ``l2l priors generate --provider NAME`` can build.

Each is registered in :data:`l2l.registry.PRIOR_PROVIDERS` and called as ``factory(args, ds)``
with the command's parsed arguments and the opened dataset; a missing argument is a
:class:`~l2l.errors.UsageError` naming the option. Adding a provider (CONTRIBUTING.md): a class
with ``generate(inputs) -> records`` (:class:`~l2l.priors.base.PriorProvider`), a factory here or
in your package, and ``PRIOR_PROVIDERS.register(name, "module:factory")``.
"""

from __future__ import annotations

import argparse

from ..data.refer import ReferDataset
from ..errors import UsageError
from ..utils.devices import best_device


def simulated(args: argparse.Namespace, ds: ReferDataset):
    from .simulated import WARNING, SimulatedConfig, SimulatedProvider

    print(f"provider: simulated — {WARNING}")
    return SimulatedProvider(ds, SimulatedConfig(seed=args.seed))


def teacher(args: argparse.Namespace, ds: ReferDataset):
    if not args.ckpt:
        raise UsageError("--provider teacher needs --ckpt RUN (a trained l2l run or model folder)")
    from .teacher import TeacherProvider

    return TeacherProvider(args.ckpt, args.guidance, best_device(getattr(args, "device", "auto")))


def files(args: argparse.Namespace, ds: ReferDataset):
    if not args.folder:
        raise UsageError("--provider files needs --folder DIR of <sample_id>.png/.npy maps")
    from .files import FilesProvider

    return FilesProvider(args.folder, args.cues)


def mllm_sam2(args: argparse.Namespace, ds: ReferDataset):
    if not (args.mllm and args.sam2):
        raise UsageError("--provider mllm-sam2 needs --mllm QWEN_FOLDER and --sam2 SAM2_FOLDER (local HF folders)")
    from ..foundation.loaders import load_grounder, load_mask_model
    from .mllm_sam2 import MLLMSam2Provider

    dev = best_device(getattr(args, "device", "auto"))
    return MLLMSam2Provider(
        load_grounder(args.mllm, dev, max_new_tokens=args.max_new_tokens),  # Qwen2.5-VL or a stand-in folder
        load_mask_model(args.sam2, dev),  # SAM2 (a Hugging Face folder) or a stand-in folder
    )


def standin(args: argparse.Namespace, ds: ReferDataset):
    """The learned prior: the pretraining world's grounder → box → mask model (docs/foundation.md)."""
    from .standin import DEFAULT_GROUNDER, DEFAULT_MASK_MODEL, build

    grounder = getattr(args, "grounder", None) or DEFAULT_GROUNDER
    mask_model = getattr(args, "mask_model", None) or DEFAULT_MASK_MODEL
    print(f"provider: standin — grounder {grounder}, mask model {mask_model} (stand-ins, not an MLLM and SAM2)")
    return build(grounder, mask_model, best_device(getattr(args, "device", "auto")))
