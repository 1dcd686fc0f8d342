"""SynthRef expressions: programs, their meaning in a scene, their words, and a parser.

A referring expression is first built as a *program* (a small JSON-able dict), then
realised as text. Every sentence is checked twice against its scene:

1. ``resolve(program, scene)`` must return exactly the target object;
2. ``parse(text)`` recovers a program from the words alone, and that program must also
   resolve to exactly the target — this catches any bug in the realiser, because the
   parser knows nothing about how the text was produced.

Program kinds (tagged on each ref as ``kind``):

``attribute``       shape plus any attributes: "the large striped red square"
``attribute_only``  appearance words only, no shape noun and no location word (the
                    RefCOCO+ style): "the big striped one"
``location``        an extreme of a filtered set: "the leftmost triangle", "ball at the top"
``relation``        relative to a uniquely described anchor: "the square right of the blue star"
``ordinal``         rank along an axis: "the second circle from the left"

Spatial semantics use object centres in image coordinates (x right, y down). A spatial
judgement is only accepted when the gap between the competing objects is at least
``margin`` pixels; anything closer counts as ambiguous, so the generator never emits it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import UsageError
from .vocab import (
    COLORS,
    DIRECTIONS,
    GENERIC_HEADS,
    LOCATION_ADJ,
    LOCATION_PHRASES,
    ORDINALS,
    RELATIONS,
    SHAPE_WORDS,
    SIZES,
    TEXTURES,
)

KINDS: tuple[str, ...] = ("attribute", "attribute_only", "location", "relation", "ordinal")
NEAREST_RATIO = 1.3  # "next to X": the second-closest must be this much farther


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene: its attributes and its centre in pixels."""

    shape: str
    color: str
    size: str
    texture: str
    cx: float
    cy: float

    def attr(self, name: str) -> str:
        return getattr(self, name)


Filter = dict[str, str]  # attribute name -> canonical value
Program = dict[str, Any]


# --------------------------------------------------------------------------- meaning
def matches(flt: Filter, objects: Sequence[SceneObject]) -> list[int]:
    """Indices of the objects that carry every attribute value of ``flt``."""
    return [i for i, o in enumerate(objects) if all(o.attr(k) == v for k, v in flt.items())]


def _coord(o: SceneObject, axis: str) -> float:
    return o.cx if axis == "x" else o.cy


def resolve(program: Program, objects: Sequence[SceneObject], margin: float) -> list[int]:
    """The objects a program refers to. Unique reference ⇔ a one-element list.

    Ambiguous spatial judgements (gaps below ``margin``) return every competing object,
    so an ambiguous program never looks unique.
    """
    kind = program["kind"]
    cand = matches(program["np"], objects)
    if kind in ("attribute", "attribute_only"):
        return cand
    if kind == "location":
        axis, sign = DIRECTIONS[program["dir"]]
        ranked = sorted(cand, key=lambda i: -sign * _coord(objects[i], axis))
        if len(ranked) >= 2:
            gap = sign * (_coord(objects[ranked[0]], axis) - _coord(objects[ranked[1]], axis))
            if gap < margin:
                return ranked[:2]
        return ranked[:1]
    if kind == "ordinal":
        axis, sign = DIRECTIONS[program["dir"]]
        n = int(program["n"])
        # "second from the left": rank objects starting at the left edge
        ranked = sorted(cand, key=lambda i: -sign * _coord(objects[i], axis))
        if n > len(ranked):
            return []
        pos = [sign * _coord(objects[i], axis) for i in ranked]
        for a, b in ((n - 2, n - 1), (n - 1, n)):
            if 0 <= a and b < len(ranked) and pos[a] - pos[b] < margin:
                return sorted({ranked[a], ranked[b]})
        return [ranked[n - 1]]
    if kind == "relation":
        anchors = matches(program["anchor"], objects)
        if len(anchors) != 1:
            return anchors  # zero or several anchors: not a unique reference
        anchor = objects[anchors[0]]
        cand = [i for i in cand if i != anchors[0]]
        rel = program["rel"]
        if rel == "nearest":
            ranked = sorted(cand, key=lambda i: math.hypot(objects[i].cx - anchor.cx, objects[i].cy - anchor.cy))
            if len(ranked) >= 2:
                d = [math.hypot(objects[i].cx - anchor.cx, objects[i].cy - anchor.cy) for i in ranked[:2]]
                if d[1] < NEAREST_RATIO * d[0]:
                    return ranked[:2]
            return ranked[:1]
        axis, sign = {"left_of": ("x", -1), "right_of": ("x", 1), "above": ("y", -1), "below": ("y", 1)}[rel]
        offsets = [sign * (_coord(objects[i], axis) - _coord(anchor, axis)) for i in cand]
        if any(abs(d) < margin for d in offsets):
            return cand  # someone stands on the border: ambiguous
        return [i for i, d in zip(cand, offsets) if d >= margin]
    raise UsageError(f"unknown program kind {kind!r}")


# --------------------------------------------------------------------------- words
def _pick(rng: np.random.Generator, seq: Sequence[str]) -> str:
    return seq[int(rng.integers(len(seq)))]


def realise_np(flt: Filter, rng: np.random.Generator) -> str:
    """A noun phrase for a filter: [size] [texture] [colour] (shape | one/thing/...)."""
    pre: list[str] = []
    post = ""
    if "size" in flt:
        pre.append(_pick(rng, SIZES[flt["size"]][1]))
    tex_adj: str | None = None
    if "texture" in flt:
        adjs, posts = TEXTURES[flt["texture"]]
        if posts and rng.random() < 0.35:
            post = " " + _pick(rng, posts)
        else:
            tex_adj = _pick(rng, adjs)
    col = _pick(rng, COLORS[flt["color"]][1]) if "color" in flt else None
    if tex_adj and col and rng.random() < 0.3:
        pre += [col, tex_adj]
    else:
        pre += [w for w in (tex_adj, col) if w]
    head = _pick(rng, SHAPE_WORDS[flt["shape"]]) if "shape" in flt else _pick(rng, GENERIC_HEADS)
    return " ".join(pre + [head]) + post


def _det(rng: np.random.Generator, p: float = 0.5) -> str:
    return "the " if rng.random() < p else ""


def realise(program: Program, rng: np.random.Generator) -> str:
    """Text for a program (lower case, single spaces, no punctuation)."""
    kind = program["kind"]
    np_text = realise_np(program["np"], rng)
    if kind in ("attribute", "attribute_only"):
        return _det(rng) + np_text
    if kind == "location":
        d = program["dir"]
        if rng.random() < 0.5:
            adj = _pick(rng, [w for w, v in LOCATION_ADJ.items() if v == d])
            return _det(rng) + adj + " " + np_text
        phrase = _pick(rng, [w for w, v in LOCATION_PHRASES.items() if v == d])
        return _det(rng) + np_text + " " + phrase
    if kind == "ordinal":
        ords = [w for w, v in ORDINALS.items() if v == program["n"]]
        return "the " + _pick(rng, ords) + " " + np_text + " from the " + program["dir"]
    if kind == "relation":
        phrase = _pick(rng, [w for w, v in RELATIONS.items() if v == program["rel"]])
        return _det(rng) + np_text + " " + phrase + " " + _det(rng, 0.6) + realise_np(program["anchor"], rng)
    raise UsageError(f"unknown program kind {kind!r}")


# --------------------------------------------------------------------------- parser
def _word_table() -> dict[str, tuple[str, str]]:
    table: dict[str, tuple[str, str]] = {}
    for canon, words in SHAPE_WORDS.items():
        for w in words:
            table[w] = ("shape", canon)
    for canon, (_, words) in COLORS.items():
        for w in words:
            table[w] = ("color", canon)
    for canon, (_, words) in SIZES.items():
        for w in words:
            table[w] = ("size", canon)
    for canon, (adjs, posts) in TEXTURES.items():
        for w in adjs + posts:
            table[w] = ("texture", canon)
    return table


_WORDS = _word_table()


class ParseError(ValueError):
    """The text is not a SynthRef expression."""


def parse_np(tokens: Sequence[str]) -> Filter:
    """Recover a filter from noun-phrase tokens (order-insensitive, strict vocabulary)."""
    toks = list(tokens)
    if toks and toks[0] == "the":
        toks = toks[1:]
    flt: Filter = {}
    i = 0
    head_seen = False
    while i < len(toks):
        two = " ".join(toks[i : i + 2])
        if i + 1 < len(toks) and two in _WORDS:
            key, val = _WORDS[two]
            step = 2
        elif toks[i] in _WORDS:
            key, val = _WORDS[toks[i]]
            step = 1
        elif toks[i] in GENERIC_HEADS:
            key, val, step = "head", "", 1
        else:
            raise ParseError(f"unknown word {toks[i]!r} in noun phrase {' '.join(tokens)!r}")
        if key == "head":
            head_seen = True
        else:
            if key in flt and flt[key] != val:
                raise ParseError(f"contradictory {key} in {' '.join(tokens)!r}")
            flt[key] = val
            head_seen = head_seen or key == "shape"
        i += step
    if not flt or not head_seen:
        raise ParseError(f"no noun phrase in {' '.join(tokens)!r}")
    return flt


def _ends_with(tokens: Sequence[str], phrase: str) -> bool:
    p = phrase.split()
    return len(tokens) > len(p) and list(tokens[-len(p) :]) == p


def parse(text: str) -> Program:
    """Recover a program from a SynthRef sentence, without any knowledge of its scene."""
    tokens = text.lower().split()
    if tokens and tokens[0] == "the":
        tokens = tokens[1:]
    if not tokens:
        raise ParseError("empty expression")
    # ordinal: "<ord> NP from the <dir>"
    if tokens[0] in ORDINALS and len(tokens) >= 5 and tokens[-3:-1] == ["from", "the"] and tokens[-1] in DIRECTIONS:
        return {"kind": "ordinal", "n": ORDINALS[tokens[0]], "dir": tokens[-1], "np": parse_np(tokens[1:-3])}
    # relation: "NP <rel> NP" (earliest position, longest phrase)
    phrases = sorted(RELATIONS, key=lambda p: -len(p.split()))
    for i in range(1, len(tokens)):
        for p in phrases:
            pt = p.split()
            if tokens[i : i + len(pt)] == pt and i + len(pt) < len(tokens):
                return {
                    "kind": "relation",
                    "rel": RELATIONS[p],
                    "np": parse_np(tokens[:i]),
                    "anchor": parse_np(tokens[i + len(pt) :]),
                }
    # location: "<adj> NP" or "NP <phrase>"
    if tokens[0] in LOCATION_ADJ and len(tokens) >= 2:
        return {"kind": "location", "dir": LOCATION_ADJ[tokens[0]], "np": parse_np(tokens[1:])}
    for p in sorted(LOCATION_PHRASES, key=lambda p: -len(p.split())):
        if _ends_with(tokens, p):
            return {"kind": "location", "dir": LOCATION_PHRASES[p], "np": parse_np(tokens[: -len(p.split())])}
    flt = parse_np(tokens)
    return {"kind": "attribute" if "shape" in flt else "attribute_only", "np": flt}


# --------------------------------------------------------------------------- building
_ATTRS = ("shape", "color", "size", "texture")


def _subsets(
    rng: np.random.Generator, target: SceneObject, must: Iterable[str] = (), exclude: Iterable[str] = ()
) -> list[Filter]:
    must, exclude = set(must), set(exclude)
    free = [a for a in _ATTRS if a not in must and a not in exclude]
    out: list[Filter] = []
    for bits in range(1 << len(free)):
        keys = set(must) | {a for j, a in enumerate(free) if bits >> j & 1}
        if keys:
            out.append({a: target.attr(a) for a in _ATTRS if a in keys})
    # people name few attributes: prefer small filters, with random ties and exceptions
    sizes = [len(f) + rng.exponential(0.9) for f in out]
    return [out[j] for j in np.argsort(sizes, kind="stable")]


def build_program(
    kind: str, t: int, objects: Sequence[SceneObject], margin: float, rng: np.random.Generator
) -> Program | None:
    """A random program of ``kind`` that refers to exactly object ``t``, or None."""
    target = objects[t]
    if kind == "attribute":
        for flt in _subsets(rng, target, must=("shape",)):
            if matches(flt, objects) == [t]:
                return {"kind": kind, "np": flt}
        return None
    if kind == "attribute_only":
        for flt in _subsets(rng, target, exclude=("shape",)):
            if matches(flt, objects) == [t]:
                return {"kind": kind, "np": flt}
        return None
    if kind in ("location", "ordinal"):  # an extreme, or a rank, along one direction
        min_count, ranks = (2, (None,)) if kind == "location" else (3, (2, 3, 1))
        for flt in _subsets(rng, target):
            if len(matches(flt, objects)) < min_count:
                continue
            for d in rng.permutation(list(DIRECTIONS)):
                for n in ranks:
                    prog = {"kind": kind, "dir": str(d), "np": flt} | ({} if n is None else {"n": n})
                    if resolve(prog, objects, margin) == [t]:
                        return prog
        return None
    if kind == "relation":
        anchors = [int(a) for a in rng.permutation(len(objects)) if a != t]
        for a in anchors:
            afl = next((f for f in _subsets(rng, objects[a], must=("shape",)) if matches(f, objects) == [a]), None)
            if afl is None:
                continue
            for flt in _subsets(rng, target):
                if len(matches(flt, objects)) < 2:
                    continue
                for rel in rng.permutation(["left_of", "right_of", "above", "below", "nearest"]):
                    prog = {"kind": kind, "rel": str(rel), "np": flt, "anchor": afl}
                    if resolve(prog, objects, margin) == [t]:
                        return prog
        return None
    raise UsageError(f"unknown kind {kind!r}")
