"""SynthRef vocabulary: shapes, colours, sizes, textures and their words.

One table serves the renderer (what an attribute looks like), the text realiser (which
words may name it) and the parser (which attribute a word names), so the three cannot
drift apart. Vocabulary subsets are a generator knob (``SynthRefConfig.shapes`` /
``colors``).
"""

from __future__ import annotations

# canonical shape -> words that name it (first = canonical). Multi-word names are allowed.
SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "ball", "disk"),
    "square": ("square", "box", "block"),
    "rectangle": ("rectangle", "bar", "brick"),
    "triangle": ("triangle",),
    "star": ("star",),
    "pentagon": ("pentagon",),
    "hexagon": ("hexagon", "hex"),
    "cross": ("cross", "plus sign", "plus"),
    "heart": ("heart",),
    "diamond": ("diamond", "rhombus"),
    "ring": ("ring", "donut", "hoop"),
    "crescent": ("crescent", "moon"),
}

# canonical colour -> (base RGB, words)
COLORS: dict[str, tuple[tuple[int, int, int], tuple[str, ...]]] = {
    "red": ((210, 35, 35), ("red",)),
    "green": ((40, 160, 60), ("green",)),
    "blue": ((35, 75, 215), ("blue",)),
    "yellow": ((235, 205, 35), ("yellow",)),
    "purple": ((130, 55, 180), ("purple", "violet")),
    "orange": ((240, 130, 25), ("orange",)),
    "pink": ((240, 125, 185), ("pink",)),
    "cyan": ((40, 200, 210), ("cyan", "turquoise")),
    "brown": ((120, 75, 35), ("brown",)),
    "white": ((240, 240, 240), ("white",)),
    "black": ((25, 25, 25), ("black",)),
}

# canonical size -> (radius range as a fraction of the image side, words)
SIZES: dict[str, tuple[tuple[float, float], tuple[str, ...]]] = {
    "small": ((0.070, 0.085), ("small", "little", "tiny")),
    "medium": ((0.105, 0.120), ("medium", "medium-sized", "mid-sized")),
    "large": ((0.145, 0.165), ("large", "big", "huge")),
}

# canonical texture -> (prenominal adjectives, postnominal phrases)
TEXTURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "solid": (("plain", "solid"), ()),
    "striped": (("striped",), ("with stripes",)),
    "dotted": (("dotted", "spotted", "polka-dot"), ("with dots", "with spots")),
}

GENERIC_HEADS: tuple[str, ...] = ("one", "thing", "shape", "object")

ATTRIBUTES: tuple[str, ...] = ("size", "texture", "color", "shape")

# Spatial words. Axis "x" grows to the right, "y" grows downwards (image coordinates).
# direction -> (axis, sign): the extreme in that direction maximises sign * coordinate.
DIRECTIONS: dict[str, tuple[str, int]] = {
    "left": ("x", -1),
    "right": ("x", +1),
    "top": ("y", -1),
    "bottom": ("y", +1),
}
# prenominal location words -> direction
LOCATION_ADJ: dict[str, str] = {
    "leftmost": "left",
    "rightmost": "right",
    "topmost": "top",
    "highest": "top",
    "bottommost": "bottom",
    "lowest": "bottom",
    "left": "left",
    "right": "right",
    "top": "top",
    "bottom": "bottom",
}
# postnominal location phrases -> direction
LOCATION_PHRASES: dict[str, str] = {
    "on the left": "left",
    "on the right": "right",
    "at the top": "top",
    "at the bottom": "bottom",
    "furthest to the left": "left",
    "furthest to the right": "right",
    "on the far left": "left",
    "on the far right": "right",
}
ORDINALS: dict[str, int] = {"first": 1, "second": 2, "third": 3, "1st": 1, "2nd": 2, "3rd": 3}
# relation phrases -> relation
RELATIONS: dict[str, str] = {
    "left of": "left_of",
    "to the left of": "left_of",
    "on the left of": "left_of",
    "right of": "right_of",
    "to the right of": "right_of",
    "on the right of": "right_of",
    "above": "above",
    "over": "above",
    "below": "below",
    "under": "below",
    "beneath": "below",
    "underneath": "below",
    "next to": "nearest",
    "closest to": "nearest",
    "nearest to": "nearest",
    "near": "nearest",
}
