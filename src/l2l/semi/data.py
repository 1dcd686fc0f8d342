"""The data of the weak-to-strong self-training methods (``SelfTrainingMethod.datasets``).

A self-training method owns what it trains on beyond the labeled samples (issue 35 step 5): the
prior store at ``semi.priors`` (checked against the dataset and the unlabeled samples), the
labeled samples' prior guidance when the model takes it, and the unlabeled samples with their
priors and the strong text view (EDA pools, built once and cached in the user cache). The trainer
only asks :meth:`~l2l.engine.method.Method.datasets` and streams what comes back.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

from ..data.dataset import LabeledRefDataset, UnlabeledRefDataset
from ..data.refer import ReferDataset, SampleRecord
from ..engine.method import DataContext, MethodData
from ..errors import MissingFileError, UsageError
from ..priors.store import PriorStore
from ..schema import DataConfig
from ..utils.io import user_cache_dir


def text_strong_augmenter(cfg: DataConfig, ds: ReferDataset, sentences: Sequence[str], announce: bool = True):
    """The EDA augmenter of a run on ``ds`` with the pools of ``sentences`` built (once: they are cached in
    ``data.eda_cache``, by default ``<user cache>/eda/eda_pools_<dataset>.json`` — :func:`user_cache_dir`,
    never the dataset's folder, which may be read-only — and read from there)."""
    from ..data.text_augment import SentenceEncoder, TextStrongAugmenter

    cache = (
        Path(cfg.eda_cache)
        if cfg.eda_cache
        else user_cache_dir() / "eda" / f"eda_pools_{ds.name.replace('/', '_')}.json"
    )
    aug = TextStrongAugmenter(SentenceEncoder(), cache_file=cache)
    missing = aug.missing(sentences)
    if missing:
        if announce:
            print(f"building EDA pools for {missing} sentences (once; cached in {cache})", flush=True)
        aug.precompute(sentences)
    return aug


def open_prior_store(
    method: Any, ds: ReferDataset, unlabeled: Sequence[SampleRecord], data_root: str, is_main: bool
) -> PriorStore | None:
    """The prior store at ``method.priors_path``; None when there is none and the method needs none."""
    path = method.priors_path
    if not path:
        if method.needs_priors:
            raise UsageError(
                f"method {method.name!r} uses priors: set semi.priors=FOLDER, a store made with "
                f"`l2l priors generate --data {data_root} --out FOLDER`"
            )
        return None
    if not (Path(path) / "store.json").exists():
        raise MissingFileError(
            f"semi.priors={path}: no prior store there; make one with `l2l priors generate --data {data_root} --out {path}`"
        )
    store = PriorStore(path)
    store.check_dataset(ds)
    missing = sum(1 for r in unlabeled if r.sample_id not in store.entries())
    if unlabeled and missing == len(unlabeled) and method.needs_priors:
        raise UsageError(
            f"semi.priors={path} holds no prior of any of the {len(unlabeled)} unlabeled samples "
            f"(made for another split?): make them with `l2l priors generate --data {data_root} "
            f"--subset all --out {path}`"
        )
    if missing and is_main:
        warnings.warn(
            f"{missing} of {len(unlabeled)} unlabeled samples have no prior in {path}; "
            "they train on the weak prediction alone",
            stacklevel=2,
        )
    return store


def self_training_data(method: Any, ctx: DataContext) -> MethodData:
    """Labeled samples (with prior guidance when the model takes it) and unlabeled samples with their
    priors and strong text view; the store goes to the method's ``setup``."""
    store = open_prior_store(method, ctx.dataset, ctx.unlabeled, ctx.data.root, ctx.info.is_main)
    lookup = store.get if store is not None else None
    guided = lookup if getattr(ctx.model, "uses_guidance", False) else None
    labeled = LabeledRefDataset(ctx.dataset, ctx.labeled, ctx.aug, seed=ctx.seed, prior_lookup=guided)
    text_strong = (
        text_strong_augmenter(ctx.data, ctx.dataset, [r.sentence for r in ctx.unlabeled], ctx.info.is_main)
        if ctx.data.strong_text
        else None
    )
    unlabeled = UnlabeledRefDataset(
        ctx.dataset, ctx.unlabeled, ctx.aug, seed=ctx.seed, prior_lookup=lookup, text_strong=text_strong
    )
    return MethodData(labeled, unlabeled, store, {"priors": str(store.root) if store is not None else None})
