"""The direct zero-shot baseline of the Table-2 comparison: the stand-ins used at test time.

In the manner of Global-Local CLIP (Yu et al., CVPR 2023), which Pseudo-RIS re-implements with SAM
as its zero-shot row: the mask model proposes masks (its automatic mode, the objectness filter of
:mod:`~l2l.pseudoris.masks`), the dual encoder scores each proposal against the sentence, and the
best proposal is the answer. A proposal's score mixes a *global* term — the sentence against the
proposal's crop with context (``context_margin``) — and a *local* term — the sentence's noun
phrase against the masked 0 % crop: ``alpha · cos(global) + (1 − alpha) · cos(local)``. (Global-Local
CLIP's global term masks the whole image's attention instead of cropping; ours is the simpler
crop, said here and in docs/pseudo_ris.md.)

``scoring="regions"`` (not the paper's; for a dual encoder trained with regions,
``builtin:synthpool-clip-regions``) scores each proposal's box *in its scene* instead
(``encode_regions`` of the mask's bounding box against the whole sentence).

:class:`ZeroShotPredictor` has the evaluator's ``Predictor`` interface, so ``l2l pseudo-ris
baseline`` reports the same metrics as every trained model. Proposals are cached per image.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import UsageError
from ..foundation.captioner import patch
from ..utils.masks import mask_box
from .config import MaskConfig
from .filtering import noun_phrase
from .masks import extract_masks


class ZeroShotPredictor:
    training = False

    def __init__(
        self,
        masks: Any,
        dual: Any,
        cfg: MaskConfig = MaskConfig(),
        alpha: float = 0.5,
        context_margin: float = 0.1,
        scoring: str = "global-local",
    ):
        if scoring not in ("global-local", "regions"):
            raise UsageError(f"zero-shot scoring must be global-local or regions, got {scoring!r}")
        self.masks, self.dual, self.cfg, self.scoring = masks, dual, cfg, scoring
        self.alpha, self.context_margin = float(alpha), float(context_margin)
        self._cache: dict[str, tuple[list[np.ndarray], torch.Tensor, torch.Tensor]] = {}
        self.no_proposal = 0  # sentences answered with an empty mask: the image had no proposal

    def eval(self) -> "ZeroShotPredictor":
        return self

    def train(self, mode: bool = True) -> "ZeroShotPredictor":
        return self

    def _proposals(
        self, image: np.ndarray, given: list[np.ndarray] | None = None
    ) -> tuple[list[np.ndarray], torch.Tensor, torch.Tensor]:
        """The image's proposals (``given`` ones, e.g. another run's masks, instead of the mask model's)
        with their context and masked-crop embeddings; cached per image."""
        key = hashlib.sha1(image.tobytes()).hexdigest()
        if key not in self._cache or given is not None:
            if given is not None:
                segs = [np.asarray(m, bool) for m in given]
            else:
                segs = [np.asarray(r["segmentation"], bool) for r in extract_masks(self.masks, image, self.cfg)]
            if segs and self.scoring == "regions":
                ctx = loc = self.dual.encode_regions(image, [mask_box(m) for m in segs])
            elif segs:
                ctx = self.dual.encode_image([patch(image, m, self.context_margin)[0] for m in segs])
                loc = self.dual.encode_image([patch(image, m, "masked")[0] for m in segs])
            else:
                ctx = loc = torch.zeros(0, 1)
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = (segs, ctx, loc)
        return self._cache[key]

    def scores(self, image: np.ndarray, text: str) -> tuple[list[np.ndarray], np.ndarray]:
        """The proposals of ``image`` and each one's score for ``text`` (module docstring)."""
        segs, ctx, loc = self._proposals(image)
        if not segs:
            return segs, np.zeros(0)
        if self.scoring == "regions":
            return segs, (ctx @ self.dual.encode_text([text])[0]).numpy()
        t = self.dual.encode_text([text, noun_phrase(text)])
        s = self.alpha * (ctx @ t[0]) + (1 - self.alpha) * (loc @ t[1])
        return segs, s.numpy()

    @torch.no_grad()
    def predict(
        self,
        images: torch.Tensor,
        texts: Sequence[str],
        guidance: str = "none",
        prior: Any = None,
        has_prior: Any = None,
    ) -> torch.Tensor:
        out = torch.zeros(images.shape[0], images.shape[2], images.shape[3])
        for b, text in enumerate(texts):
            img = (images[b].detach().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            segs, s = self.scores(img, text)
            if not segs:
                self.no_proposal += 1
                continue
            out[b] = torch.from_numpy(segs[int(np.argmax(s))].astype(np.float32))
        return out
