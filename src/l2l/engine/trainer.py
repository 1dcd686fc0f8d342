"""The one trainer (docs/spec.md §6). It knows methods only through the :class:`~l2l.engine.method.Method`
protocol (built by name from :data:`l2l.registry.METHODS`) and models only through
:data:`l2l.registry.MODELS`; it imports no method. ``fit`` is three steps — :meth:`Trainer.prepare`
(data, method, model, optimiser, resume), :meth:`Trainer.train_step` per batch, and the hooks
after each step (the method's own, e.g. telemetry, then :class:`EvalHook` and
:class:`CheckpointHook`).

Recipe: AdamW, polynomial decay ``lr_t = lr · (1 − t/T)^0.9`` over the whole run (T = epochs ×
steps per epoch), optional gradient clipping, bf16 autocast (``amp``: utils/precision.py — on a GPU by default, on a CPU with AMX or AVX-512 BF16 when asked), optional
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
import platform
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import ConfigError, dump_config
from ..data.augment import WeakAugConfig
from ..data.dataset import (
    collate_labeled,
    collate_unlabeled,
    seed_worker,
    train_records,
)
from ..data.refer import ReferDataset, SampleRecord
from ..data.splits import resolve_split
from ..errors import ExistsError, UsageError
from ..evaluation.inference import inference_on_dataset
from ..registry import METHODS, MODELS
from ..schema import DataConfig, OptimConfig, TrainConfig
from ..utils import threads as thread_policy
from ..utils.devices import best_device
from ..utils.distributed import all_gather_objects, init_distributed
from ..utils.io import atomic_write_text
from ..utils.jsonl import append_record, keep_records
from ..utils.lock import TRAIN_LOCK, FolderLock, describe_holder, lock_problem
from ..utils.optim import param_groups as scaled_groups
from ..utils.precision import use_bf16
from ..utils.progress import progress
from ..utils.run_folder import RunFolder
from ..utils.run_paths import record_paths
from ..utils.seeding import step_seed
from . import checkpoint as ckpt
from .method import DataContext, Hook, Method, SetupContext, StepContext, StepOutput, check_method
from .stream import StepStream, identity

__all__ = [
    "Trainer",
    "TrainConfig",
    "DataConfig",
    "OptimConfig",
    "build_method",
    "param_groups",
    "open_dataset",
    "EvalHook",
    "CheckpointHook",
]


def build_method(cfg: TrainConfig) -> Method:
    """The method named by ``cfg.method`` (:data:`l2l.registry.METHODS`), checked against the protocol."""
    cls = METHODS.get(cfg.method)
    return check_method(cls.from_config(cfg, cfg.method), cfg.method)


def param_groups(
    model: torch.nn.Module, visual_lr_scale: float, text_lr_scale: float = 1.0, objects_lr_scale: float = 1.0
) -> list[dict[str, Any]]:
    """Trainable parameters; the visual encoder's (``model.visual``), the text encoder's (``model.text``) and
    the object branch's grounder (``model.objects.net``) each in a group of its own when its lr is scaled."""
    objects = getattr(model, "objects", None)
    parts = {
        "visual": getattr(model, "visual", None),
        "text": getattr(model, "text", None),
        "objects": objects.net if objects is not None else None,
    }
    scales = {"visual": visual_lr_scale, "text": text_lr_scale, "objects": objects_lr_scale}
    return scaled_groups(model, parts, scales)


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """``cfg.optimizer``: AdamW (the recipe) or plain SGD with ``cfg.momentum``, over :func:`param_groups`."""
    groups = param_groups(model, cfg.visual_lr_scale, cfg.text_lr_scale, cfg.objects_lr_scale)
    if cfg.optimizer == "adamw":
        # fused: the same update in one kernel per dtype and device [measured: docs/benchmarks.md]; the
        # checkpointed state is the same either way
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=bool(cfg.fused))
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ConfigError(f"optim.optimizer: expected adamw or sgd, got {cfg.optimizer!r}")


def open_dataset(cfg: DataConfig) -> ReferDataset:
    return ReferDataset.open(cfg.root, cfg.dataset, cfg.split_by, cfg.image_dir)


@dataclass
class TrainState:
    """Where a run is (checkpointed with every checkpoint): the number of steps taken, the epoch,
    the best validation oIoU so far."""

    KEYS: ClassVar[tuple[str, ...]] = ("step", "epoch", "best")
    step: int = 0
    epoch: int = 0
    best: float = -1.0


class EvalHook(Hook):
    """At an epoch end: evaluate on ``data.eval_split`` every ``eval_every`` epochs and at the last step;
    keep the best model in ``best/``. ``data.eval_split: none``: never (``best/`` is then the last model)."""

    def after_interval(self, trainer: "Trainer", epoch_end: bool) -> None:
        cfg, state = trainer.cfg, trainer.state
        if not epoch_end or cfg.data.eval_split == "none":
            return
        if state.step >= trainer.total or (cfg.eval_every > 0 and state.epoch % cfg.eval_every == 0):
            trainer.results = trainer.evaluate(trainer.model, trainer.dataset)
            trainer.log(
                {
                    "step": state.step,
                    "epoch": state.epoch,
                    **{f"val_{k}": v for k, v in trainer.results.items() if isinstance(v, float)},
                }
            )
            if trainer.results["oIoU"] > state.best:
                state.best = trainer.results["oIoU"]
                if trainer.info.is_main:
                    trainer.model.save_pretrained(trainer.run.best)
        trainer.model.train()


class CheckpointHook(Hook):
    """A resumable checkpoint at each epoch end, every ``ckpt_every`` steps and at the last step run."""

    def after_interval(self, trainer: "Trainer", epoch_end: bool) -> None:
        step = trainer.state.step
        if epoch_end or step % trainer.cfg.ckpt_every == 0 or step >= trainer.end:
            trainer.save_checkpoint()


class Trainer:
    def __init__(
        self, cfg: TrainConfig, run_dir: str | Path, show_progress: bool = True, allow_changes: Sequence[str] = ()
    ):
        """``allow_changes``: config keys (dotted; a prefix such as ``optim`` covers its fields) whose
        value may differ from the run folder's on resume — the change is recorded in ``env.json``."""
        self.cfg, self.run_dir, self.show_progress = cfg.validate(), Path(run_dir), show_progress
        self.run = RunFolder(self.run_dir)  # the folder's layout
        self.allow_changes = tuple(allow_changes)
        self.changes_on_resume: list[str] = []
        self.device = best_device(cfg.device)
        self.info = init_distributed(self.device)
        self.tb: Any = None  # SummaryWriter on the main process
        self.results: dict[str, Any] = {}
        self._folder_lock: FolderLock | None = None

    # ------------------------------------------------------------------ helpers
    def log(self, record: dict[str, Any]) -> None:
        """Append a record to ``metrics.jsonl`` (and its numbers to TensorBoard); main process only."""
        if not self.info.is_main:
            return
        append_record(self.run.metrics, record)
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(k, v, record["step"])

    def save_checkpoint(self) -> None:
        method, extra = self.method, asdict(self.state)
        rngs = all_gather_objects(ckpt.rng_state(), self.info)
        method.flush()
        if self.info.enabled:
            torch.distributed.barrier()  # every rank's bank rows are on disk
        if self.info.is_main:
            ckpt.save(
                self.run.checkpoints,
                extra["step"],
                self.model,
                self.opt,
                extra={**extra, "rng_per_rank": rngs, "method": method.state_dict()},
                meta={"epoch": extra["epoch"], "method": getattr(method, "name", "")},
                files=method.save_files,
            )
            ckpt.prune(self.run.checkpoints, self.cfg.keep_last)
        if self.info.enabled:
            torch.distributed.barrier()

    def _amp(self):
        return torch.autocast(
            device_type="cuda" if self.device.startswith("cuda") else "cpu", dtype=torch.bfloat16, enabled=self.bf16
        )

    # ------------------------------------------------------------------ 1. prepare
    @staticmethod
    def _init_weights(model: Any, path: str) -> None:
        """Start from the weights of a saved segmenter (``init_from``: fine-tuning, e.g. Pseudo-RIS's
        semi-supervised protocol — pseudo-supervised first, then the labeled images)."""
        from ..models.segmenter import Segmenter

        src = Segmenter.from_pretrained(path).state_dict()
        try:
            model.load_state_dict(src, strict=True)
        except RuntimeError as e:
            raise UsageError(f"init_from={path}: its weights do not fit this run's model ({e})") from None

    def prepare(self, resume: bool = True) -> None:
        """The build steps in their order — start, records, method, model, the method's datasets and the
        step stream, schedule, optimizer, resume or initialise, run files, hooks, the wrapped network
        (evaluation is :meth:`evaluate`, called by :class:`EvalHook`) — so that a subclass replaces one step, not the whole; each step's random draws come
        in the order of the ones before (a fresh run and a resumed one build the same model)."""
        self.start()
        labeled, unlabeled = self.build_records()
        self.build_method(labeled)
        self.build_model(labeled)
        self.build_data(labeled, unlabeled)
        self.build_schedule()
        self.build_optimizer()
        last = self.restore_or_init(resume, labeled, unlabeled)
        if self.info.is_main:
            self.write_run_files(last, labeled, unlabeled)
        self.build_hooks()
        self.wrap()

    def start(self) -> None:
        """Threads, precision (refused here, before any work, where the hardware lacks it), the run
        folder and its lock, the seeds."""
        cfg = self.cfg
        if cfg.threads:  # the run's own count; else the process's policy stands (utils/threads.py)
            thread_policy.apply(cfg.threads)
        self.bf16 = use_bf16(cfg.amp, self.device)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.info.is_main:
            self._hold_folder()
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)

    def build_records(self) -> tuple[list[SampleRecord], list[SampleRecord]]:
        """The dataset, its label split and the (labeled, unlabeled) training samples."""
        cfg = self.cfg
        ds = self.dataset = open_dataset(cfg.data)
        self.split = resolve_split(
            ds.name,
            ds.image_ids("train"),
            cfg.data.label_fraction,
            cfg.data.split_seed,
            cfg.data.split_file,
            cfg.data.label_count,
        )
        return train_records(ds, self.split)

    def build_method(self, labeled: Sequence[SampleRecord]) -> None:
        method = self.method = build_method(self.cfg)
        if not labeled and getattr(method, "needs_labeled", True):
            raise UsageError(
                f"data.label_fraction={self.cfg.data.label_fraction}: no labeled image, and method "
                f"{method.name!r} trains on labeled samples"
            )

    def build_model(self, labeled: Sequence[SampleRecord]) -> None:
        """The method's model from MODELS; a frozen text encoder with a cache encodes the labeled sentences."""
        cfg = self.cfg
        model = self.model = MODELS.get(self.method.model)(cfg.model).to(self.device)
        if cfg.channels_last:
            model = self.model = model.to(memory_format=torch.channels_last)
        text: Any = getattr(model, "text", None)
        if getattr(text, "frozen", False) and getattr(text, "use_cache", False):
            from ..data.text_augment import flip_directions

            text.precompute([t for r in labeled for t in (r.sentence, flip_directions(r.sentence))])

    def build_data(self, labeled: Sequence[SampleRecord], unlabeled: Sequence[SampleRecord]) -> None:
        """The method's datasets (:meth:`~l2l.engine.method.Method.datasets`) and the step stream."""
        cfg, info = self.cfg, self.info
        aug = WeakAugConfig(
            size=cfg.data.size,
            hflip_prob=cfg.data.hflip_prob,
            scale_range=(float(cfg.data.scale_range[0]), float(cfg.data.scale_range[1])),
        )
        data = self.data = self.method.datasets(
            DataContext(self.dataset, labeled, unlabeled, aug, cfg.seed, cfg.data, self.model, info)
        )
        self.unlabeled_batch = self.method.unlabeled_batch_size or cfg.batch_size
        self.stream = StepStream(
            data.labeled,
            data.unlabeled,
            cfg.batch_size,
            self.unlabeled_batch,
            info,
            cfg.seed,
            collate_labeled,
            collate_unlabeled,
        )
        text: Any = getattr(self.model, "text", None)
        frozen_cache = getattr(text, "frozen", False) and getattr(text, "use_cache", False)
        if data.unlabeled is not None and cfg.data.workers > 0 and frozen_cache:
            # the unlabeled texts (EDA variants, flips) are encoded in the loader worker, on its own core
            self.stream.text_encoder = text

    def build_schedule(self) -> None:
        """Steps per epoch (from the stream), the schedule's length and where this process stops."""
        cfg = self.cfg
        self.steps_per_epoch = self.stream.steps_per_epoch
        self.total = cfg.total_steps if cfg.total_steps else cfg.epochs * self.steps_per_epoch
        self.end = min(self.total, cfg.max_steps) if cfg.max_steps is not None else self.total

    def build_optimizer(self) -> None:
        self.opt = build_optimizer(self.model, self.cfg.optim)

    def restore_or_init(
        self, resume: bool, labeled: Sequence[SampleRecord], unlabeled: Sequence[SampleRecord]
    ) -> Path | None:
        """The method's setup, then the newest checkpoint (``resume``) or the first weights
        (``init_from``, the model's ``prefit``); returns the checkpoint resumed from."""
        cfg, info, model, method = self.cfg, self.info, self.model, self.method
        self.state = TrainState()
        last = self._checkpoint_to_resume() if resume else None
        if last is None and info.is_main:
            self._clear_stale_results()
        method.setup(
            SetupContext(
                self.run_dir,
                [r.sample_id for r in unlabeled],
                self.data.prior_store,
                model,
                info,
                cfg.data.size,
                fresh=last is None,
            )
        )
        if last is not None:
            loaded = self._load_checkpoint(last, model)
            last = loaded["path"]
            extra = loaded["extra"]
            self.state = TrainState(**{k: extra[k] for k in TrainState.KEYS})
            ckpt.set_rng_state(extra["rng_per_rank"][info.rank])
            method.load_state_dict(extra.get("method", {}))
            if info.is_main:
                method.load_files(last)
                # what was logged after this checkpoint is logged again by the resumed steps: once only
                done = self.state.step
                keep_records(self.run.metrics, lambda r: not isinstance(r.get("step"), int) or r["step"] <= done)
            if info.enabled:
                torch.distributed.barrier()
        else:
            if cfg.init_from:
                self._init_weights(model, cfg.init_from)
            prefit = getattr(model, "prefit", None)  # a model's own stage before the first step (model.objects)
            if callable(prefit):
                losses = prefit(
                    self.dataset, labeled, cfg.data.size, cfg.seed, show_progress=self.show_progress and info.is_main
                )
                if losses and info.is_main:
                    self.prefit_losses = losses
            torch.manual_seed(cfg.seed + info.rank)  # per-rank streams (prior dropout)
        return last

    def write_run_files(
        self, last: Path | None, labeled: Sequence[SampleRecord], unlabeled: Sequence[SampleRecord]
    ) -> None:
        """``config.yaml``, ``paths.json``, ``label_split.json`` and ``env.json`` (main process)."""
        cfg = self.cfg
        atomic_write_text(self.run.config, dump_config(cfg))
        record_paths(cfg, self.run_dir)  # paths.json: the run folder stays usable when moved
        self.split.save(self.run.label_split)
        env = {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": self.device,
            "threads": torch.get_num_threads(),
            "precision": "bf16 autocast" if self.bf16 else "fp32",
            "world_size": self.info.world,
            "batch_per_process": cfg.batch_size,
            "global_batch": cfg.batch_size * self.info.world,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total,
            "labeled_samples": len(labeled),
            "unlabeled_samples": len(unlabeled),
            "dataset": self.dataset.name,
            "method": self.method.settings(),
            "resumed_from": str(last) if last else None,
            "changes_on_resume": self.changes_on_resume,
        }
        if self.data.unlabeled is not None:
            env["unlabeled_batch_per_process"] = self.unlabeled_batch
        env.update(self.data.notes)
        if getattr(self, "prefit_losses", None):  # model.objects.prefit_epochs: the choice's loss per epoch
            env["prefit_losses"] = [round(x, 4) for x in self.prefit_losses]
        atomic_write_text(self.run.env, json.dumps(env, indent=2, default=str))

    def build_hooks(self) -> None:
        """TensorBoard on the main process; the method's hooks, then evaluation and checkpoints."""
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(self.run.tensorboard)) if self.info.is_main else None
        self.hooks: list[Hook] = [*self.method.hooks(self), EvalHook(), CheckpointHook()]

    def wrap(self) -> None:
        """The network the steps run: the model, in DDP across processes, compiled on request."""
        net = self.model
        if self.info.enabled:
            net = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[self.info.local_rank] if self.device.startswith("cuda") else None
            )
        if self.cfg.compile:
            net = torch.compile(net)
        self.net = net

    # ------------------------------------------------------------------ 2. one step
    def train_step(self, lab, unl) -> tuple[StepOutput, float]:
        """One update: the poly learning rate, the method's loss, backward, clipping, the optimiser step."""
        cfg, state, info = self.cfg, self.state, self.info
        state.epoch = state.step // self.steps_per_epoch
        lr = cfg.optim.lr * (1 - state.step / self.total) ** cfg.optim.poly_power
        for g in self.opt.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        ctx = StepContext(state.step, state.epoch, self.device, cfg.seed, info)
        # every random draw of a step (prior dropout, …) is a function of (seed, step, rank), so a
        # resumed run repeats it whatever else touched the global generator (e.g. loader start-up)
        torch.manual_seed(step_seed(cfg.seed, state.step, info.rank))
        if unl is not None and unl.text_features is not None:
            self.model.text.absorb(unl.text_features)
        with self._amp():
            out = self.method.loss(self.net, lab, unl, ctx)
        self.opt.zero_grad(set_to_none=True)
        out.loss.backward()
        if cfg.optim.grad_clip > 0:
            out.logs["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip))
        self.opt.step()
        return out, lr

    # ------------------------------------------------------------------ 3. the loop
    def fit(self, resume: bool = True) -> dict[str, Any]:
        self.prepare(resume)
        cfg, info, state = self.cfg, self.info, self.state
        for h in self.hooks:
            h.before_train(self)
        self.model.train()
        t0, seen = time.perf_counter(), 0
        bar = progress(
            None,
            total=self.total,
            desc=f"train {cfg.method}",
            disable=not (self.show_progress and info.is_main),
            initial=state.step,
        )
        self.results = {}
        loader = DataLoader(
            self.stream,
            batch_size=None,
            sampler=range(state.step, self.end),
            collate_fn=identity,
            num_workers=cfg.data.workers,
            worker_init_fn=seed_worker,
            persistent_workers=False,
            prefetch_factor=4 if cfg.data.workers > 0 else None,
        )
        step_time = 0.0
        for lab, unl in loader:
            ts = time.perf_counter()
            out, lr = self.train_step(lab, unl)
            step_time += time.perf_counter() - ts
            for h in self.hooks:
                h.after_step(self, out)
            state.step += 1
            seen += (lab.images.shape[0] + (unl.images.shape[0] if unl is not None else 0)) * info.world
            bar.update(1)
            bar.set_postfix(loss=f"{float(out.loss.detach()):.3f}", lr=f"{lr:.2e}", refresh=False)
            if state.step % cfg.log_every == 0:
                dt = time.perf_counter() - t0
                self.log(
                    {
                        "step": state.step,
                        "epoch": state.epoch,
                        "lr": lr,
                        "loss": float(out.loss.detach()),
                        **out.logs,
                        "samples_per_s": seen / dt if dt > 0 else 0.0,
                        "step_seconds": step_time / cfg.log_every,
                    }
                )
                step_time = 0.0
            epoch_end = state.step % self.steps_per_epoch == 0 or state.step >= self.total
            if epoch_end:
                state.epoch = -(-state.step // self.steps_per_epoch)
            for h in self.hooks:
                h.after_interval(self, epoch_end)
        bar.close()
        results = self.results
        eval_file = self.run.eval_file(cfg.data.eval_split)
        no_eval = cfg.data.eval_split == "none"
        if not results and state.step >= self.total and not eval_file.exists() and not no_eval:
            results = self.evaluate(self.model, self.dataset)  # the run ended before its final evaluation: do it now
        if info.is_main:
            self.model.save_pretrained(self.run.last)
            if not (self.run.best).exists():
                self.model.save_pretrained(self.run.best)
            if results:
                atomic_write_text(eval_file, json.dumps(results, indent=2))
        for h in self.hooks:
            h.after_train(self)
        if self.tb is not None:
            self.tb.close()
        self.release_folder()
        return {
            "state": asdict(state),
            "results": results,
            "train_seconds": time.perf_counter() - t0,
            "samples_per_s": seen / max(time.perf_counter() - t0, 1e-9),
        }

    def _checkpoint_to_resume(self) -> Path | None:
        """The newest checkpoint, after checking that the folder's config is this run's (a resume under
        another config would continue silently as if the new values had held from step 0)."""
        from ..config import config_diff, config_identity, legacy_overrides, load_config, to_dict
        from ..schema import LEGACY_DEFAULTS

        last = ckpt.latest(self.run.checkpoints)
        saved = self.run.config
        if last is None or not saved.exists():
            return last
        try:
            have = config_identity(to_dict(load_config(TrainConfig, saved, legacy_overrides(saved, LEGACY_DEFAULTS))))
        except ValueError as e:
            raise UsageError(f"{saved} cannot be read ({e}): use another run folder, or --no-resume") from None
        diff = config_diff(have, config_identity(to_dict(self.cfg)))
        allowed = [d for d in diff if any(d.split(":")[0] == k or d.startswith(k + ".") for k in self.allow_changes)]
        self.changes_on_resume = allowed
        diff = [d for d in diff if d not in allowed]
        if diff:
            raise UsageError(
                f"{self.run_dir} holds a run made with another config ({'; '.join(diff[:6])}"
                f"{'; …' if len(diff) > 6 else ''}): resuming would mix the two. Use another --out, or "
                f"--no-resume to start this folder over (its checkpoints and results are replaced), or "
                f"--allow-change KEY to continue with the new value from here"
            )
        return last

    def _load_checkpoint(self, last: Path, model: torch.nn.Module) -> dict[str, Any]:
        """Load ``last``; when it is damaged (e.g. a truncated file after a crash), the one before it."""
        import warnings

        tried = []
        for path in reversed(ckpt.list_checkpoints(self.run.checkpoints)):
            if path > last:
                continue
            try:
                return {**ckpt.load(path, model, self.opt, restore_rng=False), "path": path}
            except Exception as e:  # noqa: BLE001 — a damaged checkpoint of any kind: try the previous one
                tried.append(f"{path.name}: {type(e).__name__}: {e}")
                if self.info.is_main:
                    warnings.warn(f"checkpoint {path} cannot be loaded ({e}); trying the previous one", stacklevel=2)
        raise UsageError(
            f"no checkpoint of {self.run_dir} can be loaded: " + "; ".join(tried) + " — use --no-resume to start over"
        )

    def _hold_folder(self) -> None:
        """One writer per run folder: ``.train.lock``, held until :meth:`fit` ends or the process exits; a
        lock whose holder is gone (kill -9) is taken over; a live one, or an unreadable one, is refused."""
        if self._folder_lock is not None and self._folder_lock.held:
            return
        lock = FolderLock(self.run_dir / TRAIN_LOCK)
        if not lock.acquire():
            info = lock.holder()
            raise ExistsError(
                describe_holder(lock.path, info)
                if info
                else lock_problem(lock.path) or f"{lock.path} is being created by another process; try again"
            )
        self._folder_lock = lock

    def release_folder(self) -> None:
        """Give the run folder's lock back (the end of :meth:`fit`; also at process exit)."""
        if self._folder_lock is not None:
            self._folder_lock.release()

    def _clear_stale_results(self) -> None:
        """A fresh start in a used folder: results of the earlier run would sit beside the new ones."""
        for f in [*self.run.eval_files(), self.run.metrics]:
            if f.exists():
                f.unlink()

    def evaluate(self, model, ds: ReferDataset) -> dict[str, Any]:
        recs = ds.samples(self.cfg.data.eval_split)
        if self.cfg.data.eval_max_samples:
            recs = recs[: self.cfg.data.eval_max_samples]
        return inference_on_dataset(
            model,
            ds,
            recs,
            self.cfg.data.size,
            self.device,
            self.info,
            resolution=self.cfg.data.eval_resolution,
            show_progress=self.show_progress,
        )
