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
The training (pool patches and captions, vocabulary, loop, perplexity): :mod:`l2l.pretrain.captioner`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import normalize
from ..errors import MissingFileError, UsageError
from ..nets.backbones import ConvEncoder
from .common import ModelConfigBase, image_batch, load_net
from .dual_encoder import crop_box

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
