"""Visual pretraining on the pool (``l2l pretrain visual``): our stand-in for ImageNet pretraining.

The segmenter's conv encoder (``l2l.nets.backbones.ConvEncoder``) is trained with dense
per-pixel heads (``l2l.data.pool.HEADS``: shape, colour, texture, size, instance boundary)
on pool scenes only — no referring expression, no SynthRef image. The heads are a LAVT-style
decoder (``l2l.nets.decoder.Decoder``) with one output channel per class; only the encoder
is kept. The output is a model folder, loaded by path exactly as a real Swin folder is::

    FOLDER/config.json         {"format": "l2l-visual/1", "name": "conv", "conv_channels": [...], ...}
    FOLDER/model.safetensors   encoder weights (float16 when ``half``: they are restored to float32)
    FOLDER/card.json           pool config and seed range, steps, wall time, metrics, loss trajectory
    FOLDER/README.md           the same as a model card for people

and ``model.visual: {name: conv, path: FOLDER}`` builds the segmenter on it. The training is a
pure function of the config (torch's generator is seeded; the pool is deterministic), so the
loss trajectory recorded in the card is what ``rebuild_check`` reproduces.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.augment import normalize
from ..data.pool import HEADS, PoolConfig, make_pool
from ..errors import UsageError
from ..nets.backbones import VISUAL_FORMAT, ConvEncoder, four_stages, load_visual_folder
from ..nets.decoder import Decoder
from ..utils.io import atomic_write_text, save_safetensors
from ..utils.tensors import image_tensor


@dataclass
class VisualPretrainConfig:
    pool: PoolConfig = field(default_factory=PoolConfig)
    conv_channels: tuple[int, int, int, int] = (32, 64, 128, 192)
    decoder_dim: int = 64
    train_images: int = 6000  # pool indices 0..train_images-1
    eval_images: int = 300  # pool indices train_images..train_images+eval_images-1 (held out)
    steps: int = 2000
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    log_every: int = 20
    seed: int = 0
    threads: int = 0  # 0 = the thread policy (one thread; utils/threads.py); the card records the count
    workers: int = 2  # pool generation processes
    half: bool = True  # store the weights as float16 (the folder stays small enough to ship)

    def __post_init__(self) -> None:
        if isinstance(self.pool, dict):
            self.pool = PoolConfig(**self.pool)
        self.conv_channels = tuple(self.conv_channels)  # type: ignore[assignment]
        if self.steps < 1 or self.batch_size < 1 or self.train_images < 1 or self.eval_images < 1:
            raise UsageError("steps, batch_size, train_images and eval_images must be positive")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


class DenseHeads(torch.nn.Module):
    """Encoder + decoder with one logit map per class of every head (at the input resolution)."""

    def __init__(self, channels: tuple[int, ...], dim: int):
        super().__init__()
        self.encoder = ConvEncoder(four_stages(channels))
        self.decoder = Decoder(self.encoder.channels, dim, out_channels=sum(HEADS.values()))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.decoder(self.encoder(normalize(images)), images.shape[-2:])
        return dict(zip(HEADS, logits.split(list(HEADS.values()), dim=1)))


def _batch_order(cfg: VisualPretrainConfig, steps: int) -> np.ndarray:
    """Pool indices of every step's batch: seeded epochs of permutations (steps × batch)."""
    g = np.random.default_rng([cfg.seed, 1])
    need = steps * cfg.batch_size
    perms = [g.permutation(cfg.train_images) for _ in range(-(-need // cfg.train_images))]
    return np.concatenate(perms)[:need].reshape(steps, cfg.batch_size)


def _to_tensors(images: np.ndarray, targets: dict[str, np.ndarray]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    x = image_tensor(images)
    return x, {k: torch.from_numpy(v).long() for k, v in targets.items()}


def _loss(out: dict[str, torch.Tensor], tgt: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    parts = {k: F.cross_entropy(out[k], tgt[k]) for k in HEADS}
    total: torch.Tensor = sum(parts.values(), torch.zeros(()))  # 0 + a + b + …, as Python's sum
    return total, {k: float(v.detach()) for k, v in parts.items()}


@torch.no_grad()
def dense_metrics(
    model: DenseHeads, images: np.ndarray, targets: dict[str, np.ndarray], batch_size: int = 64
) -> dict[str, float]:
    """Foreground IoU (shape head ≠ background), per-head accuracy on foreground pixels, boundary F1."""
    model.eval()
    inter = union = 0
    correct = {k: 0 for k in ("shape", "color", "texture", "size")}
    fg_total = 0
    tp = fp = fn = 0
    for i in range(0, len(images), batch_size):
        x, t = _to_tensors(images[i : i + batch_size], {k: v[i : i + batch_size] for k, v in targets.items()})
        pred = {k: v.argmax(1) for k, v in model(x).items()}
        fg_t, fg_p = t["shape"] > 0, pred["shape"] > 0
        inter += int((fg_t & fg_p).sum())
        union += int((fg_t | fg_p).sum())
        fg_total += int(fg_t.sum())
        for k in correct:
            correct[k] += int(((pred[k] == t[k]) & fg_t).sum())
        b_t, b_p = t["boundary"] > 0, pred["boundary"] > 0
        tp += int((b_t & b_p).sum())
        fp += int((~b_t & b_p).sum())
        fn += int((b_t & ~b_p).sum())
    out = {"fg_iou": inter / max(union, 1)}
    out.update({f"{k}_acc": correct[k] / max(fg_total, 1) for k in correct})
    out["boundary_f1"] = 2 * tp / max(2 * tp + fp + fn, 1)
    return {k: round(v, 5) for k, v in out.items()}


def train_dense(
    cfg: VisualPretrainConfig, max_steps: int | None = None, show_progress: bool = True
) -> tuple[DenseHeads, list[dict[str, float]], float]:
    """Train the encoder + dense heads; returns (model, loss trajectory, wall seconds).

    ``max_steps`` stops early on the same schedule (the trajectory's prefix is the full run's)."""
    from ..utils.progress import progress

    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or threads)
    try:
        t0 = time.perf_counter()
        end = min(cfg.steps, max_steps or cfg.steps)
        order = _batch_order(cfg, cfg.steps)[:end]
        used = np.unique(order)
        images, targets = (
            make_pool(cfg.pool, 0, cfg.train_images, cfg.workers, show_progress)
            if len(used) == cfg.train_images
            else _subset_pool(cfg, used, show_progress)
        )
        torch.manual_seed(cfg.seed)
        model = DenseHeads(cfg.conv_channels, cfg.decoder_dim)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        flips = np.random.default_rng([cfg.seed, 2]).random((cfg.steps, cfg.batch_size)) < 0.5
        trajectory: list[dict[str, float]] = []
        bar = progress(range(end), desc="pretrain visual", disable=not show_progress)
        model.train()
        for step in bar:
            idx = order[step]
            x, t = _to_tensors(images[idx], {k: v[idx] for k, v in targets.items()})
            f = torch.from_numpy(flips[step])
            x = torch.where(f.view(-1, 1, 1, 1), x.flip(-1), x)
            t = {k: torch.where(f.view(-1, 1, 1), v.flip(-1), v) for k, v in t.items()}
            lr = cfg.lr * 0.5 * (1 + np.cos(np.pi * step / cfg.steps))  # cosine decay
            for g in opt.param_groups:
                g["lr"] = lr
            loss, parts = _loss(model(x), t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if (step + 1) % cfg.log_every == 0:
                trajectory.append({"step": step + 1, "loss": round(float(loss.detach()), 5)})
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
        return model, trajectory, time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)


def _subset_pool(cfg: VisualPretrainConfig, used: np.ndarray, show_progress: bool):
    """Only the pool images a shortened run visits (placed at their indices)."""
    from ..data.pool import pool_scene

    size = cfg.pool.size
    images = np.zeros((cfg.train_images, size, size, 3), np.uint8)
    targets = {k: np.zeros((cfg.train_images, size, size), np.uint8) for k in HEADS}
    for i in used:
        img, tg = pool_scene(cfg.pool, int(i))
        images[i] = img
        for k in HEADS:
            targets[k][i] = tg[k]
    return images, targets


def eval_pool(cfg: VisualPretrainConfig, workers: int | None = None):
    """The held-out pool images of the card's metrics."""
    return make_pool(cfg.pool, cfg.train_images, cfg.eval_images, workers or cfg.workers)


def pretrain_visual(
    cfg: VisualPretrainConfig, out: str | Path, show_progress: bool = True, command: str = ""
) -> dict[str, Any]:
    """Train and write the model folder; returns the card."""

    out = Path(out)
    model, trajectory, wall = train_dense(cfg, show_progress=show_progress)
    enc = model.encoder
    stored = {}
    for name, part in (("model", enc), ("heads", model.decoder)):
        state = {k: v.detach().contiguous() for k, v in part.state_dict().items()}
        if cfg.half:  # the card's metrics are measured on the stored (rounded) weights
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
            part.load_state_dict({k: v.float() for k, v in state.items()})
        stored[name] = state
    images, targets = eval_pool(cfg)
    metrics = dense_metrics(model, images, targets)
    out.mkdir(parents=True, exist_ok=True)
    save_safetensors(stored["model"], str(out / "model.safetensors"))
    # the dense heads are not part of the encoder, but keeping them lets anyone re-measure the card
    save_safetensors(stored["heads"], str(out / "heads.safetensors"))
    atomic_write_text(
        out / "config.json",
        json.dumps(
            {
                "format": VISUAL_FORMAT,
                "name": "conv",
                "conv_channels": list(cfg.conv_channels),
                "input": "RGB in [0, 1], ImageNet mean/std normalisation inside the model",
                "trained_at": cfg.pool.size,
            },
            indent=2,
        ),
    )
    card = {
        "format": VISUAL_FORMAT,
        "model": "ConvEncoder (l2l.nets.backbones) + dense heads, encoder kept",
        "stand_in_for": "an ImageNet-pretrained visual backbone (Swin-B in the paper)",
        "training_data": {
            "pool": cfg.pool.to_dict(),
            "domain_word": "POOL (0x504F4F4C)",
            "train_indices": [0, cfg.train_images - 1],
            "eval_indices": [cfg.train_images, cfg.train_images + cfg.eval_images - 1],
            "referring_expressions": False,
        },
        "config": cfg.to_dict(),
        "steps": cfg.steps,
        "wall_seconds": round(wall, 1),
        "parameters": sum(p.numel() for p in enc.parameters()),
        "metrics_eval_pool": metrics,
        "trajectory": trajectory,
        "machine": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": cfg.threads or torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(),
        },
        "date": time.strftime("%Y-%m-%d"),
        "command": command,
    }
    atomic_write_text(out / "card.json", json.dumps(card, indent=2))
    atomic_write_text(out / "README.md", _card_markdown(card))
    return card


def _card_markdown(card: dict[str, Any]) -> str:
    m = card["metrics_eval_pool"]
    pool = card["training_data"]["pool"]
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in m.items())
    return f"""# Model card: SynthRef pool-pretrained conv encoder ({card["format"]})

A **stand-in**, not a real foundation model: a {card["parameters"]:,}-parameter GroupNorm CNN trained in
the pretraining world (`l2l.pretrain`) to stand where the paper's ImageNet-pretrained Swin-B stands.

- Training data: {card["training_data"]["train_indices"][1] + 1:,} generated pool scenes (pool seed {pool["seed"]},
  domain word {card["training_data"]["domain_word"]}), disjoint from every SynthRef split; shifted distribution
  (1–9 objects, zoom {pool["zoom"]}, gamma {pool["gamma"]}, contrast {pool["contrast"]}); {pool["size"]} px.
- Targets: dense per-pixel shape / colour / texture / size / instance boundary; **no referring expressions**.
- Steps: {card["steps"]:,} × batch {card["config"]["batch_size"]}; wall time {card["wall_seconds"]:.0f} s
  ({card["machine"]["threads"]} threads, torch {card["machine"]["torch"]}, {card["date"]}).
- Rebuild: `{card["command"] or "l2l pretrain visual"}`

## Metrics on {card["config"]["eval_images"]} held-out pool scenes (indices {card["training_data"]["eval_indices"]})

| metric | value |
| --- | --- |
{rows}
"""


def resolve_visual_path(path: str | Path) -> Path:
    """A folder, or ``builtin:NAME`` for a folder shipped inside the package (``synthpool-conv``)."""
    from ..utils.folders import resolve_model_path

    return resolve_model_path(path)


def load_dense_heads(path: str | Path) -> tuple[DenseHeads, VisualPretrainConfig, dict[str, Any]]:
    """Encoder + dense heads of a folder, with its card and config: what the card's metrics measure."""
    from safetensors.torch import load_file

    path = resolve_visual_path(path)
    card = json.loads((path / "card.json").read_text())
    cfg = VisualPretrainConfig(**card["config"])
    _, state = load_visual_folder(path)
    model = DenseHeads(cfg.conv_channels, cfg.decoder_dim)
    model.encoder.load_state_dict(state)
    model.decoder.load_state_dict({k: v.float() for k, v in load_file(str(path / "heads.safetensors")).items()})
    return model, cfg, card


def rebuild_check(folder: str | Path, steps: int, show_progress: bool = False) -> dict[str, Any]:
    """Re-run the first ``steps`` steps of the folder's own config; compare with the card's trajectory.

    Returns {"compared": [(step, card loss, rebuilt loss)], "max_rel_diff": float}."""
    card = json.loads((resolve_visual_path(folder) / "card.json").read_text())
    cfg = VisualPretrainConfig(**{k: v for k, v in card["config"].items()})
    _, traj, _ = train_dense(cfg, max_steps=steps, show_progress=show_progress)
    ref = {r["step"]: r["loss"] for r in card["trajectory"]}
    pairs = [(r["step"], ref[r["step"]], r["loss"]) for r in traj if r["step"] in ref]
    if not pairs:
        raise UsageError(f"rebuild of {steps} steps logged nothing the card has (log_every {cfg.log_every})")
    rel = max(abs(a - b) / max(abs(a), 1e-8) for _, a, b in pairs)
    return {"compared": pairs, "max_rel_diff": rel}
