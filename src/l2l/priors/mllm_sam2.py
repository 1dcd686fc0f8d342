"""``mllm-sam2`` — the paper's prior: an MLLM grounds the sentence to a box, SAM2 turns the box
into a soft mask (docs/spec.md §3). Both are frozen and run once, offline.

Composition: ``grounder`` (answers a grounding prompt; Qwen2.5-VL in the paper) → parser
(:mod:`~l2l.priors.grounding_parser`) → box mapped back to the original image → SAM2 prompted
with the box → sigmoid of SAM2's mask logits, resized to the image: **probabilities, not a
thresholded mask**. An answer without a usable box gives an empty prior with confidence 0.05
and the reason in its provenance.

:class:`Sam2BoxSegmenter` wraps ``transformers.Sam2Model`` directly (its image processor
needs torchvision, which has no CPU build here): images are resized to the model's square
input (1024² for SAM2), ImageNet-normalised, and boxes scaled to that frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.augment import normalize
from ..errors import MissingFileError
from ..utils.tensors import image_tensor
from .base import PriorInput, PriorRecord, config_hash
from .grounding_parser import map_box, parse_boxes

EMPTY_CONFIDENCE = 0.05


class Grounder(Protocol):
    """Answers "where is <sentence>?" for each input: (raw answer text, processed image (H, W))."""

    def config(self) -> dict[str, Any]: ...

    def __call__(self, batch: Sequence[PriorInput]) -> list[tuple[str, tuple[int, int]]]: ...


class BoxSegmenter(Protocol):
    """A box → soft mask model: SAM2 (:class:`Sam2BoxSegmenter`) or a stand-in
    (``l2l.foundation.mask_model.MaskPredictor``)."""

    def config(self) -> dict[str, Any]: ...

    def __call__(
        self, images: Sequence[np.ndarray], boxes: Sequence[tuple[float, float, float, float]]
    ) -> list[tuple[np.ndarray, float]]: ...


class Sam2BoxSegmenter:
    def __init__(self, model, device: str = "cpu", dtype: torch.dtype = torch.float32, source: str = "config"):
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device, self.dtype, self.source = device, dtype, source
        vc = model.config.vision_config
        size = (
            getattr(vc, "image_size", None) or getattr(getattr(vc, "backbone_config", None), "image_size", None) or 1024
        )
        self.size = int(size[0] if isinstance(size, (list, tuple)) else size)  # square input (1024 for SAM2)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str = "cpu", dtype: torch.dtype | None = None
    ) -> "Sam2BoxSegmenter":
        from transformers import Sam2Model

        path = Path(path)
        if not (path / "config.json").exists():
            raise MissingFileError(f"SAM2: no local Hugging Face folder at {path} (config.json missing)")
        dtype = dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
        return cls(Sam2Model.from_pretrained(str(path), local_files_only=True), device, dtype, str(path))

    def config(self) -> dict[str, Any]:
        return {"sam2": self.source, "input_size": self.size, "dtype": str(self.dtype)}

    @torch.no_grad()
    def __call__(
        self, images: Sequence[np.ndarray], boxes: Sequence[tuple[float, float, float, float]]
    ) -> list[tuple[np.ndarray, float]]:
        """(probability map at the image's size, SAM2's predicted IoU) per (image, box in image pixels)."""
        s = self.size
        x = torch.stack(
            [
                F.interpolate(
                    image_tensor(im)[None],
                    size=(s, s),
                    mode="bilinear",
                    align_corners=False,
                    antialias=True,
                )[0]
                for im in images
            ]
        )
        b = torch.tensor(
            [
                [[x0 * s / im.shape[1], y0 * s / im.shape[0], x1 * s / im.shape[1], y1 * s / im.shape[0]]]
                for im, (x0, y0, x1, y1) in zip(images, boxes)
            ],
            dtype=torch.float32,
        )
        out = self.model(
            pixel_values=normalize(x).to(self.device, self.dtype),
            input_boxes=b.to(self.device, self.dtype),
            multimask_output=False,
        )
        res = []
        for im, logits, iou in zip(images, out.pred_masks[:, 0, 0], out.iou_scores[:, 0, 0]):
            p = torch.sigmoid(
                F.interpolate(logits[None, None].float(), size=im.shape[:2], mode="bilinear", align_corners=False)
            )[0, 0]
            res.append((p.cpu().numpy().astype(np.float32), float(iou)))
        return res


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
