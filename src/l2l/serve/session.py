"""What the page does, without the page: served models, one request → one answer per model.

:class:`ServedModel` wraps a :class:`~l2l.models.predictor.SegmenterPredictor` (the image is
encoded once and reused while the same image is asked about with other sentences), its
:class:`~l2l.serve.card.ModelCard` and its :class:`~l2l.models.domain.DomainCheck`.
:class:`Session` reads an upload (:func:`l2l.data.images.read_photo`: EXIF, 16-bit, CMYK, RGBA,
grey, a downscale of huge photos — each said in a note; a bad file refused with its reason), computes
the prior when guidance ``prior`` is asked for (the configured provider, e.g. the ``standin`` one), and
asks every model. A lock per model keeps two requests from crossing (the page also queues them).
"""

from __future__ import annotations

import hashlib
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.images import read_photo
from ..errors import L2LError, UsageError
from ..models.domain import DomainCheck, OutOfDomainWarning, far_notice
from ..models.predictor import SegmenterPredictor
from .card import ModelCard, model_card

KEPT_UPLOADS = 16  # decoded uploads kept in memory (a user asks several sentences about one image)
MAX_UPLOAD_MB = 50  # the page refuses larger files (l2l serve --max-upload-mb)
MAX_SIDE = 1024  # uploads are downscaled to this longer side (the model sees 96–480 px anyway)


@dataclass
class Answer:
    model: str
    mask: np.ndarray  # bool, at the (possibly downscaled) image's size
    prob: np.ndarray  # float32 foreground probability
    guidance: str
    seconds: float  # this model's time for this request (image encoding included when it was new)
    notices: list[str] = field(default_factory=list)

    def overlay(self, image: np.ndarray) -> np.ndarray:
        from ..data.preview import overlay

        return overlay(image, self.mask.astype(np.uint8))

    def heat(self) -> np.ndarray:
        """The probability map in a perceptual colour map (black 0 → yellow 1), H×W×3 uint8."""
        from matplotlib import colormaps

        return (colormaps["inferno"](np.clip(self.prob, 0, 1))[:, :, :3] * 255).astype(np.uint8)

    def mask_png(self) -> np.ndarray:
        return self.mask.astype(np.uint8) * 255


class ServedModel:
    def __init__(
        self,
        ckpt: str | Path,
        device: str = "auto",
        name: str | None = None,
        domain_images: str | Path | None = None,
        domain_check: bool = True,
    ):
        self.predictor = SegmenterPredictor.from_pretrained(
            ckpt, device, domain_check=domain_check, domain_images=domain_images
        )
        self.card: ModelCard = model_card(ckpt, self.predictor.model, name)
        self.name = self.card.name
        self.domain: DomainCheck | None = self.predictor.domain
        self.domain_note = self.predictor.domain_note
        self._lock = threading.Lock()
        self._key: str | None = None
        self._distance: float | None = None

    @property
    def uses_guidance(self) -> bool:
        return bool(self.predictor.model.uses_guidance)

    def answer(
        self, image: np.ndarray, text: str, guidance: str = "none", threshold: float = 0.5, prior: Any = None
    ) -> Answer:
        """Segment ``text`` in ``image`` (H×W×3 uint8); ``prior`` for guidance ``prior``."""
        notices = []
        if guidance != "none" and not self.uses_guidance:
            notices.append(f"this model has no SESM: guidance {guidance!r} ignored (answered with none)")
            guidance = "none"
        key = hashlib.sha1(image.tobytes() + str(image.shape).encode()).hexdigest()
        with self._lock:
            t = time.perf_counter()
            if key != self._key:
                self._key = None
                self.predictor.set_image(image)
                self._key = key
                d = self.predictor.image_domain
                self._distance = d["distance"] if d else None
            with warnings.catch_warnings():  # said below as the page's notice
                warnings.simplefilter("ignore", OutOfDomainWarning)
                mask, prob = self.predictor.predict(text, guidance=guidance, prior=prior, threshold=threshold)
            seconds = time.perf_counter() - t
            distance = self._distance
        if not mask.any():
            notices.append(
                f"EMPTY mask: no pixel reached the threshold {threshold:g} (highest probability "
                f"{float(prob.max()):.2f})"
            )
        if self.domain is not None and distance is not None and self.domain.is_far(distance):
            notices.append(far_notice(distance, self.domain, self.card.dataset))
        return Answer(self.name, mask, prob, guidance, seconds, notices)


@dataclass
class Response:
    image: np.ndarray | None
    answers: list[Answer]
    notes: list[str]  # about the input (conversions, downscale)
    error: str | None = None  # a refused request: the reason, and no answers
    prior: np.ndarray | None = None
    prior_seconds: float = 0.0
    number: int = 0  # the request's number since the server started (shown with the answer)


class Session:
    """The served models and the prior provider; :meth:`respond` is what one click of the page does."""

    def __init__(
        self,
        models: Sequence[ServedModel],
        prior_provider: Any = None,
        max_side: int = MAX_SIDE,
        upload_dir: str | Path | None = None,
    ):
        """``upload_dir``: the server's upload folder; a file in it is deleted once read (its decoded
        image is kept in memory for the next sentences, :data:`KEPT_UPLOADS` images at most)."""
        if not models:
            raise UsageError("serve needs at least one --ckpt")
        self.models = list(models)
        self.provider = prior_provider
        self.max_side = max_side
        self.upload_dir = Path(upload_dir).resolve() if upload_dir else None
        self._uploads: OrderedDict[str, tuple[np.ndarray, list[str]]] = OrderedDict()
        self._uploads_lock = threading.Lock()
        self._prior_lock = threading.Lock()
        self._count = 0
        self._count_lock = threading.Lock()

    @property
    def guidance_modes(self) -> list[str]:
        if not any(m.uses_guidance for m in self.models):
            return ["none"]
        return ["none", "self"] + (["prior"] if self.provider is not None else [])

    def respond(
        self, upload: str | Path | None, text: str | None, guidance: str = "none", threshold: float = 0.5
    ) -> Response:
        """One click of the page: the upload read (or refused), then every model's answer."""
        with self._count_lock:
            self._count += 1
            number = self._count
        r = self._respond(upload, text, guidance, threshold)
        r.number = number
        return r

    def read_upload(self, upload: str | Path) -> tuple[np.ndarray, list[str]]:
        """The image of an upload (:func:`read_photo`); a file in ``upload_dir`` is read once and deleted,
        so the server keeps no user file on disk after it has been read."""
        key = str(upload)
        with self._uploads_lock:
            if key in self._uploads:
                self._uploads.move_to_end(key)
                return self._uploads[key]
        path = Path(upload)
        ours = self.upload_dir is not None and self.upload_dir in path.resolve().parents
        if ours and not path.exists():
            raise UsageError(f"{path.name}: this upload is no longer kept on the server; upload it again")
        try:
            got = read_photo(path, self.max_side)
        finally:
            if ours:
                path.unlink(missing_ok=True)
        if ours:
            with self._uploads_lock:
                self._uploads[key] = got
                while len(self._uploads) > KEPT_UPLOADS:
                    self._uploads.popitem(last=False)
        return got

    def _respond(self, upload: str | Path | None, text: str | None, guidance: str, threshold: float) -> Response:
        if upload is None or str(upload) == "":
            return Response(None, [], [], "no image: upload one or pick an example")
        try:
            image, notes = self.read_upload(upload)
        except L2LError as e:  # read_photo names the file by its name only, never the server's temporary path
            return Response(None, [], [], str(e))
        text = (text or "").strip()
        if not text:
            return Response(image, [], notes, "the sentence is empty: type what to segment")
        if guidance not in self.guidance_modes:
            return Response(
                image, [], notes, f"guidance {guidance!r} is not available here ({', '.join(self.guidance_modes)})"
            )
        if not 0.0 <= float(threshold) <= 1.0:
            return Response(image, [], notes, f"threshold must lie in [0, 1], got {threshold}")
        prior, prior_s = None, 0.0
        if guidance == "prior":
            from ..priors.base import PriorInput

            t = time.perf_counter()
            with self._prior_lock:
                prior = self.provider([PriorInput(0, image, text)])[0].prob
            prior_s = time.perf_counter() - t
        try:
            answers = [m.answer(image, text, guidance, float(threshold), prior) for m in self.models]
        except L2LError as e:
            return Response(image, [], notes, str(e))
        return Response(image, answers, notes, None, prior, prior_s)
