"""The learned prior (``l2l priors generate --provider standin``): grounder → box → mask model → soft mask.

The paper's prior composed from the pretraining world's stand-ins instead of Qwen2.5-VL and SAM2
(docs/foundation.md): the grounder (:mod:`l2l.foundation.grounder`) answers in Qwen2.5-VL's
grounding format, :class:`~l2l.priors.mllm_sam2.MLLMSam2Provider` parses the box and prompts the
mask model (:mod:`l2l.foundation.mask_model`) with it, exactly as it prompts SAM2. The
confidence is the grounder's confidence × the mask model's predicted IoU. Provenance names both
folders with a digest of their weights, and says that these are stand-ins.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from .base import PriorInput, PriorRecord
from .mllm_sam2 import MLLMSam2Provider

NAME = "standin"
DEFAULT_GROUNDER = "builtin:synthpool-grounder"
DEFAULT_MASK_MODEL = "builtin:synthpool-sam"


def answer_confidence(answer: str) -> float | None:
    """The ``confidence`` field of a stand-in grounder's JSON answer (None when absent)."""
    text = answer.strip().removeprefix("```json").removesuffix("```").strip()
    try:
        doc = json.loads(text)
        return float(doc[0]["confidence"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


class StandInPriorProvider(MLLMSam2Provider):
    name = NAME

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "stand_ins": True,
            "note": "pretraining-world stand-ins for an MLLM and SAM2 (docs/foundation.md), not the real models",
        }

    def __call__(self, batch: Sequence[PriorInput]) -> list[PriorRecord]:
        out = super().__call__(batch)
        for rec in out:
            conf = answer_confidence(rec.provenance.get("answer", ""))
            if conf is not None and rec.cue:
                rec.provenance["grounder_confidence"] = conf
                rec.provenance["mask_iou"] = rec.confidence
                rec.confidence = float(conf * rec.confidence)
        return out


def build(grounder: str = DEFAULT_GROUNDER, mask_model: str = DEFAULT_MASK_MODEL, device: str = "cpu"):
    from ..foundation.grounder import GrounderPredictor
    from ..foundation.mask_model import MaskPredictor

    return StandInPriorProvider(
        GrounderPredictor.from_pretrained(grounder, device), MaskPredictor.from_pretrained(mask_model, device)
    )
