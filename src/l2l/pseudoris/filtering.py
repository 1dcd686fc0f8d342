"""Distinctiveness-based text filtering (Pseudo-RIS §3.3, Eqs. 4–6).

With a dual encoder (CLIP, or its stand-in) and θ(x, y) its score of image x and text y::

    UoS_i = θ(x_i, y) / max_{j≠i} θ(x_j, y)                                   (Eq. 4, uniqueness)
    CoS_i = θ(x_i ⊙ m_i, T_NP(y))                                            (Eq. 5, correctness)
    DoS_i = CoS_i · θ(x_i, y) / max_{j≠i} CoS_j · θ(x_j, y)                  (Eq. 6, distinctiveness)

x_i is mask i's crop with context (``context_margin``), x_i ⊙ m_i its masked 0 % crop, T_NP the
caption's target noun phrase (:func:`noun_phrase`). A caption is kept when its score reaches τ
(1.3 in the paper). θ is the CLIP score, ``logit_scale × cosine``, floored at a small positive
value so that the ratios stay defined (a negative cosine would flip them). An image with one mask
has no other mask to be confused with: its captions score ``inf`` (kept).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np
import torch

# where a caption stops naming its subject (a relation, a location, a clause) or frames it
_CUT = {
    "on",
    "in",
    "at",
    "to",
    "of",
    "near",
    "next",
    "beside",
    "behind",
    "above",
    "below",
    "under",
    "left",
    "right",
    "that",
    "which",
    "who",
    "from",
    "counting",
    "number",
    "between",
    "over",
    "underneath",
    "beneath",
    "holding",
    "wearing",
    "sitting",
    "standing",
}
_FRAMES = ("a photo of", "a picture of", "an image of", "a close up of", "a photograph of")
_FLOOR = 1e-3


def noun_phrase(caption: str) -> str:
    """T_NP: the caption's subject, without a framing prefix ("a photo of …") and cut before its first
    preposition or clause word ("a small red ring on a background" → "a small red ring"). A small
    extractor that fits generated captions (and SynthRef's grammar); for free text a parser such as
    spaCy's noun chunks would be the real thing."""
    text = " ".join(re.findall(r"[a-z0-9\-']+", caption.lower()))
    for f in _FRAMES:
        if text.startswith(f + " "):
            text = text[len(f) + 1 :]
            break
    words = text.split()
    for k, w in enumerate(words):
        if k > 0 and w in _CUT:
            words = words[:k]
            break
    return " ".join(words) or caption


def theta(img: torch.Tensor, txt: torch.Tensor, scale: float) -> torch.Tensor:
    """CLIP scores (images × texts), floored (module docstring)."""
    return (scale * (img @ txt.t())).clamp(min=_FLOOR * scale)


def distinctiveness(
    dual: Any,
    context_crops: Sequence[np.ndarray],
    masked_crops: Sequence[np.ndarray],
    captions: Sequence[tuple[int, str]],
) -> dict[str, np.ndarray]:
    """UoS, CoS and DoS (Eqs. 4–6) of each (mask index, caption) pair of one image."""
    n = len(context_crops)
    texts = [c for _, c in captions]
    scale = float(dual.logit_scale)
    img = dual.encode_image(list(context_crops))
    msk = dual.encode_image(list(masked_crops))
    full = theta(img, dual.encode_text(texts), scale)  # (n, T): θ(x_j, y)
    cos = theta(msk, dual.encode_text([noun_phrase(t) for t in texts]), scale)  # (n, T): CoS_j of y's noun phrase
    target = torch.tensor([i for i, _ in captions])
    cols = torch.arange(len(texts))
    own, own_cos = full[target, cols], cos[target, cols]
    if n == 1:
        inf = np.full(len(texts), np.inf)
        return {"uos": inf, "cos": own_cos.numpy(), "dos": inf.copy()}
    other = torch.ones_like(full, dtype=torch.bool)
    other[target, cols] = False
    neg = torch.full_like(full, float("-inf"))
    uos = own / torch.where(other, full, neg).max(0).values
    dos = own_cos * own / torch.where(other, cos * full, neg).max(0).values
    return {"uos": uos.numpy(), "cos": own_cos.numpy(), "dos": dos.numpy()}
