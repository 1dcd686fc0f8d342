"""What the trainer knows of a method: the :class:`Method` protocol, and the hooks around the loop.

The trainer (:mod:`l2l.engine.trainer`) builds a method by name through
:data:`l2l.registry.METHODS` and then talks to it only through this protocol; it never imports a
method's module. A method builds the data it trains on (``datasets``: the labeled samples, and the
unlabeled ones with whatever they carry — the self-training methods open their prior store and the
strong text view there, :mod:`l2l.semi.data`), says which model it trains (``model``, a
:data:`l2l.registry.MODELS` name), computes a step's loss, and may add :class:`Hook` objects
(the semi-supervised methods add their telemetry hook this way).

Adding a method (CONTRIBUTING.md): a class with the attributes and methods below and a
``from_config(cfg, name)`` class method, registered with ``METHODS.register(name, "module:Class")``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

import torch

from ..data.augment import WeakAugConfig
from ..data.dataset import LabeledRefDataset
from ..utils.distributed import DistInfo

if TYPE_CHECKING:
    from .trainer import Trainer


@dataclass
class StepContext:
    """Where a step is: its index and epoch, the device, the run's seed and the process group."""

    step: int
    epoch: int
    device: str
    seed: int
    info: Any  # DistInfo


@dataclass
class SetupContext:
    """What a method may use to create its own state before the first step (or on resume)."""

    run_dir: Path
    unlabeled_ids: Sequence[int]
    prior_store: Any  # l2l.priors.store.PriorStore | None
    model: torch.nn.Module
    info: DistInfo
    data_size: int
    fresh: bool  # True: no checkpoint to resume from


@dataclass
class DataContext:
    """What a method builds its training data from (:meth:`Method.datasets`)."""

    dataset: Any  # l2l.data.refer.ReferDataset
    labeled: Sequence[Any]  # SampleRecord: the labeled split's training samples
    unlabeled: Sequence[Any]  # SampleRecord: the rest of the training samples (their masks stay hidden)
    aug: WeakAugConfig  # the weak view
    seed: int
    data: Any  # TrainConfig.data (l2l.schema.DataConfig)
    model: torch.nn.Module  # the model being trained (e.g. whether it takes guidance)
    info: DistInfo


@dataclass
class MethodData:
    """A method's training data: datasets the trainer streams, and what its ``setup`` receives."""

    labeled: Any  # a dataset of LabeledSample (collate_labeled)
    unlabeled: Any = None  # a dataset of UnlabeledSample (collate_unlabeled); None: labeled batches only
    prior_store: Any = None  # SetupContext.prior_store
    notes: dict[str, Any] = field(default_factory=dict)  # written to the run's env.json


def labeled_data(ctx: DataContext) -> MethodData:
    """The labeled samples alone, in the weak view: ``datasets`` of a method that needs nothing else."""
    return MethodData(LabeledRefDataset(ctx.dataset, ctx.labeled, ctx.aug, seed=ctx.seed))


@dataclass
class StepOutput:
    """A step's result: the loss to minimise, scalars to log, and an opaque record for hooks
    (e.g. what self-training computed, which the telemetry compares with hidden masks)."""

    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)
    visit: Any = None


@runtime_checkable
class Method(Protocol):
    name: str
    needs_unlabeled: bool  # the trainer streams unlabeled batches as well
    needs_priors: bool  # a prior store (priors_path) must exist
    priors_path: str | None  # prior store folder; optional when needs_priors is False
    unlabeled_batch_size: int | None  # None = the labeled batch size
    model: str  # MODELS name of what this method trains

    def datasets(self, ctx: DataContext) -> MethodData: ...

    def setup(self, ctx: SetupContext) -> None: ...

    def loss(self, net: torch.nn.Module, labeled: Any, unlabeled: Any, ctx: StepContext) -> StepOutput: ...

    def hooks(self, trainer: "Trainer") -> list["Hook"]: ...

    def settings(self) -> dict[str, Any]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, d: dict[str, Any]) -> None: ...

    def flush(self) -> None: ...

    def save_files(self, folder: Path) -> None: ...

    def load_files(self, folder: Path) -> None: ...


class Hook:
    """Called by the trainer around the loop; every method is optional.

    Order per step: the update, then ``after_step`` of every hook; at a log point ``on_log``; at
    an epoch end or a telemetry point ``after_interval``; evaluation and checkpoints are the
    trainer's own hooks (:class:`~l2l.engine.trainer.EvalHook`, :class:`~l2l.engine.trainer.CheckpointHook`)
    and run last, in that order."""

    def before_train(self, trainer: "Trainer") -> None:
        pass

    def after_step(self, trainer: "Trainer", out: StepOutput) -> None:
        pass

    def after_interval(self, trainer: "Trainer", epoch_end: bool) -> None:
        pass

    def after_train(self, trainer: "Trainer") -> None:
        pass


def unwrap(net: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP and ``torch.compile`` wrappers."""
    net = getattr(net, "_orig_mod", net)
    return getattr(net, "module", net)


def check_method(method: Any, name: str) -> Any:
    """``method`` if it has every attribute of :class:`Method`, else a TypeError naming what is missing."""
    want = [
        "name",
        "needs_unlabeled",
        "needs_priors",
        "priors_path",
        "unlabeled_batch_size",
        "model",
        "datasets",
        "setup",
        "loss",
        "hooks",
        "settings",
        "state_dict",
        "load_state_dict",
        "flush",
        "save_files",
        "load_files",
    ]
    missing = [a for a in want if not hasattr(method, a)]
    if missing:
        raise TypeError(f"method {name!r} ({type(method).__name__}) lacks {', '.join(missing)} of the Method protocol")
    return method
