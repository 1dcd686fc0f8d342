"""One loader per foundation-model kind: a stand-in folder or a real (Hugging Face) one, told apart by
an explicit field (:func:`~l2l.utils.folders.is_real_folder`), never by which files happen to exist.

``load_mask_model`` → :class:`~l2l.foundation.mask_model.MaskPredictor` (stand-in) or
:class:`~l2l.foundation.mask_model.Sam2MaskPredictor` (SAM2); ``load_dual_encoder`` →
:class:`~l2l.foundation.dual_encoder.DualEncoder` or :class:`~l2l.foundation.dual_encoder.ClipDualEncoder`
(CLIP); ``load_captioner`` → :class:`~l2l.foundation.captioner.Captioner` or
:class:`~l2l.foundation.captioner.HFCaptioner` (BLIP-style); ``load_grounder`` →
:class:`~l2l.foundation.grounder.GrounderPredictor` or :class:`~l2l.foundation.qwen_grounder.QwenGrounder`
(Qwen2.5-VL). ``builtin:NAME`` names a shipped stand-in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..utils.folders import is_real_folder


def load_mask_model(path: str | Path, device: str = "cpu") -> Any:
    from .mask_model import MaskPredictor, Sam2MaskPredictor

    if is_real_folder(path):
        return Sam2MaskPredictor.from_pretrained(path, device)
    return MaskPredictor.from_pretrained(path, device)


def load_dual_encoder(path: str | Path, device: str = "cpu") -> Any:
    from .dual_encoder import ClipDualEncoder, DualEncoder

    if is_real_folder(path):
        return ClipDualEncoder.from_pretrained(path, device)
    return DualEncoder.from_pretrained(path, device)


def load_captioner(path: str | Path, device: str = "cpu") -> Any:
    from .captioner import Captioner, HFCaptioner

    if is_real_folder(path):
        return HFCaptioner.from_pretrained(path, device)
    return Captioner.from_pretrained(path, device)


def load_grounder(path: str | Path, device: str = "cpu", text: Any = None, max_new_tokens: int = 64) -> Any:
    """The grounder of a folder; ``text`` (a MiniLM reader to share) serves the stand-in, ``max_new_tokens``
    Qwen2.5-VL's generation."""
    from .grounder import GrounderPredictor
    from .qwen_grounder import QwenGrounder

    if is_real_folder(path):
        return QwenGrounder.from_pretrained(path, device, max_new_tokens)
    return GrounderPredictor.from_pretrained(path, device, text)
