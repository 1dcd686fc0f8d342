"""How good are the pseudo-labels? Measured against SynthRef's ground truth (analysis only).

For each (mask, caption) pair of a generation's records: the mask's object is the image's
ground-truth object it overlaps most (IoU ≥ ``min_iou``, else the mask matches no object); the
caption's noun phrase (:func:`~l2l.pseudoris.filtering.noun_phrase`) is read into SynthRef
attributes with the shifted dialect's synonym tables (shape, colour, size, texture; two values of
one attribute make the caption contradictory); the caption *picks out* its mask when the objects
whose attributes fit it are exactly the mask's object. This is the issue's "caption picks out its
mask under SynthRef's own checker", restricted to what generic captions can say: attributes —
location, ordinal and relation words are not produced by the captioner (the paper's limitation;
``names_a_place`` counts the captions that have one).

Reads ground-truth masks and attributes of training images: a measurement of the pseudo-labels,
never an input of them.

:func:`caption_counts` needs no ground truth: the vocabulary of the kept captions beside the dataset's
own sentences (Pseudo-RIS Table 10), the mean DoS of all candidates (Table 13: distinctive vs naive
sampling) and the UoS / CoS thresholds that keep as many captions as DoS ≥ τ (Table 12's rows at an
equal number of kept captions; the paper does not say how it thresholded them).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from ..foundation.language import COLORS, SHAPES, SIZES, TEXTURES
from ..utils.masks import mask_iou
from .filtering import noun_phrase
from .generate import _read_records, record_masks

_TABLES = {"shape": SHAPES, "color": COLORS, "size": SIZES, "texture": TEXTURES}
# words of a location, ordinal or relation phrase, in SynthRef's language or the shifted dialect
SPATIAL_WORDS = frozenset(
    "left right top bottom above below upper lower highest lowest furthest nearest closest beside middle "
    "center centre first second third leftmost rightmost topmost bottommost left-most right-most upper-most "
    "lower-most underneath beneath".split()
)
_PHRASES = sorted(
    ((syn, attr, value) for attr, t in _TABLES.items() for value, syns in t.items() for syn in syns),
    key=lambda x: -len(x[0]),
)


def caption_attributes(caption: str) -> dict[str, set[str]]:
    """Attribute values named in the caption's noun phrase (longest synonyms first)."""
    text = " " + " ".join(noun_phrase(caption).lower().split()) + " "
    out: dict[str, set[str]] = {}
    for syn, attr, value in _PHRASES:
        key = f" {syn} "
        while key in text:
            out.setdefault(attr, set()).add(value)
            text = text.replace(key, " ", 1)
    return out


def names_a_place(caption: str) -> bool:
    """Whether the caption says where its object is (a location, ordinal or relation word)."""
    return not SPATIAL_WORDS.isdisjoint(caption.lower().replace(",", " ").split())


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9\-']+", text.lower())


def thresholds_matching(scores: dict[str, list[float]], like: str = "dos", tau: float = 1.3) -> dict[str, float | None]:
    """Per score kind, the threshold that keeps as many candidates as ``like ≥ tau`` keeps (the
    ``k``-th largest value, ``k`` that count); ``None`` when that keeps none."""
    k = sum(1 for v in scores[like] if v >= tau)
    out: dict[str, float | None] = {}
    for name, values in scores.items():
        ranked = sorted(values, reverse=True)
        out[name] = float(ranked[k - 1]) if 0 < k <= len(ranked) else None
    return out


def caption_counts(folder: Any, sentences: Sequence[str] = (), tau: float = 1.3) -> dict[str, Any]:
    """Counts of a generation's captions (module docstring): candidates, kept ones, vocabulary sizes,
    mean distinctiveness over the candidates with a finite DoS (an image with one mask gives ``inf``)."""
    from pathlib import Path

    scores: dict[str, list[float]] = {"dos": [], "uos": [], "cos": []}
    vocab_kept: set[str] = set()
    vocab_all: set[str] = set()
    n = kept = 0
    for rec in _read_records(Path(folder) / "records"):
        for m in rec["masks"]:
            for c in m["captions"]:
                n += 1
                kept += int(c["kept"])
                words = _words(c["text"])
                vocab_all.update(words)
                if c["kept"]:
                    vocab_kept.update(words)
                for name in scores:
                    v = c.get(name)
                    scores[name].append(float("inf") if v == "inf" else float(v))
    finite = [v for v in scores["dos"] if np.isfinite(v)]
    gt_vocab = {w for t in sentences for w in _words(t)}
    return {
        "candidates": n,
        "kept": kept,
        "vocabulary_kept": len(vocab_kept),
        "vocabulary_candidates": len(vocab_all),
        "vocabulary_dataset": len(gt_vocab),
        "mean_dos": round(float(np.mean(finite)), 4) if finite else None,
        "dos_finite": len(finite),
        "thresholds_matching_dos": {"tau": tau, **thresholds_matching(scores, "dos", tau)},
    }


def pseudo_label_quality(ds: Any, folder: Any, min_iou: float = 0.5) -> dict[str, Any]:
    """Shares over kept and over rejected captions (module docstring), and over masks."""
    from pathlib import Path

    stats: dict[str, dict[str, float]] = {
        s: {
            "captions": 0,
            "picks_out": 0,
            "correct": 0,
            "contradictory": 0,
            "no_attribute": 0,
            "bad_mask": 0,
            "names_a_place": 0,
        }
        for s in ("kept", "rejected")
    }
    masks_total = masks_matched = 0
    for rec in _read_records(Path(folder) / "records"):
        if not rec["masks"]:
            continue
        image_id = int(rec["image_id"])
        anns = ds.image_anns(image_id)
        gts = [ds.mask(a).astype(bool) for a in anns]
        attrs = [ds.anns[a].get("attributes", {}) for a in anns]
        for m, seg in zip(rec["masks"], record_masks(rec)):
            ious = [mask_iou(seg, g) for g in gts]
            t = int(np.argmax(ious)) if ious else -1
            ok_mask = t >= 0 and ious[t] >= min_iou
            masks_total += 1
            masks_matched += int(ok_mask)
            for c in m["captions"]:
                s = stats["kept" if c["kept"] else "rejected"]
                s["captions"] += 1
                s["names_a_place"] += int(names_a_place(c["text"]))
                if not ok_mask:
                    s["bad_mask"] += 1
                    continue
                named = caption_attributes(c["text"])
                if any(len(v) > 1 for v in named.values()):
                    s["contradictory"] += 1
                    continue
                if not named:
                    s["no_attribute"] += 1
                fits = [k for k, a in enumerate(attrs) if all(a.get(attr) in vals for attr, vals in named.items())]
                s["correct"] += int(t in fits)
                s["picks_out"] += int(fits == [t])
    out: dict[str, Any] = {
        "masks": masks_total,
        "masks_matching_an_object": round(masks_matched / max(masks_total, 1), 4),
    }
    for name, s in stats.items():
        n = max(s["captions"], 1)
        out[name] = {"captions": int(s["captions"]), **{k: round(v / n, 4) for k, v in s.items() if k != "captions"}}
    return out
