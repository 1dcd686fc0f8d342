"""The pretraining world's language: a *shifted* dialect of SynthRef's, for the foundation stand-ins.

A web-trained MLLM or CLIP never saw RefCOCO's annotators; it learned from other people's
words. Our stand-ins are trained the same way: the meaning of an expression is a SynthRef
program (built and checked by :func:`l2l.data.synthref_lang.build_program` / ``resolve`` on a
pool scene, the same machinery), but its words come from this module's tables, which differ
from SynthRef's (``l2l.data.vocab``) on purpose:

* other synonyms — SynthRef's ``ball``, ``disk``, ``box``, ``block``, ``bar``, ``brick``,
  ``hex``, ``plus sign``, ``rhombus``, ``donut``, ``hoop``, ``moon``, ``little``, ``tiny``,
  ``mid-sized``, ``huge``, ``violet``, ``turquoise``, ``spotted``, ``polka-dot`` never occur
  here (:data:`SYNTHREF_ONLY_WORDS`; ``tests/test_foundation.py`` checks it), and words SynthRef
  never uses do (``disc``, ``tile``, ``oblong``, ``lozenge``, ``annulus``, ``aqua``, ``stripy``…);
* other templates and word orders — "counting from the left, the second star", "the star,
  the red one", "the ring located underneath the blue cross", "star (red, striped)";
* generic captions for the dual encoder (:func:`generic_caption`): "a photo of a small red
  striped ring", never a referring expression.

The stand-ins read text through MiniLM (real pretrained weights), which knows that a ball is
round and a moon is a crescent only as well as a general-purpose sentence encoder does: the
transfer to SynthRef's words is partial, as an MLLM's transfer to RefCOCO is.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..data.synthref_lang import KINDS, Filter, Program, SceneObject, build_program, resolve

SHAPES: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "round shape"),
    "square": ("square", "tile"),
    "rectangle": ("rectangle", "oblong", "strip"),
    "triangle": ("triangle", "three-sided shape"),
    "star": ("star", "five-pointed star"),
    "pentagon": ("pentagon", "five-sided shape"),
    "hexagon": ("hexagon", "six-sided shape"),
    "cross": ("cross", "x shape"),
    "heart": ("heart", "love heart"),
    "diamond": ("diamond", "lozenge"),
    "ring": ("ring", "annulus", "circle with a hole"),
    "crescent": ("crescent", "sickle"),
}
COLORS: dict[str, tuple[str, ...]] = {
    "red": ("red", "scarlet"),
    "green": ("green", "leaf green"),
    "blue": ("blue", "navy"),
    "yellow": ("yellow", "lemon"),
    "purple": ("purple", "lilac"),
    "orange": ("orange", "amber"),
    "pink": ("pink", "rose"),
    "cyan": ("cyan", "aqua", "teal"),
    "brown": ("brown", "chocolate"),
    "white": ("white", "ivory"),
    "black": ("black", "jet black"),
}
SIZES: dict[str, tuple[str, ...]] = {
    "small": ("small", "smallish"),
    "medium": ("medium", "middle-sized", "average-sized"),
    "large": ("large", "giant"),
}
TEXTURES: dict[str, tuple[str, ...]] = {
    "solid": ("plain", "uniform", "unpatterned"),
    "striped": ("striped", "stripy", "lined"),
    "dotted": ("dotted", "speckled"),
}
GENERIC = ("shape", "item", "figure")
SIDE = {"left": "left", "right": "right", "top": "top", "bottom": "bottom"}
# location: postnominal and prenominal phrasings that SynthRef does not use
LOCATION_POST = {
    "left": ("farthest to the left", "nearest the left edge", "at the very left"),
    "right": ("farthest to the right", "nearest the right edge", "at the very right"),
    "top": ("nearest the top edge", "at the very top", "highest up"),
    "bottom": ("nearest the bottom edge", "at the very bottom", "furthest down"),
}
LOCATION_PRE = {"left": ("left-most",), "right": ("right-most",), "top": ("upper-most",), "bottom": ("lower-most",)}
ORDINAL_WORDS = {1: ("first", "number one"), 2: ("second", "number two"), 3: ("third", "number three")}
RELATION_WORDS = {
    "left_of": ("located to the left of", "on the left side of", "left of"),
    "right_of": ("located to the right of", "on the right side of", "right of"),
    "above": ("located above", "higher than", "on top of"),
    "below": ("situated below", "lower than", "below"),
    "nearest": ("closest to", "beside", "nearest"),
}
# SynthRef's words that this dialect never uses (the shift a test checks)
SYNTHREF_ONLY_WORDS = (
    "ball",
    "disk",
    "box",
    "block",
    "bar",
    "brick",
    "hex",
    "plus",
    "rhombus",
    "donut",
    "hoop",
    "moon",
    "little",
    "tiny",
    "mid-sized",
    "medium-sized",
    "big",
    "huge",
    "violet",
    "turquoise",
    "spotted",
    "polka-dot",
    "leftmost",
    "rightmost",
    "topmost",
    "bottommost",
    "lowest",
    "underneath",
    "beneath",
)


def _pick(rng: np.random.Generator, seq: Sequence[str]) -> str:
    return seq[int(rng.integers(len(seq)))]


def noun_phrase(flt: Filter, rng: np.random.Generator) -> str:
    """A shifted noun phrase: adjectives in a random order, or the colour after the noun."""
    adj = []
    if "size" in flt:
        adj.append(_pick(rng, SIZES[flt["size"]]))
    if "texture" in flt:
        adj.append(_pick(rng, TEXTURES[flt["texture"]]))
    color = _pick(rng, COLORS[flt["color"]]) if "color" in flt else None
    head = _pick(rng, SHAPES[flt["shape"]]) if "shape" in flt else _pick(rng, GENERIC)
    form = rng.random()
    if color and adj and form < 0.25:  # "star (red, striped)"
        return f"{head} ({', '.join([color] + adj)})"
    if color and form < 0.45:  # "striped star in red"
        return " ".join(adj + [head, "in", color])
    words = adj + ([color] if color else [])
    rng.shuffle(words)
    return " ".join(words + [head])


def realise_shifted(program: Program, rng: np.random.Generator) -> str:
    """Text of a SynthRef program in the shifted dialect."""
    kind = program["kind"]
    np_text = noun_phrase(program["np"], rng)
    if kind in ("attribute", "attribute_only"):
        return _pick(rng, ("the {}", "a {}", "find the {}", "{}", "the {} in the picture")).format(np_text)
    if kind == "location":
        d = program["dir"]
        if rng.random() < 0.3:
            return f"the {_pick(rng, LOCATION_PRE[d])} {np_text}"
        return f"the {np_text} {_pick(rng, LOCATION_POST[d])}"
    if kind == "ordinal":
        n, d = int(program["n"]), program["dir"]
        w = _pick(rng, ORDINAL_WORDS[n])
        if w.startswith("number"):
            return f"{np_text} {w} counting from the {SIDE[d]}"
        return f"counting from the {SIDE[d]}, the {w} {np_text}"
    if kind == "relation":
        rel = _pick(rng, RELATION_WORDS[program["rel"]])
        return f"the {np_text} {rel} the {noun_phrase(program['anchor'], rng)}"
    raise ValueError(f"unknown program kind {kind!r}")


def generic_caption(obj: SceneObject, rng: np.random.Generator, keep: float = 0.7) -> str:
    """A generic caption of one object ("a photo of a small red striped ring"): each attribute
    is named with probability ``keep``, the shape always."""
    flt: Filter = {"shape": obj.shape}
    for a in ("size", "texture", "color"):
        if rng.random() < keep:
            flt[a] = obj.attr(a)
    words = []
    if "size" in flt:
        words.append(_pick(rng, SIZES[flt["size"]]))
    if "color" in flt:
        words.append(_pick(rng, COLORS[flt["color"]]))
    if "texture" in flt:
        words.append(_pick(rng, TEXTURES[flt["texture"]]))
    text = " ".join(words + [_pick(rng, SHAPES[obj.shape])])
    article = "an" if text[0] in "aeiou" else "a"
    return _pick(rng, ("a photo of {} {}", "{} {}", "an image of {} {}", "{} {} on a background")).format(article, text)


def scene_caption(objects: Sequence[SceneObject], rng: np.random.Generator, most: int = 3) -> str:
    """A generic caption of a whole scene: its number of shapes and a few of them."""
    k = min(len(objects), most)
    named = [objects[int(i)] for i in rng.choice(len(objects), k, replace=False)]
    parts = [f"{_pick(rng, COLORS[o.color])} {_pick(rng, SHAPES[o.shape])}" for o in named]
    return f"{len(objects)} shapes, among them " + ", ".join(parts)


def expressions(
    objects: Sequence[SceneObject],
    targets: Sequence[int],
    margin: float,
    rng: np.random.Generator,
    kind_weights: dict[str, float] | None = None,
) -> list[tuple[int, str, str]]:
    """(target, kind, text) for each of ``targets`` that some program of a drawn kind refers to
    uniquely (kinds tried in a random order after the drawn one, as SynthRef's generator does)."""
    weights = kind_weights or {
        "attribute": 0.2,
        "attribute_only": 0.1,
        "location": 0.25,
        "relation": 0.25,
        "ordinal": 0.2,
    }
    kinds = [k for k in KINDS if weights.get(k, 0) > 0]
    p = np.array([weights[k] for k in kinds], np.float64)
    p /= p.sum()
    out = []
    for t in targets:
        first = str(rng.choice(kinds, p=p))
        for kind in [first] + [str(k) for k in rng.permutation([k for k in kinds if k != first])]:
            prog = build_program(kind, t, objects, margin, rng)
            if prog is not None and resolve(prog, objects, margin) == [t]:
                out.append((t, kind, realise_shifted(prog, rng)))
                break
    return out
