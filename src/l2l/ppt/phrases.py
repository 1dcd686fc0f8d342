"""The noun phrases of an expression (§3.3, pseudo-label generation): one candidate referent is
extracted per noun phrase.

The expression is cut at relation words and prepositions ("the square right of the blue star" →
"the square", "the blue star"); chunks that name nothing — only location, ordinal or function
words ("the left" of "… from the left") — are dropped. A small chunker that fits SynthRef's grammar
and short RefCOCO expressions; a parser's noun chunks (spaCy) would be the real thing for free text.
"""

from __future__ import annotations

import re

from ..data.vocab import DIRECTIONS, LOCATION_ADJ, ORDINALS, RELATIONS

_SPLIT = sorted(
    {
        *RELATIONS,
        "next to",
        "close to",
        "closest to",
        "near",
        "nearest",
        "beside",
        "behind",
        "in front of",
        "above",
        "below",
        "under",
        "underneath",
        "beneath",
        "over",
        "on top of",
        "from",
        "between",
        "and",
        "on",
        "in",
        "at",
        "by",
        "holding",
        "wearing",
        "with the",
        "that",
        "which",
        "who",
    },
    key=len,
    reverse=True,
)
_EMPTY = {
    "the",
    "a",
    "an",
    "of",
    "to",
    "side",
    "far",
    "furthest",
    "most",
    "middle",
    "center",
    "centre",
    "one's",
    *DIRECTIONS,
    *LOCATION_ADJ,
    *ORDINALS,
}
_PATTERN = re.compile(r"\b(?:" + "|".join(re.escape(s) for s in _SPLIT) + r")\b")


def noun_phrases(text: str) -> list[str]:
    """The expression's noun phrases, in order, without duplicates (the whole text when none is found)."""
    clean = " ".join(re.findall(r"[a-z0-9\-']+", text.lower()))
    out: list[str] = []
    for chunk in _PATTERN.split(clean):
        words = chunk.split()
        if any(w not in _EMPTY for w in words):
            words = [w for w in words if w not in LOCATION_ADJ and w not in ORDINALS]
            phrase = " ".join(w for w in words if w not in ("the", "a", "an"))
            if phrase and phrase not in out:
                out.append(phrase)
    return out or [clean or text]
