"""The one trainer (spec §6). Methods are strategy objects with ``loss(model, labeled, unlabeled)``.

Recipe: AdamW, polynomial decay ``lr_t = lr · (1 − t/T)^0.9`` over the whole run (T = epochs ×
steps per epoch), optional gradient clipping, bf16 autocast on GPU (off on CPU), optional
channels-last and ``torch.compile``. ``batch_size`` is per process; the global batch is
``batch_size × world_size`` (both are logged).

Everything needed to continue is checkpointed every ``ckpt_every`` steps and at each epoch
end: weights (safetensors), optimizer, step, epoch, position in the epoch, and the RNG
states of every rank. ``fit(resume=True)`` continues from the newest checkpoint and gives
the same weights as a run that was never interrupted (tested). Data order does not depend
on any RNG state: batches come from a permutation of ``(seed, epoch)`` and augmentations
from ``(seed, epoch, sample index)``.

A run directory holds: ``config.yaml`` (resolved), ``env.json``, ``label_split.json``,
``checkpoints/``, ``metrics.jsonl``, ``tb/`` (TensorBoard), ``best/`` and ``last/``
(``Segmenter.save_pretrained`` folders) and ``eval_<split>.json``.
"""
from __future__ import annotations

import json
import os
import platform
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import dump_config
from ..data.augment import WeakAugConfig
from ..data.dataset import (HiddenMasks, LabeledRefDataset, UnlabeledRefDataset, collate_labeled, collate_unlabeled,
                            seed_worker, train_records)
from ..data.refer import ReferDataset
from ..data.splits import make_split
from ..models.segmenter import ModelConfig, Segmenter
from ..utils.io import atomic_write_text
from ..utils.progress import progress
from . import checkpoint as ckpt
from ..semi.methods.selftrain import PRESETS, SelfTrainingMethod, SemiConfig, StepContext
from ..semi.telemetry import Telemetry
from .distributed import DistInfo, all_gather_objects, init_distributed
from .stream import StepStream, identity
from .evaluate import evaluate_records


@dataclass
class DataConfig:
    root: str = "runs/data/synthref"  # a SynthRef folder, or the REFER data root with `dataset`
    dataset: str | None = None  # None = SynthRef; refcoco | refcoco+ | refcocog
    split_by: str | None = None
    image_dir: str | None = None
    label_fraction: str = "100%"  # share of training images that keep their masks
    split_seed: int = 22
    size: int = 128  # training resolution (the paper's: 480)
    scale_range: tuple[float, float] = (1.0, 1.0)
    hflip_prob: float = 0.5
    workers: int = 2
    eval_split: str = "val"
    eval_resolution: str = "original"  # original | train
    eval_max_samples: int | None = None  # evaluate on the first N samples only (quick runs)
    strong_text: bool = True  # EDA strong sentence for unlabeled samples (spec §2)
    eda_cache: str | None = None  # EDA pool cache file; None = <root>/cache/eda_pools_<dataset>.json


@dataclass
class OptimConfig:
    lr: float = 5e-5  # [ours: LAVT]
    weight_decay: float = 1e-2  # [ours: LAVT]
    poly_power: float = 0.9  # [paper: polynomial decay]
    grad_clip: float = 0.0  # 0 = off
    visual_lr_scale: float = 1.0  # [ours] lr of the visual encoder = lr × this (a pretrained encoder: < 1)


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    method: str = "supervised"
    epochs: int = 40  # [paper]
    total_steps: int | None = None  # a step budget instead of epochs (same updates at every label fraction)
    batch_size: int = 4  # per process [paper: 4 per GPU on 4 GPUs]
    seed: int = 22  # [paper]
    device: str = "auto"  # auto | cpu | cuda
    amp: str = "auto"  # auto (bf16 on GPU, off on CPU) | bf16 | off
    channels_last: bool = False
    compile: bool = False
    eval_every: int = 1  # epochs; 0 = only at the end
    ckpt_every: int = 500  # steps
    keep_last: int = 2
    log_every: int = 20  # steps
    max_steps: int | None = None  # stop after this many steps (the schedule still spans all epochs)
    telemetry_every: int = 1  # steps between telemetry visits (0 = off); hidden masks, never the loss
    telemetry_log_every: int = 0  # steps between telemetry records; 0 = one per epoch (Fig. 9)
    semi: SemiConfig = field(default_factory=SemiConfig)


METHODS = ("supervised", *PRESETS)


def build_method(cfg: "TrainConfig"):
    """The strategy object of ``cfg.method`` (supervised, or a self-training preset)."""
    from ..semi.methods.supervised import SupervisedMethod

    if cfg.method == "supervised":
        return SupervisedMethod()
    if cfg.method not in PRESETS:
        raise ValueError(f"unknown method {cfg.method!r}; available: {', '.join(METHODS)}")
    return SelfTrainingMethod(cfg.method, cfg.semi)


def param_groups(model: Segmenter, visual_lr_scale: float) -> list[dict[str, Any]]:
    """Trainable parameters; the visual encoder's in a group of its own when its lr is scaled."""
    train = [p for p in model.parameters() if p.requires_grad]
    if visual_lr_scale == 1.0:
        return [{"params": train}]
    vis = {id(p) for p in model.visual.parameters()}
    return [{"params": [p for p in train if id(p) in vis], "lr_scale": visual_lr_scale},
            {"params": [p for p in train if id(p) not in vis], "lr_scale": 1.0}]


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device cuda requested but no GPU is available")
    return device


def open_dataset(cfg: DataConfig) -> ReferDataset:
    return ReferDataset.open(cfg.root, cfg.dataset, cfg.split_by, cfg.image_dir)


class Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: str | Path, show_progress: bool = True):
        self.cfg, self.run_dir, self.show_progress = cfg, Path(run_dir), show_progress
        self.device = resolve_device(cfg.device)
        self.info = init_distributed(self.device)

    # ------------------------------------------------------------------ helpers
    def _log(self, record: dict[str, Any]) -> None:
        if not self.info.is_main:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(k, v, record["step"])

    def _save(self, model, opt, method, extra: dict[str, Any]) -> None:
        rngs = all_gather_objects(ckpt.rng_state(), self.info)
        method.flush()
        if self.info.enabled:
            torch.distributed.barrier()  # every rank's bank rows are on disk
        if self.info.is_main:
            ckpt.save(self.run_dir / "checkpoints", extra["step"], model, opt,
                      extra={**extra, "rng_per_rank": rngs, "method": method.state_dict()},
                      meta={"epoch": extra["epoch"], "method": getattr(method, "name", "")}, files=method.save_files)
            ckpt.prune(self.run_dir / "checkpoints", self.cfg.keep_last)
        if self.info.enabled:
            torch.distributed.barrier()

    def _amp(self):
        use = self.cfg.amp == "bf16" or (self.cfg.amp == "auto" and self.device.startswith("cuda"))
        return torch.autocast(device_type="cuda" if self.device.startswith("cuda") else "cpu",
                              dtype=torch.bfloat16, enabled=use)

    # ------------------------------------------------------------------ main loop
    def fit(self, resume: bool = True) -> dict[str, Any]:
        cfg, info = self.cfg, self.info
        self.run_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)

        ds = open_dataset(cfg.data)
        split = make_split(ds.name, ds.image_ids("train"), cfg.data.label_fraction, cfg.data.split_seed)
        labeled, unlabeled = train_records(ds, split)
        method = build_method(cfg)
        model = Segmenter(cfg.model).to(self.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if getattr(model.text, "frozen", False) and getattr(model.text, "use_cache", False):
            from ..data.text_augment import flip_directions
            model.text.precompute([t for r in labeled for t in (r.sentence, flip_directions(r.sentence))])
        semi = getattr(method, "needs_unlabeled", False)
        store = self._prior_store(method, model, unlabeled) if semi else None
        aug = WeakAugConfig(size=cfg.data.size, hflip_prob=cfg.data.hflip_prob, scale_range=tuple(cfg.data.scale_range))
        lab_lookup = store.get if (store is not None and model.uses_guidance) else None
        train_ds = LabeledRefDataset(ds, labeled, aug, seed=cfg.seed, prior_lookup=lab_lookup)
        unl_ds = None
        if semi:
            unl_ds = UnlabeledRefDataset(ds, unlabeled, aug, seed=cfg.seed,
                                         prior_lookup=store.get if store is not None else None,
                                         text_strong=self._text_strong(ds, unlabeled))
        b_u = cfg.semi.unlabeled_batch_size or cfg.batch_size
        stream = StepStream(train_ds, unl_ds, cfg.batch_size, b_u, info, cfg.seed, collate_labeled, collate_unlabeled)
        steps_per_epoch = stream.steps_per_epoch
        if cfg.total_steps:
            total, epochs = cfg.total_steps, -(-cfg.total_steps // steps_per_epoch)
        else:
            total, epochs = cfg.epochs * steps_per_epoch, cfg.epochs
        opt = torch.optim.AdamW(param_groups(model, cfg.optim.visual_lr_scale), lr=cfg.optim.lr,
                                weight_decay=cfg.optim.weight_decay)

        state = {"step": 0, "epoch": 0, "best": -1.0}
        last = ckpt.latest(self.run_dir / "checkpoints") if resume else None
        method.setup(self.run_dir, [r.sample_id for r in unlabeled], store, model, info, cfg.data.size, fresh=last is None)
        if last is not None:
            loaded = ckpt.load(last, model, opt, restore_rng=False)
            extra = loaded["extra"]
            state.update({k: extra[k] for k in state})
            ckpt.set_rng_state(extra["rng_per_rank"][info.rank])
            method.load_state_dict(extra.get("method", {}))
            if info.is_main:
                method.load_files(last)
            if info.enabled:
                torch.distributed.barrier()
        else:
            torch.manual_seed(cfg.seed + info.rank)  # per-rank streams (prior dropout)

        if info.is_main:
            atomic_write_text(self.run_dir / "config.yaml", dump_config(cfg))
            split.save(self.run_dir / "label_split.json")
            env = {"torch": torch.__version__, "python": platform.python_version(), "device": self.device,
                   "world_size": info.world, "batch_per_process": cfg.batch_size,
                   "global_batch": cfg.batch_size * info.world, "steps_per_epoch": steps_per_epoch,
                   "total_steps": total, "labeled_samples": len(labeled), "unlabeled_samples": len(unlabeled),
                   "dataset": ds.name, "method": method.settings(), "resumed_from": str(last) if last else None}
            if semi:
                env["unlabeled_batch_per_process"] = b_u
                env["priors"] = str(store.root) if store is not None else None
            atomic_write_text(self.run_dir / "env.json", json.dumps(env, indent=2, default=str))
        from torch.utils.tensorboard import SummaryWriter
        self.tb = SummaryWriter(str(self.run_dir / "tb")) if info.is_main else None
        tele = Telemetry(HiddenMasks(ds)) if semi else None

        net = model
        if info.enabled:
            net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[info.local_rank] if self.device.startswith("cuda") else None)
        if cfg.compile:
            net = torch.compile(net)

        model.train()
        t0, seen = time.perf_counter(), 0
        bar = progress(None, total=total, desc=f"train {cfg.method}", disable=not (self.show_progress and info.is_main),
                       initial=state["step"])
        results: dict[str, Any] = {}
        end = min(total, cfg.max_steps) if cfg.max_steps is not None else total
        loader = DataLoader(stream, batch_size=None, sampler=range(state["step"], end), collate_fn=identity,
                            num_workers=cfg.data.workers, worker_init_fn=seed_worker,
                            persistent_workers=False, prefetch_factor=4 if cfg.data.workers > 0 else None)
        step_time = 0.0
        for lab, unl in loader:
            ts = time.perf_counter()
            state["epoch"] = state["step"] // steps_per_epoch
            lr = cfg.optim.lr * (1 - state["step"] / total) ** cfg.optim.poly_power
            for g in opt.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)
            ctx = StepContext(state["step"], state["epoch"], self.device, cfg.seed, info)
            # every random draw of a step (prior dropout, …) is a function of (seed, step, rank), so a
            # resumed run repeats it whatever else touched the global generator (e.g. loader start-up)
            torch.manual_seed((cfg.seed * 1_000_003 + state["step"]) * 1_009 + info.rank)
            with self._amp():
                loss, logs, visit = method.loss(net, lab, unl, ctx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.grad_clip > 0:
                logs["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip))
            opt.step()
            step_time += time.perf_counter() - ts
            if tele is not None and visit is not None and cfg.telemetry_every > 0 \
                    and state["step"] % cfg.telemetry_every == 0:
                tele.add(visit)  # hidden masks: outside the loss, after the update
            state["step"] += 1
            seen += (lab.images.shape[0] + (unl.images.shape[0] if unl is not None else 0)) * info.world
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", lr=f"{lr:.2e}", refresh=False)
            if state["step"] % cfg.log_every == 0:
                dt = time.perf_counter() - t0
                self._log({"step": state["step"], "epoch": state["epoch"], "lr": lr, "loss": float(loss.detach()),
                           **logs, "samples_per_s": seen / dt if dt > 0 else 0.0,
                           "step_seconds": step_time / cfg.log_every})
                step_time = 0.0
            epoch_end = state["step"] % steps_per_epoch == 0 or state["step"] >= total
            tele_due = epoch_end if cfg.telemetry_log_every <= 0 else \
                (state["step"] % cfg.telemetry_log_every == 0 or state["step"] >= total)
            if epoch_end:
                state["epoch"] = -(-state["step"] // steps_per_epoch)
            if tele_due and tele is not None:
                summ = tele.summary(info)
                if summ:
                    self._log({"step": state["step"], "epoch": state["epoch"], "kind": "telemetry", **summ})
                    if self.tb is not None:
                        for k in ("tau_fg", "tau_bg"):
                            if tele.values(k):
                                self.tb.add_histogram(f"tele_{k}", torch.tensor(tele.values(k)), state["step"])
                tele.reset()
            if epoch_end:
                final = state["step"] >= total
                if final or (cfg.eval_every > 0 and state["epoch"] % cfg.eval_every == 0):
                    results = self.evaluate(model, ds)
                    score = results["oIoU"]
                    self._log({"step": state["step"], "epoch": state["epoch"],
                               **{f"val_{k}": v for k, v in results.items() if isinstance(v, float)}})
                    if score > state["best"]:
                        state["best"] = score
                        if info.is_main:
                            model.save_pretrained(self.run_dir / "best")
                model.train()
            if epoch_end or state["step"] % cfg.ckpt_every == 0 or state["step"] >= end:
                self._save(model, opt, method, dict(state))
        bar.close()
        eval_file = self.run_dir / f"eval_{cfg.data.eval_split}.json"
        if not results and state["step"] >= total and not eval_file.exists():
            results = self.evaluate(model, ds)  # the run ended before its final evaluation: do it now
        if info.is_main:
            model.save_pretrained(self.run_dir / "last")
            if not (self.run_dir / "best").exists():
                model.save_pretrained(self.run_dir / "best")
            if results:
                atomic_write_text(eval_file, json.dumps(results, indent=2))
        if self.tb is not None:
            self.tb.close()
        self.model = model
        return {"state": state, "results": results, "train_seconds": time.perf_counter() - t0,
                "samples_per_s": seen / max(time.perf_counter() - t0, 1e-9)}

    def _prior_store(self, method, model, unlabeled):
        """The prior store of ``semi.priors``; None when the method needs no prior."""
        from ..priors.store import PriorStore

        path = self.cfg.semi.priors
        needs = method.cfg.uses_prior
        if not path:
            if needs:
                raise ValueError(f"method {method.name!r} uses priors: set semi.priors=FOLDER, a store made with "
                                 f"`l2l priors generate --data {self.cfg.data.root} --out FOLDER`")
            return None
        if not (Path(path) / "store.json").exists():
            raise FileNotFoundError(f"semi.priors={path}: no prior store there; make one with "
                                    f"`l2l priors generate --data {self.cfg.data.root} --out {path}`")
        store = PriorStore(path)
        missing = sum(1 for r in unlabeled if r.sample_id not in store.entries())
        if missing and self.info.is_main:
            import warnings
            warnings.warn(f"{missing} of {len(unlabeled)} unlabeled samples have no prior in {path}; "
                          "they train on the weak prediction alone")
        return store

    def _text_strong(self, ds: ReferDataset, unlabeled):
        """The strong text view (EDA pools, cached next to the data); None when disabled."""
        if not self.cfg.data.strong_text:
            return None
        from ..data.text_augment import SentenceEncoder, TextStrongAugmenter

        cache = Path(self.cfg.data.eda_cache) if self.cfg.data.eda_cache else \
            Path(self.cfg.data.root) / "cache" / f"eda_pools_{ds.name.replace('/', '_')}.json"
        aug = TextStrongAugmenter(SentenceEncoder(), cache_file=cache)
        todo = [r.sentence for r in unlabeled]
        missing = aug.missing(todo)
        if missing:
            if self.info.is_main:
                print(f"building EDA pools for {missing} sentences (once; cached in {cache})", flush=True)
            aug.precompute(todo)
        return aug

    def evaluate(self, model, ds: ReferDataset) -> dict[str, Any]:
        recs = ds.samples(self.cfg.data.eval_split)
        if self.cfg.data.eval_max_samples:
            recs = recs[: self.cfg.data.eval_max_samples]
        return evaluate_records(model, ds, recs, self.cfg.data.size, self.device, self.info,
                                resolution=self.cfg.data.eval_resolution, show_progress=self.show_progress)
