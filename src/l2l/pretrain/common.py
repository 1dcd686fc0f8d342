"""What the stand-ins' training loops share (issue 35: the training side of :mod:`l2l.foundation`):
the training config's base, the encoder-scaled AdamW, the cosine schedule, the loop's start and step,
rounding to float16 and the model folder with its card and README."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar

import numpy as np
import torch

from ..data.pool import PoolConfig
from ..errors import UsageError
from ..utils.folders import halve, write_folder
from ..utils.optim import param_groups

N = TypeVar("N", bound=torch.nn.Module)


def adamw(net: torch.nn.Module, lr: float, weight_decay: float, encoder_scale: float | None) -> torch.optim.AdamW:
    """AdamW over ``net``; the parameters of ``net.encoder`` at ``encoder_scale`` × the learning rate
    (left out when ``encoder_scale`` is None: a frozen encoder; :func:`l2l.utils.optim.param_groups`)."""
    groups = param_groups(net, {"encoder": net.encoder}, {"encoder": encoder_scale})  # type: ignore[dict-item]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=True)


def cosine_step(opt: torch.optim.Optimizer, base_lr: float, step: int, steps: int, warmup: int = 0) -> None:
    """Set every group's learning rate: linear warm-up over ``warmup`` steps, then cosine decay to 0."""
    warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
    lr = base_lr * warm * 0.5 * (1 + np.cos(np.pi * step / steps))
    for g in opt.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)


def start_training(
    build: Callable[[Any], N], cfg: Any, rng_key: int, desc: str, show_progress: bool, max_steps: int | None
) -> tuple[N, torch.optim.AdamW, np.random.Generator, Any]:
    """What a stand-in's training loop starts with, in this order: ``torch.manual_seed(cfg.seed)``,
    the network ``build(cfg.model)`` (its ``encoder`` replaced by ``cfg.model.init``'s when given),
    AdamW at ``cfg.lr`` (the encoder at ``cfg.encoder_lr_scale``), the batch generator
    ``default_rng([cfg.seed, rng_key])`` and the progress bar over ``min(cfg.steps, max_steps)``
    steps; the network in training mode."""
    from ..nets.backbones import ConvEncoder
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


def round_trip_half(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Round the module's weights to float16 in place (so metrics measure what is stored); the float16 state."""
    state = halve(module.state_dict())
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return state


def metrics_table(metrics: dict[str, Any]) -> str:
    return "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items())


def save_stand_in(
    out: str | Path,
    fmt: str,
    net: torch.nn.Module,
    cfg: Any,
    trajectory: list,
    wall: float,
    metrics: dict[str, Any],
    command: str,
    *,
    title: str,
    summary: str,
    steps_line: str,
    metrics_title: str,
    **card_fields: Any,
) -> dict[str, Any]:
    """Round ``net`` to float16 (``metrics`` must be measured after this: the caller passes a function of
    the rounded net, see the ``pretrain_*`` functions), and write its folder: config.json with the
    model config, model.safetensors, card.json (``card_fields`` + the common fields) and README.md."""
    state = halve(net.state_dict())
    card = {
        "format": fmt,
        **card_fields,
        "config": cfg.to_dict(),
        "steps": cfg.steps,
        "wall_seconds": round(wall, 1),
        "parameters": sum(p.numel() for p in net.parameters()),
        "metrics_eval_pool": metrics,
        "trajectory": trajectory,
        "command": command,
    }
    readme = f"""# Model card: {title} ({fmt})

A **stand-in**, not the real model: a {card["parameters"]:,}-parameter network. {summary}

- {steps_line}; wall time {wall:.0f} s.
- Rebuild: `{command}`

## {metrics_title}

| metric | value |
| --- | --- |
{metrics_table(metrics)}
"""
    write_folder(out, {"format": fmt, "model": {**cfg.model.to_dict(), "init": None}}, {"model": state}, card, readme)
    return card
