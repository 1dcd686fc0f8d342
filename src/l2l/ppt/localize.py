"""PPT's mask source as the paper builds it (§3.2, §4.1): a CLIP-Surgery-style response map of the dual
encoder for a phrase, its peak as a point prompt, the promptable mask model's mask.

The paper gets the pseudo masks of D_sem (and the H candidates) from "CLIP Surgery → SAM": CLIP's
dense response to the class name, with *feature surgery* (Li et al., 2023: the response every text
shares is redundant and is subtracted), gives points that prompt SAM. Here, with any dual encoder
that has ``encode_dense`` (the stand-in's per-cell projection, or CLIP's patch tokens through its
visual projection, :mod:`l2l.foundation.dual_encoder`):

    s_t(x) = <e(x), t> for the phrase t and for every text of a redundant set R (class-agnostic prompts)
    ŝ(x)   = s_t(x) − mean_{r ∈ R ∪ {t}} s_r(x)                                (feature surgery)
    points: the ``positives`` highest cells of ŝ (label 1) and the ``negatives`` lowest (label 0),
            at the cells' centres in the image's pixels
    mask   = the mask model's hypothesis of highest predicted IoU for those points

[ours] R defaults to four class-agnostic prompts ("a photo", "an object", "a thing", "the background");
the image is embedded at ``size`` px (384: SynthRef's objects are then about the size of the crops the
stand-in dual encoder was trained on or larger; measured in docs/ppt.md). ``ppt.mask_source: proposals`` keeps the earlier source (the
dual encoder ranking the mask model's automatic proposals, Pseudo-RIS's zero-shot ranking).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import UsageError


@dataclass
class SurgeryConfig:
    size: int = 384  # side the image is embedded at [ours; measured: docs/ppt.md, hit rate by size]
    positives: int = 1  # highest-response cells given as positive points
    negatives: int = 1  # lowest-response cells given as negative points
    redundant: list[str] = field(default_factory=lambda: ["a photo", "an object", "a thing", "the background"])

    def __post_init__(self) -> None:
        if self.size < 32 or self.positives < 1 or self.negatives < 0:
            raise UsageError(f"ppt.surgery: size ≥ 32, positives ≥ 1, negatives ≥ 0; got {self}")


def surgery_map(dense: torch.Tensor, text: torch.Tensor, redundant: torch.Tensor) -> torch.Tensor:
    """``dense`` (h, w, D) unit cells, ``text`` (D,), ``redundant`` (R, D) → (h, w) response with the
    mean response over the phrase and the redundant texts subtracted."""
    every = torch.einsum("hwd,td->thw", dense, torch.cat([text[None], redundant], 0))
    return every[0] - every.mean(0)


def point_prompts(
    resp: torch.Tensor, image_hw: tuple[int, int], positives: int, negatives: int
) -> tuple[np.ndarray, np.ndarray]:
    """Point coordinates (N, 2) xy in the image's pixels and labels (N,) from a (h, w) response."""
    h, w = resp.shape
    flat = resp.flatten()
    order = torch.argsort(flat, descending=True)
    pos, neg = order[:positives], order[len(order) - negatives :] if negatives else order[:0]
    cells = torch.cat([pos, neg])
    ys, xs = (cells // w).float(), (cells % w).float()
    ih, iw = image_hw
    coords = torch.stack([(xs + 0.5) / w * iw, (ys + 0.5) / h * ih], 1).numpy()
    labels = np.array([1] * len(pos) + [0] * len(neg), np.int64)
    return coords, labels


class SurgeryLocalizer:
    """Phrases → masks through the dual encoder's response and the mask model (module docstring)."""

    def __init__(self, masks: Any, dual: Any, cfg: SurgeryConfig | None = None):
        if not hasattr(dual, "encode_dense"):
            raise UsageError(f"{type(dual).__name__} has no dense embeddings (encode_dense): it cannot localise")
        self.masks, self.dual, self.cfg = masks, dual, cfg or SurgeryConfig()
        self._redundant = dual.encode_text(list(self.cfg.redundant)) if self.cfg.redundant else None

    def responses(self, image: np.ndarray, phrases: list[str]) -> torch.Tensor:
        """(P, h, w) surgery responses of one image to each phrase."""
        dense = self.dual.encode_dense([image], self.cfg.size)[0]
        texts = self.dual.encode_text(list(phrases))
        return torch.stack(
            [surgery_map(dense, t, self._redundant if self._redundant is not None else t[None]) for t in texts]
        )

    def masks_for(self, image: np.ndarray, phrases: list[str]) -> list[tuple[np.ndarray, float]]:
        """Per phrase: its mask (bool H×W) and the mask model's predicted IoU for it."""
        if not phrases:
            return []
        resp = self.responses(image, phrases)
        self.masks.set_image(image)
        out = []
        for r in resp:
            coords, labels = point_prompts(r, image.shape[:2], self.cfg.positives, self.cfg.negatives)
            ms, ious = self.masks.predict(point_coords=coords, point_labels=labels, multimask_output=True)
            k = int(np.argmax(ious))
            out.append((np.asarray(ms[k], bool), float(ious[k])))
        return out
