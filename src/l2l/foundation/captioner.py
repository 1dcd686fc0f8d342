"""The captioner: our stand-in for CoCa / BLIP (``l2l pretrain captioner``), with next-word distributions.

Pseudo-RIS (ECCV 2024, §3.2) needs a frozen autoregressive captioner that exposes, at every step,
the distribution of the next word given a cropped patch and the words so far, and a visual
embedding of each patch (for the similarities s_ij of its Eq. 2). This one is trained in the
pretraining world on object crops of pool scenes — with the four crop kinds Pseudo-RIS uses
(margins 0 / 10 / 20 % and the masked 0 % crop) — paired with *generic captions* ("a photo of a
small red striped ring", :func:`l2l.foundation.language.generic_caption`), never with SynthRef's
referring templates; its words are the shifted dialect's, so its captions transfer to SynthRef
imperfectly, as a web captioner's do to RefCOCO.

Network: the pool-pretrained conv encoder (``builtin:synthpool-conv`` initialises it) on the crop at
``crop_size`` px, pooled, plus the crop's scale in its image (side of the crop / side of the image:
a crop resized to a fixed size loses how big its object was, and captions name sizes), projected
to the visual embedding; a GRU decoder over words, fed the embedding at every step. Word-level
vocabulary, stored with the weights.

Interface (:class:`CaptionerProtocol`, used by :mod:`l2l.pseudoris.sampling`): ``embed(patches,
scales)`` → unit visual embeddings (N, D) and a context; ``start(context, index)`` → a decoding
state with one row per ``index`` entry (a patch), ``step(state, tokens)`` → next-word logits (B, V)
after feeding one token per row (``bos`` first) and the new state, ``reorder(state, index)`` for
beam search; ``decode(ids)`` → text. The stand-in's state is the GRU's hidden state (one step per
word); a transformer captioner's is its prefix.
The real path: :class:`HFCaptioner` — a transformers captioning model (BLIP) from a local folder.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import normalize
from ..errors import MissingFileError, UsageError
from ..models.backbones import ConvEncoder
from ..pretrain.pool import PoolConfig, pool_map, render_pool_scene
from ..utils.tensors import image_tensor
from .common import (
    ModelConfigBase,
    StandInTrainConfig,
    cosine_step,
    image_batch,
    load_net,
    optimizer_step,
    start_training,
    torch_threads,
)
from .dual_encoder import crop_box
from .folders import round_trip_half, save_stand_in
from .language import generic_caption

FORMAT = "l2l-captioner/1"
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
CROP_MARGINS = (0.0, 0.1, 0.2, "masked")  # Pseudo-RIS §4: 0 / 10 / 20 % and the masked 0 % crop


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9\-]+", text.lower())


def patch(image: np.ndarray, mask: np.ndarray, margin: float | str) -> tuple[np.ndarray, float]:
    """The cropped patch of ``mask`` (square, around its box) and its scale (crop side / image side):
    ``margin`` 0 / 0.1 / 0.2 adds context on each side, ``"masked"`` is the 0 % crop with everything
    outside the mask blacked out (Pseudo-RIS's fourth crop kind)."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        raise UsageError("patch(): the mask is empty")
    box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    if margin == "masked":
        img = image * mask[:, :, None].astype(image.dtype)
        c = crop_box(img, box, 0.0)
        m = 0.0
    else:
        m = float(margin)
        c = crop_box(image, box, m)
    side = max(box[2] - box[0], box[3] - box[1]) * (1 + 2 * m)
    return c, float(side / max(image.shape[:2]))


@dataclass
class CaptionerConfig(ModelConfigBase):
    crop_size: int = 64
    conv_channels: tuple[int, int, int, int] = (32, 64, 128, 192)
    embed_dim: int = 128
    word_dim: int = 96
    hidden: int = 256
    max_words: int = 12
    vocab: list[str] = field(default_factory=list)  # set from the training captions
    init: str | None = "builtin:synthpool-conv"


class CaptionerNet(nn.Module):
    def __init__(self, cfg: CaptionerConfig):
        super().__init__()
        if len(cfg.vocab) <= len(SPECIALS) or tuple(cfg.vocab[: len(SPECIALS)]) != SPECIALS:
            raise UsageError(f"captioner vocabulary must start with {SPECIALS} and hold words")
        self.cfg = cfg
        c = cfg.conv_channels
        self.encoder = ConvEncoder(c)
        self.visual = nn.Sequential(
            nn.Linear(c[2] + c[3] + 1, cfg.embed_dim), nn.GELU(), nn.Linear(cfg.embed_dim, cfg.embed_dim)
        )
        self.h0 = nn.Linear(cfg.embed_dim, cfg.hidden)
        self.word = nn.Embedding(len(cfg.vocab), cfg.word_dim, padding_idx=0)
        self.gru = nn.GRU(cfg.word_dim + cfg.embed_dim, cfg.hidden, batch_first=True)
        self.out = nn.Linear(cfg.hidden, len(cfg.vocab))

    def embed(self, images: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """(N, D) visual embeddings (not normalised) of crops (N, 3, s, s) in [0, 1] and their scales (N,)."""
        f = self.encoder(normalize(images))
        pooled = torch.cat([f[2].mean((2, 3)), f[3].mean((2, 3)), scales[:, None].float()], 1)
        return self.visual(pooled)

    def logits(self, emb: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(N, t, V) next-word logits after each prefix of ``tokens`` (N, t) (teacher forcing)."""
        x = torch.cat([self.word(tokens), emb[:, None].expand(-1, tokens.shape[1], -1)], -1)
        h, _ = self.gru(x, torch.tanh(self.h0(emb))[None].contiguous())
        return self.out(h)


class CaptionerProtocol(Protocol):
    bos: int
    eos: int
    vocab_size: int
    max_words: int
    forbidden: tuple[int, ...]  # ids never emitted (padding, start, unknown)

    def embed(self, patches: Sequence[np.ndarray], scales: Sequence[float]) -> tuple[torch.Tensor, Any]: ...

    def start(self, context: Any, index: torch.Tensor) -> Any: ...

    def step(self, state: Any, tokens: torch.Tensor) -> tuple[torch.Tensor, Any]: ...

    def reorder(self, state: Any, index: torch.Tensor) -> Any: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def config(self) -> dict[str, Any]: ...


class Captioner:
    """The stand-in behind :class:`CaptionerProtocol`."""

    def __init__(self, net: CaptionerNet, device: str = "cpu", source: str = "memory"):
        self.net, self.device, self.source = net.to(device).eval(), device, source
        self.vocab = list(net.cfg.vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.bos, self.eos, self.vocab_size, self.max_words = 1, 2, len(self.vocab), net.cfg.max_words
        self.forbidden: tuple[int, ...] = (0, 1, 3)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> "Captioner":
        net, source = load_net(path, FORMAT, lambda m: CaptionerNet(CaptionerConfig(**m)))
        return cls(net, device, source)

    def config(self) -> dict[str, Any]:
        return {"captioner": self.source, "format": FORMAT}

    @torch.no_grad()
    def embed(self, patches: Sequence[np.ndarray], scales: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit visual embeddings (N, D), and the context for :meth:`next_logits` (the raw embeddings)."""
        x = image_batch(patches, self.net.cfg.crop_size).to(self.device)
        e = self.net.embed(x, torch.tensor(list(scales), dtype=torch.float32, device=self.device))
        return F.normalize(e, dim=-1).cpu(), e

    def start(self, context: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = context[index.to(context.device)]
        return emb, torch.tanh(self.net.h0(emb))[None].contiguous()

    @torch.no_grad()
    def step(self, state: tuple[torch.Tensor, torch.Tensor], tokens: torch.Tensor):
        emb, h = state
        x = torch.cat([self.net.word(tokens.to(emb.device)), emb], -1)[:, None]
        y, h = self.net.gru(x, h)
        return self.net.out(y[:, 0]).float().cpu(), (emb, h)

    @staticmethod
    def reorder(state: tuple[torch.Tensor, torch.Tensor], index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb, h = state
        i = index.to(emb.device)
        return emb[i], h[:, i].contiguous()

    def encode(self, text: str) -> list[int]:
        return [self.bos] + [self.index.get(w, 3) for w in words(text)][: self.max_words] + [self.eos]

    def decode(self, ids: Sequence[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos:
                break
            if i > 3:
                out.append(self.vocab[i])
        return " ".join(out)


class HFCaptioner:
    """The real path: a transformers captioning model (BLIP, ``BlipForConditionalGeneration``) and its
    processor's tokenizer from a local folder, behind :class:`CaptionerProtocol`. The visual
    embedding is the vision model's pooled output; next-word logits come from the text decoder
    over the prefix (recomputed per step: prefixes are short)."""

    MEAN = (0.48145466, 0.4578275, 0.40821073)
    STD = (0.26862954, 0.26130258, 0.27577711)

    def __init__(self, model, tokenizer, device: str = "cpu", source: str = "config", max_words: int = 16):
        self.model, self.tokenizer, self.device, self.source = model.to(device).eval(), tokenizer, device, source
        self.size = int(model.config.vision_config.image_size)
        self.bos = int(model.config.text_config.bos_token_id or tokenizer.cls_token_id)
        self.eos = int(model.config.text_config.sep_token_id or tokenizer.sep_token_id)
        self.vocab_size, self.max_words = int(model.config.text_config.vocab_size), max_words
        pad = model.config.text_config.pad_token_id
        self.forbidden = tuple(sorted({self.bos} | ({int(pad)} if pad is not None else set())))

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> "HFCaptioner":
        from transformers import AutoTokenizer, BlipForConditionalGeneration

        if not (Path(path) / "config.json").exists():
            raise MissingFileError(f"captioner: no local Hugging Face folder at {path} (config.json missing)")
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        return cls(
            BlipForConditionalGeneration.from_pretrained(str(path), local_files_only=True), tok, device, str(path)
        )

    def config(self) -> dict[str, Any]:
        return {"captioner": self.source, "format": "transformers-blip"}

    @torch.no_grad()
    def embed(self, patches: Sequence[np.ndarray], scales: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
        x = image_batch(patches, self.size)
        mean, std = torch.tensor(self.MEAN).view(1, 3, 1, 1), torch.tensor(self.STD).view(1, 3, 1, 1)
        out = self.model.vision_model(pixel_values=((x - mean) / std).to(self.device))
        return F.normalize(out.pooler_output.float(), dim=-1).cpu(), out.last_hidden_state

    def start(self, context: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = context[index.to(context.device)]
        return ctx, torch.zeros(len(ctx), 0, dtype=torch.long)

    @torch.no_grad()
    def step(self, state: tuple[torch.Tensor, torch.Tensor], tokens: torch.Tensor):
        ctx, prefix = state
        prefix = torch.cat([prefix, tokens[:, None].cpu()], 1)
        p = prefix.to(self.device)
        out = self.model.text_decoder(input_ids=p, attention_mask=torch.ones_like(p), encoder_hidden_states=ctx)
        return out.logits[:, -1].float().cpu(), (ctx, prefix)

    @staticmethod
    def reorder(state: tuple[torch.Tensor, torch.Tensor], index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx, prefix = state
        return ctx[index.to(ctx.device)], prefix[index]

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        if self.eos in ids:
            ids = ids[: ids.index(self.eos)]
        return str(self.tokenizer.decode(ids, skip_special_tokens=True)).strip()


@torch.no_grad()
def greedy_captions(cap: CaptionerProtocol, patches: Sequence[np.ndarray], scales: Sequence[float]) -> list[str]:
    """The most likely next word at every step (no sampling): each patch's plain caption."""
    _, ctx = cap.embed(patches, scales)
    state = cap.start(ctx, torch.arange(len(patches)))
    seq = torch.full((len(patches), 1), cap.bos, dtype=torch.long)
    done = torch.zeros(len(patches), dtype=torch.bool)
    for step in range(cap.max_words + 1):
        logits, state = cap.step(state, seq[:, -1])
        logits[:, list(cap.forbidden)] = float("-inf")  # as every decoder: no special word, no empty caption
        if step == 0:
            logits[:, cap.eos] = float("-inf")
        nxt = logits.argmax(-1)
        nxt[done] = cap.eos
        seq = torch.cat([seq, nxt[:, None]], 1)
        done |= nxt == cap.eos
        if done.all():
            break
    return [cap.decode(s[1:].tolist()) for s in seq]


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
    from .language import COLORS, SHAPES

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
        "(`l2l.foundation.captioner`) on object crops (margins 0 / 10 / 20 % and masked) of "
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
