"""Pretraining of the promptable mask model (the SAM / SAM2 stand-in of :mod:`l2l.foundation.mask_model`):
its pool data (instances and sampled prompts), loss, training loop, metrics on the pool and on SynthRef,
and the model folder with its card (``l2l pretrain mask-model``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.pool import PoolConfig, pool_map, render_pool_scene
from ..foundation.mask_model import FORMAT, MaskModelConfig, MaskPredictor, PromptableMaskModel, automatic_masks
from ..utils.masks import mask_box, mask_iou
from ..utils.tensors import image_tensor
from ..utils.threads import torch_threads
from .common import StandInTrainConfig, cosine_step, round_trip_half, save_stand_in, start_training


# ---------------------------------------------------------------------------- training
@dataclass
class MaskTrainConfig(StandInTrainConfig):
    MODEL = MaskModelConfig

    model: MaskModelConfig = field(default_factory=MaskModelConfig)
    pool: PoolConfig = field(default_factory=lambda: PoolConfig(size=128))
    train_images: int = 4000  # pool indices 0..train_images-1
    eval_images: int = 200
    steps: int = 1500
    batch_images: int = 8
    prompts_per_image: int = 3
    lr: float = 1e-3
    encoder_lr_scale: float = 0.3
    weight_decay: float = 1e-4


def _scene_job(args: tuple[PoolConfig, int]) -> tuple[np.ndarray, np.ndarray]:
    sc = render_pool_scene(*args)
    return sc.image, sc.ids.astype(np.uint8)


def pool_instances(cfg: PoolConfig, start: int, count: int, workers: int = 1, show_progress: bool = False):
    """Images (N×S×S×3) and visible-instance maps (N×S×S, 0 = background) of pool images start.."""
    recs = pool_map(_scene_job, [(cfg, i) for i in range(start, start + count)], workers, show_progress)
    return np.stack([r[0] for r in recs]), np.stack([r[1] for r in recs])


def sample_prompts(mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """A simulated prompt for one instance mask: (box xyxy or None, points N×2, labels N)."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    kind = rng.random()
    box = None
    if kind < 0.5 or kind >= 0.85:  # box (alone, or with points)
        wj, hj = (x1 - x0) * 0.08, (y1 - y0) * 0.08
        box = np.array([x0, y0, x1, y1], np.float32) + rng.normal(0, 1, 4) * [wj, hj, wj, hj]
    n_pos = 0 if 0.5 > kind else int(rng.integers(1, 4))
    if box is None and n_pos == 0:
        n_pos = 1
    pick = rng.integers(0, len(xs), n_pos)
    pts = [np.stack([xs[pick], ys[pick]], 1).astype(np.float32) + 0.5]
    labels = [np.ones(n_pos)]
    if 0.7 <= kind < 0.85:  # negatives outside the instance
        bg = np.nonzero(~mask)
        q = rng.integers(0, len(bg[0]), int(rng.integers(1, 3)))
        pts.append(np.stack([bg[1][q], bg[0][q]], 1).astype(np.float32) + 0.5)
        labels.append(np.zeros(len(q)))
    return box, np.concatenate(pts), np.concatenate(labels)


def _batch_prompts(ids: np.ndarray, per_image: int, rng: np.random.Generator):
    index, boxes, valid, points, labels, targets = [], [], [], [], [], []
    for b in range(len(ids)):
        present = [k for k in np.unique(ids[b]) if k > 0 and (ids[b] == k).sum() >= 12]
        if not present:
            continue
        for k in rng.choice(present, per_image):
            m = ids[b] == k
            box, pts, lab = sample_prompts(m, rng)
            index.append(b)
            boxes.append(box if box is not None else np.zeros(4, np.float32))
            valid.append(box is not None)
            points.append(pts)
            labels.append(lab)
            targets.append(m)
    n = max(len(p) for p in points)
    P = torch.zeros(len(points), n, 2)
    L = torch.full((len(points), n), -1, dtype=torch.long)
    for i, (p, q) in enumerate(zip(points, labels)):
        P[i, : len(p)] = torch.from_numpy(p)
        L[i, : len(q)] = torch.from_numpy(q).long()
    return (
        torch.tensor(index),
        torch.from_numpy(np.stack(boxes)).float(),
        torch.tensor(valid),
        P,
        L,
        torch.from_numpy(np.stack(targets)).float(),
    )


def mask_loss(logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Best hypothesis's BCE + dice, plus MSE of all predicted IoUs (SAM's multi-mask loss)."""
    t = target[:, None].expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none").mean((2, 3))
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * t).sum((2, 3)) + 1) / (p.sum((2, 3)) + t.sum((2, 3)) + 1)
    per = bce + dice
    best = per.min(1).values.mean()
    with torch.no_grad():
        hard = logits > 0
        inter = (hard & (t > 0.5)).sum((2, 3)).float()
        union = (hard | (t > 0.5)).sum((2, 3)).float().clamp(min=1)
        actual = inter / union
    iou_loss = F.mse_loss(iou_pred, actual)
    return best + iou_loss, {
        "mask": float(best.detach()),
        "iou_mse": float(iou_loss.detach()),
        "best_iou": float(actual.max(1).values.mean()),
    }


def train_mask_model(
    cfg: MaskTrainConfig, max_steps: int | None = None, show_progress: bool = True
) -> tuple[PromptableMaskModel, list[dict[str, float]], float]:

    with torch_threads(cfg.threads):
        t0 = time.perf_counter()
        images, ids = pool_instances(cfg.pool, 0, cfg.train_images, cfg.workers, show_progress)
        model, opt, rng, bar = start_training(
            PromptableMaskModel, cfg, 7, "pretrain mask-model", show_progress, max_steps
        )
        traj: list[dict[str, float]] = []
        for step in bar:
            pick = rng.choice(cfg.train_images, cfg.batch_images, replace=False)
            x = image_tensor(images[pick])
            idx, boxes, valid, pts, labels, target = _batch_prompts(ids[pick], cfg.prompts_per_image, rng)
            cosine_step(opt, cfg.lr, step, cfg.steps)
            emb, skip = model.embed(x)
            logits, iou = model.decode(emb, skip, idx, boxes, valid, pts, labels)
            loss, parts = mask_loss(logits, iou, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if (step + 1) % cfg.log_every == 0:
                traj.append(
                    {"step": step + 1, "loss": round(float(loss.detach()), 5), "best_iou": round(parts["best_iou"], 4)}
                )
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}", iou=f"{parts['best_iou']:.3f}", refresh=False)
        return model, traj, time.perf_counter() - t0


@torch.no_grad()
def pool_box_iou(model: PromptableMaskModel, cfg: MaskTrainConfig) -> float:
    """Mean IoU with a perfect box prompt on the held-out pool images (every instance ≥ 12 px)."""
    pred = MaskPredictor(model)
    images, ids = pool_instances(cfg.pool, cfg.train_images, cfg.eval_images, 1)
    ious = []
    for im, m in zip(images, ids):
        ks = [k for k in np.unique(m) if k > 0 and (m == k).sum() >= 12]
        boxes = [mask_box(m == k) for k in ks]
        for k, (p, _) in zip(ks, pred.box_probabilities(im, boxes)):
            ious.append(mask_iou(p >= 0.5, m == k))
    return float(np.mean(ious))


def synthref_box_iou(pred: MaskPredictor, ds, split: str = "train", limit: int | None = None) -> float:
    """Mean IoU on a REFER dataset's referred objects with a perfect box prompt (the mask's box)."""
    ious = []
    by_image: dict[int, set[int]] = {}
    for r in ds.samples(split):
        by_image.setdefault(r.image_id, set()).add(r.ann_id)
    for n, (image_id, anns) in enumerate(sorted(by_image.items())):
        if limit and n >= limit:
            break
        image = ds.load_image(image_id)
        anns_ = sorted(anns)
        masks = [ds.mask(a) > 0 for a in anns_]
        for m, (p, _) in zip(masks, pred.box_probabilities(image, [mask_box(m) for m in masks])):
            ious.append(mask_iou(p >= 0.5, m))
    return float(np.mean(ious))


def synthref_auto_recall(
    pred: MaskPredictor,
    ds,
    split: str = "train",
    images: int = 100,
    iou: float = 0.5,
    stats: dict[str, float] | None = None,
    **kw: Any,
) -> float:
    """Share of a REFER dataset's objects (every annotation of the first ``images`` images of
    ``split``) that some automatic-mode mask covers at IoU ≥ ``iou``. ``stats``, when given, receives
    the mean number of masks and of annotated objects per image (recall is cheap with many masks)."""
    found, counts, objects = [], [], []
    for image_id in ds.image_ids(split)[:images]:
        image = ds.load_image(image_id)
        masks = [r["segmentation"] for r in automatic_masks(pred, image, **kw)]
        counts.append(len(masks))
        objects.append(len(ds.image_anns(image_id)))
        for a in ds.image_anns(image_id):
            gt = ds.mask(a) > 0
            found.append(float(any(mask_iou(m, gt) >= iou for m in masks)))
    if stats is not None:
        stats.update(masks_per_image=float(np.mean(counts)), objects_per_image=float(np.mean(objects)))
    return float(np.mean(found))


def pretrain_mask_model(cfg: MaskTrainConfig, out: str | Path, show_progress: bool = True, command: str = "") -> dict:
    model, traj, wall = train_mask_model(cfg, show_progress=show_progress)
    round_trip_half(model)  # the card's metrics measure the stored (float16) weights
    metrics = {"pool_box_iou": round(pool_box_iou(model, cfg), 4)}
    return save_stand_in(
        out,
        FORMAT,
        model,
        cfg,
        traj,
        wall,
        metrics,
        command or "l2l pretrain mask-model --out FOLDER",
        title="promptable mask model, a SAM stand-in",
        summary=f"Trained in the pretraining world (network: `l2l.foundation.mask_model`, training: `l2l.pretrain.mask_model`) on the visible instance masks of "
        f"{cfg.train_images:,} pool scenes ({cfg.pool.size} px, pool seed {cfg.pool.seed}; disjoint from every "
        "SynthRef split). Prompts: boxes, points, negatives.",
        steps_line=f"Steps: {cfg.steps:,} × {cfg.batch_images} images × {cfg.prompts_per_image} prompts",
        metrics_title=f"Metrics on {cfg.eval_images} held-out pool scenes",
        stand_in_for="SAM / SAM2 (a promptable, class-agnostic mask model)",
        training_data={
            "pool": cfg.pool.to_dict(),
            "train_indices": [0, cfg.train_images - 1],
            "eval_indices": [cfg.train_images, cfg.train_images + cfg.eval_images - 1],
            "targets": "visible instance masks; no sentences, no SynthRef image",
        },
    )
