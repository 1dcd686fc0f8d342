"""Progress bars (tqdm) that stay quiet when asked to or when output is not a terminal in CI."""

from __future__ import annotations

import os
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(
    it: Iterable[T] | None, total: int | None = None, desc: str = "", disable: bool = False, initial: int = 0
) -> tqdm:
    """A bar with rate and ETA (over an iterable, or updated by hand when ``it`` is None);
    ``L2L_NO_PROGRESS=1`` silences all bars."""
    disable = disable or os.environ.get("L2L_NO_PROGRESS") == "1"
    return tqdm(it, total=total, desc=desc, disable=disable, dynamic_ncols=True, mininterval=0.5, initial=initial)


def quiet_libraries() -> None:
    """With ``L2L_NO_PROGRESS=1``, silence the libraries' own bars too (transformers' "Loading weights")."""
    if os.environ.get("L2L_NO_PROGRESS") != "1":
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # transformers is a dependency; a trimmed install just keeps its bars
        pass
