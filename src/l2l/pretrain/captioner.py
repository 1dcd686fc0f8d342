"""Pretraining of the captioner (the CoCa / BLIP stand-in of :mod:`l2l.foundation.captioner`): its pool
data (object patches and captions), vocabulary, training loop, pool metrics and the model folder with its
card (``l2l pretrain captioner``)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.pool import PoolConfig, pool_map, render_pool_scene
from ..foundation.captioner import (
    CROP_MARGINS,
    FORMAT,
    SPECIALS,
    Captioner,
    CaptionerConfig,
    CaptionerNet,
    greedy_captions,
    patch,
    words,
)
from ..foundation.common import image_batch
from ..foundation.language import generic_caption
from ..utils.tensors import image_tensor
from ..utils.threads import torch_threads
from .common import StandInTrainConfig, cosine_step, optimizer_step, round_trip_half, save_stand_in, start_training


# ---------------------------------------------------------------------------- data and training
@dataclass
class CaptionerTrainConfig(StandInTrainConfig):
    MODEL = CaptionerConfig

    model: CaptionerConfig = field(default_factory=CaptionerConfig)
    pool: PoolConfig = field(default_factory=lambda: PoolConfig(size=128))
    train_images: int = 3000
    captions_per_object: int = 2
    steps: int = 2000
    batch_size: int = 128
    lr: float = 2e-3
    encoder_lr_scale: float = 0.3
    weight_decay: float = 1e-2


def _caption_job(args: tuple[PoolConfig, int, int, int]) -> list[tuple[np.ndarray, float, list[str]]]:
    cfg, index, crop, n_caps = args
    sc = render_pool_scene(cfg, index)
    rng = np.random.default_rng([index, 29])
    out = []
    for k, o in enumerate(sc.objects):
        m = sc.mask(k)
        if m.sum() < 15:
            continue
        c, scale = patch(sc.image, m, CROP_MARGINS[int(rng.integers(len(CROP_MARGINS)))])
        c = np.asarray(image_batch([c], crop)[0].permute(1, 2, 0).mul(255).round().byte())
        out.append((c, scale, [generic_caption(o, rng) for _ in range(n_caps)]))
    return out


def caption_data(cfg: CaptionerTrainConfig, start: int, count: int, show_progress: bool = False):
    """Crops (N, c, c, 3), scales (N,), captions (N × captions_per_object) of pool images [start, start+count)."""
    jobs = [(cfg.pool, i, cfg.model.crop_size, cfg.captions_per_object) for i in range(start, start + count)]
    recs = [r for rs in pool_map(_caption_job, jobs, cfg.workers, show_progress) for r in rs]
    return np.stack([r[0] for r in recs]), np.array([r[1] for r in recs], np.float32), [r[2] for r in recs]


def build_vocab(captions: Sequence[Sequence[str]]) -> list[str]:
    return list(SPECIALS) + sorted({w for caps in captions for c in caps for w in words(c)})


def _tokens(caps: Sequence[str], index: dict[str, int], max_words: int) -> torch.Tensor:
    seqs = [[1] + [index.get(w, 3) for w in words(c)][:max_words] + [2] for c in caps]
    out = torch.zeros(len(seqs), max(len(s) for s in seqs), dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s)
    return out


def train_captioner(
    cfg: CaptionerTrainConfig, max_steps: int | None = None, show_progress: bool = True
) -> tuple[CaptionerNet, list[dict[str, float]], float]:

    with torch_threads(cfg.threads):
        t0 = time.perf_counter()
        crops, scales, caps = caption_data(cfg, 0, cfg.train_images, show_progress)
        cfg.model.vocab = build_vocab(caps)
        index = {w: i for i, w in enumerate(cfg.model.vocab)}
        net, opt, rng, bar = start_training(CaptionerNet, cfg, 5, "pretrain captioner", show_progress, max_steps)
        traj: list[dict[str, float]] = []
        for step in bar:
            pick = rng.choice(len(crops), cfg.batch_size, replace=False)
            x = image_tensor(crops[pick])
            flip = torch.from_numpy(rng.random(len(pick)) < 0.5)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)  # generic captions name no side
            tok = _tokens([caps[i][int(rng.integers(len(caps[i])))] for i in pick], index, cfg.model.max_words)
            cosine_step(opt, cfg.lr, step, cfg.steps, warmup=50)
            logits = net.logits(net.embed(x, torch.from_numpy(scales[pick])), tok[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tok[:, 1:].reshape(-1), ignore_index=0)
            optimizer_step(opt, loss, step, cfg.log_every, traj, bar)
        return net, traj, time.perf_counter() - t0


@torch.no_grad()
def pool_caption_metrics(cap: Captioner, cfg: CaptionerTrainConfig, images: int = 150) -> dict[str, float]:
    """On held-out pool objects: per-word perplexity of their captions, and how often a greedy
    caption names the object's shape and colour correctly (in the shifted dialect's words)."""
    from ..foundation.language import COLORS, SHAPES

    crops, scales, caps = caption_data(dataclasses.replace(cfg, workers=1), cfg.train_images, images)
    index = cap.index
    nll, n = 0.0, 0
    for a in range(0, len(crops), 128):
        x = image_tensor(crops[a : a + 128])
        tok = _tokens([c[0] for c in caps[a : a + 128]], index, cfg.model.max_words)
        lg = cap.net.logits(cap.net.embed(x, torch.from_numpy(scales[a : a + 128])), tok[:, :-1])
        tgt = tok[:, 1:]
        nll += float(F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tgt.reshape(-1), ignore_index=0, reduction="sum"))
        n += int((tgt != 0).sum())
    shape_hits, colour_hits = [], []
    greedy = greedy_captions(cap, list(crops[:300]), list(scales[:300]))
    objs = [o for i in range(cfg.train_images, cfg.train_images + images) for o in _objects(cfg.pool, i)]
    for text, o in zip(greedy, objs[:300]):
        w = set(words(text))
        shape_hits.append(float(any(set(words(s)) <= w for s in SHAPES[o.shape])))
        colour_hits.append(float(any(set(words(s)) <= w for s in COLORS[o.color])))
    return {
        "perplexity": round(float(np.exp(nll / max(n, 1))), 3),
        "greedy_shape_named": round(float(np.mean(shape_hits)), 4),
        "greedy_colour_named": round(float(np.mean(colour_hits)), 4),
    }


def _objects(pool: PoolConfig, index: int) -> list:
    sc = render_pool_scene(pool, index)
    return [o for k, o in enumerate(sc.objects) if sc.mask(k).sum() >= 15]


def pretrain_captioner(
    cfg: CaptionerTrainConfig, out: str | Path, show_progress: bool = True, command: str = ""
) -> dict:
    net, traj, wall = train_captioner(cfg, show_progress=show_progress)
    round_trip_half(net)  # the card's metrics measure the stored (float16) weights
    metrics = pool_caption_metrics(Captioner(net), cfg)
    return save_stand_in(
        out,
        FORMAT,
        net,
        cfg,
        traj,
        wall,
        metrics,
        command or "l2l pretrain captioner --out FOLDER",
        title="autoregressive captioner, a CoCa / BLIP stand-in",
        summary="A conv image encoder (with the crop's scale) and a GRU word decoder, trained in the pretraining world "
        "(network: `l2l.foundation.captioner`, training: `l2l.pretrain.captioner`) on object crops (margins 0 / 10 / 20 % and masked) of "
        f"{cfg.train_images:,} pool images with generic captions — never SynthRef's referring templates.",
        steps_line=f"Steps: {cfg.steps:,} × batch {cfg.batch_size}; vocabulary {len(cfg.model.vocab)} words",
        metrics_title="Metrics on held-out pool objects",
        stand_in_for="CoCa / BLIP (an image captioner with next-word distributions)",
        training_data={
            "pool": cfg.pool.to_dict(),
            "train_indices": [0, cfg.train_images - 1],
            "pairs": "object crops (4 crop kinds) with generic captions (l2l.foundation.language)",
        },
    )
