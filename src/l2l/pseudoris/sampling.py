"""Distinctive caption sampling (Pseudo-RIS §3.2, Eqs. 1–3) and the plain decoders beside it.

For the cropped patches ``C = {x_1 … x_n}`` of one image's masks (one crop kind at a time), a
frozen captioner gives, for every prefix ``y_<t`` of a target ``x_i``'s caption, the next-word
distribution under every patch, ``P(y_t | y_<t, x_j)``. Eq. 1: a caption's probability is the
product of its steps. Eq. 2 calibrates the target's distribution against the others', weighted by
the cosine similarity ``s_ij`` of the captioner's visual embeddings::

    P(y_t | y_<t, x_i, C) = softmax( (P(y_t|y_<t, x_i) − 1/n Σ_{j≠i} s_ij P(y_t|y_<t, x_j)) / T ),  n = |C| − 1

and Eq. 3 samples the next word from it, after a top-k or top-p (nucleus) cut. Words that every
patch makes likely (generic words: "shape", "a photo of") are pushed down; words likely for the
target and unlikely for its look-alikes are pushed up.

The temperature ``T`` acts on differences of probabilities (values in [−1, 1]); the paper leaves it
at CoCa's default, which for such differences would make the distribution nearly uniform over the
vocabulary. Ours is ``temperature``, default 0.02, chosen by measurement on SynthRef's pseudo-label
quality (docs/results.md: T = 1 and 0.3 make captions worse than naive sampling; 0.02 better) —
configurable (docs/pseudo_ris.md).

Decoders per patch, as in the paper (§4: 11 candidates per crop): beam search (plain, the
captioner's own distribution), and sampling with each ``top_k`` and each ``top_p``; ``distinctive
= False`` gives the naive sampler of the paper's ablation (Table 5: sampling from
``P(y_t|y_<t, x_i)`` itself, softmax of the logits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..foundation.captioner import CaptionerProtocol


@dataclass(frozen=True)
class Candidate:
    text: str
    decoder: str  # "beam", "top_k=5", "top_p=0.4"
    log_prob: float  # Eq. 1 under the target patch alone (log P(y | x_i))


def calibrated(p: torch.Tensor, target: int, sims: torch.Tensor, temperature: float) -> torch.Tensor:
    """Eq. 2 for one step: ``p`` (n+1, V) next-word probabilities under every patch of C (the same
    prefix), ``sims`` (n+1,) the cosine similarities of the target's embedding to every patch."""
    others = [j for j in range(p.shape[0]) if j != target]
    z = p[target]
    if others:
        z = z - (sims[others, None] * p[others]).sum(0) / len(others)
    return torch.softmax(z / temperature, -1)


def calibrated_rows(
    probs: torch.Tensor, targets: torch.Tensor, sims: torch.Tensor, temperature: float, aggregation: str = "average"
) -> torch.Tensor:
    """Eq. 2 for many rows at once: ``probs`` (R, n+1, V) — row r's prefix under every patch —,
    ``targets`` (R,) the target patch of each row, ``sims`` (n+1, n+1) cosine similarities.

    ``aggregation="weighted_sum"``: the paper's Table 14 variant (App. H, Eq. 1 there),
    ``z = P_i − Σ_{j≠i} w_ij P_j`` with ``w_ij = s_ij / Σ_{j≠i} s_ij``. [ours] the similarities enter it
    floored at 0 (a negative s_ij would make a weight negative, or the sum zero); when every one is
    0 the weights are uniform."""
    r, m = probs.shape[:2]
    own = probs[torch.arange(r), targets]
    if m == 1:
        return torch.softmax(own / temperature, -1)
    w = sims[targets].clone()
    w[torch.arange(r), targets] = 0.0
    if aggregation == "average":
        z = own - torch.einsum("rn,rnv->rv", w, probs) / (m - 1)
    elif aggregation == "weighted_sum":
        w = w.clamp(min=0.0)
        total = w.sum(1, keepdim=True)
        uniform = torch.ones_like(w)
        uniform[torch.arange(r), targets] = 0.0
        w = torch.where(total > 0, w / total.clamp(min=1e-12), uniform / (m - 1))
        z = own - torch.einsum("rn,rnv->rv", w, probs)
    else:
        raise ValueError(f"aggregation must be average or weighted_sum, got {aggregation!r}")
    return torch.softmax(z / temperature, -1)


def cut(dist: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """``dist`` (B, V) restricted to its top-k words, or to the smallest set of words whose mass
    reaches ``top_p`` (always at least one), renormalised."""
    if top_k is not None:
        kth = dist.topk(min(int(top_k), dist.shape[-1]), -1).values[:, -1:]
        dist = torch.where(dist >= kth, dist, torch.zeros_like(dist))
    if top_p is not None:
        srt, idx = dist.sort(-1, descending=True)
        before = srt.cumsum(-1) - srt  # mass of the words ranked above each one
        keep = torch.zeros_like(dist, dtype=torch.bool).scatter(-1, idx, before < float(top_p))
        dist = torch.where(keep, dist, torch.zeros_like(dist))
    return dist / dist.sum(-1, keepdim=True).clamp(min=1e-12)


def _forbid(logits: torch.Tensor, cap: CaptionerProtocol, step: int) -> torch.Tensor:
    """The captioner's ``forbidden`` ids (padding, start, unknown) never; ``eos`` not as the first word."""
    bad = torch.zeros(logits.shape[-1], dtype=torch.bool)
    bad[list(cap.forbidden)] = True
    bad[cap.eos] = step == 0
    return logits.masked_fill(bad, float("-inf"))


@torch.no_grad()
def sample_captions(
    cap: CaptionerProtocol,
    patches: Sequence[np.ndarray],
    scales: Sequence[float],
    top_k: Sequence[int] = (5, 7, 9, 11, 13),
    top_p: Sequence[float] = (0.4, 0.5, 0.6, 0.7, 0.8),
    temperature: float = 0.02,
    distinctive: bool = True,
    beams: int = 3,
    seed: int = 0,
    aggregation: str = "average",
) -> list[list[Candidate]]:
    """Caption candidates of every patch of one image (one crop kind): beam search, then one sample
    per ``top_k`` and per ``top_p`` value — distinctive (Eqs. 2–3, the others' distributions aggregated by
    ``aggregation``: :func:`calibrated_rows`) or naive. Deterministic in ``seed``."""
    n = len(patches)
    emb, ctx = cap.embed(patches, scales)
    sims = emb @ emb.t()
    decoders: list[tuple[str, float]] = [("top_k", k) for k in top_k] + [("top_p", p) for p in top_p]
    # one row per (target, decoder); every row needs its prefix scored under all n patches
    rows = [(i, d) for i in range(n) for d in decoders]
    out: list[list[Candidate]] = [[] for _ in range(n)]
    if beams:
        for i, text, lp in zip(range(n), *beam_search(cap, patches, scales, beams, context=ctx)):
            out[i].append(Candidate(text, "beam", lp))
    if not rows:
        return out
    g = torch.Generator().manual_seed(int(seed))
    targets = torch.tensor([i for i, _ in rows])
    by_decoder = {d: torch.tensor([r for r, (_, e) in enumerate(rows) if e == d]) for d in decoders}
    seq = torch.full((len(rows), 1), cap.bos, dtype=torch.long)
    logp = torch.zeros(len(rows))
    done = torch.zeros(len(rows), dtype=torch.bool)
    state = cap.start(ctx, torch.arange(n).repeat(len(rows)))  # row r's prefix under patch j at r * n + j
    for step in range(cap.max_words + 1):
        lg, state = cap.step(state, seq[:, -1].repeat_interleave(n, 0))
        lg = _forbid(lg, cap, step)
        probs = torch.softmax(lg, -1).view(len(rows), n, -1)
        own = probs[torch.arange(len(rows)), targets]  # P(y_t | y_<t, x_i)
        dist = calibrated_rows(probs, targets, sims, temperature, aggregation) if distinctive else own
        dist = dist.masked_fill(~torch.isfinite(lg.view(len(rows), n, -1)[:, 0]), 0.0)  # forbidden stays forbidden
        nxt = torch.empty(len(rows), dtype=torch.long)
        for kind, v in decoders:
            sel = by_decoder[(kind, v)]
            d = cut(dist[sel], top_k=int(v) if kind == "top_k" else None, top_p=float(v) if kind == "top_p" else None)
            nxt[sel] = torch.multinomial(d, 1, generator=g)[:, 0]
        nxt[done] = cap.eos
        logp += torch.where(done, torch.zeros_like(logp), own[torch.arange(len(rows)), nxt].clamp(min=1e-12).log())
        seq = torch.cat([seq, nxt[:, None]], 1)
        done |= nxt == cap.eos
        if done.all():
            break
    for r, (i, (kind, v)) in enumerate(rows):
        out[i].append(Candidate(cap.decode(seq[r, 1:].tolist()), f"{kind}={v}", float(logp[r])))
    return out


@torch.no_grad()
def beam_search(
    cap: CaptionerProtocol, patches: Sequence[np.ndarray], scales: Sequence[float], beams: int = 3, context: Any = None
) -> tuple[list[str], list[float]]:
    """The most likely caption of each patch under its own distribution (Eq. 1), by beam search
    with ``beams`` beams (1: greedy); returns texts and their log-probabilities."""
    if context is None:
        _, context = cap.embed(patches, scales)
    n = len(patches)
    seqs = torch.full((n, 1, 1), cap.bos, dtype=torch.long)  # (patch, beam, t)
    score = torch.zeros(n, 1)
    fin = torch.zeros(n, 1, dtype=torch.bool)
    state = cap.start(context, torch.arange(n))  # row p * b + k: patch p, beam k
    for step in range(cap.max_words + 1):
        b = seqs.shape[1]
        lg, state = cap.step(state, seqs[:, :, -1].reshape(-1))
        lp = torch.log_softmax(_forbid(lg, cap, step), -1).view(n, b, -1)
        # a finished beam only extends with eos, at no cost
        lp = torch.where(fin[:, :, None], torch.full_like(lp, float("-inf")), lp)
        lp[:, :, cap.eos] = torch.where(fin, torch.zeros_like(score), lp[:, :, cap.eos])
        total = (score[:, :, None] + lp).view(n, -1)
        top = total.topk(min(beams, total.shape[1]), -1)
        beam, word = top.indices // lp.shape[-1], top.indices % lp.shape[-1]
        state = cap.reorder(state, (torch.arange(n)[:, None] * b + beam).reshape(-1))
        seqs = torch.cat([seqs[torch.arange(n)[:, None], beam], word[:, :, None]], -1)
        fin = fin[torch.arange(n)[:, None], beam] | (word == cap.eos)
        score = top.values
        if fin.all():
            break
    best = score.argmax(1)
    return ([cap.decode(seqs[i, best[i], 1:].tolist()) for i in range(n)], [float(score[i, best[i]]) for i in range(n)])
