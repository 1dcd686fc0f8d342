"""A predictor in the shape of SAM2's image predictor: ``set_image`` once, then many ``predict`` calls.

    p = SegmenterPredictor.from_pretrained("runs/l2l_5", device="auto")
    p.set_image("photo.jpg")
    masks, probs = p.predict(["the man on the left", "the red car"], threshold=0.5)

What is cached: the image read as :mod:`l2l.data.images` says (EXIF applied), resized and passed
through the visual stem. The segmenter fuses language inside every later encoder stage (LAVT's
design, and L2L's), so features past the stem depend on the sentence and cannot be shared; what
the predictor saves is the image work and N forward passes: all sentences of one image go through
in batches (``batch_size``). Masks and probabilities come back at the image's own size.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.images import check_prior, to_rgb_uint8
from ..errors import UsageError
from ..utils.devices import best_device
from .domain import DomainCheck, OutOfDomainWarning, domain_check_for, far_notice, model_input
from .segmenter import Segmenter


class SegmenterPredictor:
    """``domain``: the model's :class:`~l2l.models.domain.DomainCheck` (``None``: no check, ``domain_note``
    says why); with one, :meth:`set_image` measures the image (``image_domain``) and :meth:`predict`
    warns (:class:`~l2l.models.domain.OutOfDomainWarning`) when it is far from the training domain."""

    def __init__(
        self,
        model: Segmenter,
        device: str = "auto",
        batch_size: int = 16,
        domain: DomainCheck | None = None,
        domain_note: str = "domain check off",
    ):
        self.device = best_device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise UsageError(f"batch_size must be ≥ 1, got {batch_size}")
        self.domain, self.domain_note = domain, domain_note
        self.reset_image()

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str = "auto",
        batch_size: int = 16,
        domain_check: bool = True,
        domain_images: str | Path | None = None,
    ) -> "SegmenterPredictor":
        """``domain_check``: measure each image against the model's training domain
        (:func:`~l2l.models.domain.domain_check_for`: the model folder's ``domain.json``, or the run's
        training images, or ``domain_images``)."""
        model = Segmenter.from_pretrained(path)
        dev = best_device(device)
        check, note = (
            domain_check_for(path, model.to(dev), domain_images, dev) if domain_check else (None, "domain check off")
        )
        return cls(model, device, batch_size, check, note)

    def reset_image(self) -> None:
        self._stem: torch.Tensor | None = None
        self._hw: tuple[int, int] | None = None
        self.image: np.ndarray | None = None
        self.image_domain: dict[str, Any] | None = None  # {"distance", "far", "reference"} of the image
        self._warned = False

    @torch.no_grad()
    def set_image(self, image: Any) -> None:
        """Read and encode ``image`` (a path, a PIL image or an array) for the following ``predict`` calls."""
        arr = to_rgb_uint8(image, str(image) if isinstance(image, (str, Path)) else "image", exif=True)
        x = model_input(arr, self.model.cfg.image_size, self.device)
        self._stem = self.model.stem(x)
        self._hw = arr.shape[:2]
        self.image = arr
        if self.domain is not None:  # the same input and stem as the prediction: measured at no extra stem pass
            d = self.domain.distance_of_input(self.model, x, self._stem)
            self.image_domain = {"distance": round(d, 3), "far": self.domain.is_far(d), "reference": self.domain.source}

    @torch.no_grad()
    def predict(
        self,
        texts: str | Sequence[str],
        guidance: str | None = None,
        prior: Any = None,
        threshold: float = 0.5,
    ) -> tuple[Any, Any]:
        """Masks (bool) and foreground probabilities of the image of :meth:`set_image`, one per sentence
        (a list for a list of sentences). ``prior``: H×W map in [0, 1] for ``guidance="prior"`` (SESM models)."""
        if self._stem is None or self._hw is None:
            raise UsageError("predict() before set_image(): give the predictor an image first")
        single = isinstance(texts, str)
        raw = [texts] if single else list(texts)
        if not raw or any(not isinstance(t, str) or not t.strip() for t in raw):
            raise UsageError("predict(): give one or more non-empty sentences")
        sentences: list[str] = [str(t) for t in raw]
        if not 0.0 <= float(threshold) <= 1.0:
            raise UsageError(f"predict(): threshold must lie in [0, 1], got {threshold}")
        mode = guidance or ("prior" if prior is not None else "none")
        if mode != "none" and not self.model.uses_guidance:
            raise UsageError(f"guidance {mode!r} needs a model with SESM (model.sesm.enabled); this one takes none")
        s = self.model.cfg.image_size
        h, w = self._hw
        g = None
        if mode == "prior":
            if prior is None:
                raise UsageError("guidance 'prior' needs a prior map")
            g = torch.as_tensor(check_prior(prior, (h, w), "predict() prior"))[None, None].to(self.device)
            g = F.interpolate(g, size=(s, s), mode="bilinear", align_corners=False)
        probs: list[np.ndarray] = []
        for a in range(0, len(sentences), self.batch_size):
            chunk = sentences[a : a + self.batch_size]
            n = len(chunk)
            x = _repeat(self._stem, n)
            p = self._probabilities(x, chunk, mode, None if g is None else g.expand(n, -1, -1, -1))
            p = F.interpolate(p[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
            probs += list(p.float().cpu().numpy())
        masks = [p >= threshold for p in probs]
        if self.image_domain is not None and self.image_domain["far"] and not self._warned:
            assert self.domain is not None
            warnings.warn(far_notice(self.image_domain["distance"], self.domain), OutOfDomainWarning, stacklevel=2)
            self._warned = True  # once per image
        return (masks[0], probs[0]) if single else (masks, probs)

    def _probabilities(self, x: torch.Tensor, texts: list[str], mode: str, g: torch.Tensor | None) -> torch.Tensor:
        """As :meth:`Segmenter.predict`, from the cached stem features."""
        m = self.model
        size = (m.cfg.image_size, m.cfg.image_size)
        prob = m.forward_from_stem(x, size, texts, g if mode == "prior" else None, None).softmax(1)[:, 1]
        if mode == "self":  # a second pass conditioned on the first one's foreground probability
            prob = m.forward_from_stem(x, size, texts, prob[:, None], None).softmax(1)[:, 1]
        return prob


def _repeat(stem: Any, n: int) -> Any:
    """The stem output of one image for ``n`` sentences (tensors expanded along the batch; an encoder's
    tuple such as Swin's (tokens, grid size) keeps its other members)."""
    if isinstance(stem, torch.Tensor):
        return stem.expand(n, *stem.shape[1:])
    parts = [_repeat(s, n) if isinstance(s, (torch.Tensor, tuple)) else s for s in stem]
    return type(stem)(*parts) if hasattr(stem, "_fields") else type(stem)(parts)  # a NamedTuple (ObjectStem)
