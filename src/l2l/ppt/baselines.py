"""The naive integration PPT improves on (Table 3 row 1, "CLIP + SAM"): the dual encoder's dense
response to the sentence (:meth:`~l2l.ppt.encoders.FrozenDualEncoder.response`) prompts the mask
model directly — one positive point at the response's peak (``points=1``), or the ``points``
highest cells as positives — and its mask is the answer. No training.

The other weakly supervised baseline of the issue, mask-model proposals ranked by the dual encoder,
is :class:`~l2l.pseudoris.zero_shot.ZeroShotPredictor` (``l2l ppt baseline --kind proposals``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .encoders import FrozenDualEncoder, FrozenMaskDecoder


class NaivePredictor:
    training = False

    def __init__(self, encoders: FrozenDualEncoder, decoder: FrozenMaskDecoder, points: int = 1):
        self.encoders, self.decoder, self.points = encoders, decoder, points

    def eval(self) -> "NaivePredictor":
        return self

    def train(self, mode: bool = True) -> "NaivePredictor":
        return self

    @torch.no_grad()
    def predict(
        self,
        images: torch.Tensor,
        texts: Sequence[str],
        guidance: str = "none",
        prior: Any = None,
        has_prior: Any = None,
    ) -> torch.Tensor:
        s = self.decoder.image_size
        h, w = images.shape[-2:]
        x = images if (h, w) == (s, s) else F.interpolate(images, size=(s, s), mode="bilinear", align_corners=False)
        resp = self.encoders.response(x, list(texts))  # B×g×g
        b, g = resp.shape[0], resp.shape[-1]
        top = resp.flatten(1).topk(min(self.points, g * g), dim=1).indices  # B×P
        pts = torch.stack([(top % g).float() + 0.5, (top // g).float() + 0.5], -1) / g  # normalised xy
        logits = self.decoder.decode(
            self.decoder.embed(x), torch.arange(b), pts, torch.ones(top.shape, dtype=torch.long)
        )
        prob = logits.sigmoid()[:, None]
        if (h, w) != (s, s):
            prob = F.interpolate(prob, size=(h, w), mode="bilinear", align_corners=False)
        return prob[:, 0]
