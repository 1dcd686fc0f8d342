"""``mllm-sam2`` — the paper's prior: an MLLM grounds the sentence to a box, SAM2 turns the box
into a soft mask (docs/spec.md §3). Both are frozen and run once, offline.

Composition: ``grounder`` (answers a grounding prompt; Qwen2.5-VL in the paper) → parser
(:mod:`~l2l.foundation.grounding_parser`) → box mapped back to the original image → SAM2 prompted
with the box → sigmoid of SAM2's mask logits, resized to the image: **probabilities, not a
thresholded mask**. An answer without a usable box gives an empty prior with confidence 0.05
and the reason in its provenance.

SAM2 is :class:`~l2l.foundation.mask_model.Sam2MaskPredictor` (the one SAM2 adapter, its batched
``__call__``); a stand-in mask model folder serves as well (``l2l.foundation.loaders.load_mask_model``).
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from ..foundation.grounding_parser import map_box, parse_boxes
from .base import PriorInput, PriorRecord, config_hash

EMPTY_CONFIDENCE = 0.05


class Grounder(Protocol):
    """Answers "where is <sentence>?" for each input: (raw answer text, processed image (H, W))."""

    def config(self) -> dict[str, Any]: ...

    def __call__(self, batch: Sequence[PriorInput]) -> list[tuple[str, tuple[int, int]]]: ...


class BoxSegmenter(Protocol):
    """A box → soft mask model: SAM2 (``l2l.foundation.mask_model.Sam2MaskPredictor``) or a stand-in
    (``l2l.foundation.mask_model.MaskPredictor``)."""

    def config(self) -> dict[str, Any]: ...

    def __call__(
        self, images: Sequence[np.ndarray], boxes: Sequence[tuple[float, float, float, float]]
    ) -> list[tuple[np.ndarray, float]]: ...


class MLLMSam2Provider:
    name = "mllm-sam2"

    def __init__(self, grounder: Grounder, segmenter: BoxSegmenter):
        self.grounder, self.segmenter = grounder, segmenter

    def config(self) -> dict[str, Any]:
        return {"provider": self.name, "grounder": self.grounder.config(), "segmenter": self.segmenter.config()}

    def __call__(self, batch: Sequence[PriorInput]) -> list[PriorRecord]:
        answers = self.grounder(batch)
        h_cfg = config_hash(self.config())
        out: list[PriorRecord | None] = [None] * len(batch)
        todo: list[tuple[int, tuple[float, float, float, float], dict[str, Any]]] = []
        for i, (inp, (text, processed_hw)) in enumerate(zip(batch, answers)):
            parsed = parse_boxes(text)
            box = map_box(parsed.box, processed_hw, inp.image.shape[:2], parsed.frame) if parsed.box else None
            prov = {"provider": self.name, "answer": text[:500], "parse_issues": parsed.issues, "config_hash": h_cfg}
            if box is None:  # no usable box: an empty, low-confidence prior, with the reason
                prov["empty_reason"] = "; ".join(parsed.issues) or "box outside the image"
                out[i] = PriorRecord(
                    inp.sample_id, np.zeros(inp.image.shape[:2], np.float32), {}, EMPTY_CONFIDENCE, prov
                )
            else:
                todo.append((i, box, prov))
        if todo:
            masks = self.segmenter([batch[i].image for i, _, _ in todo], [b for _, b, _ in todo])
            for (i, (x0, y0, x1, y1), prov), (prob, iou) in zip(todo, masks):
                out[i] = PriorRecord(
                    batch[i].sample_id, prob, {"box": [x0, y0, x1 - x0, y1 - y0]}, float(np.clip(iou, 0, 1)), prov
                )
        return out  # type: ignore[return-value]
