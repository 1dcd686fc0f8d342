"""Progress bars (tqdm) that stay quiet when asked to or when they would not be seen.

A bar is drawn when standard error is a terminal. Redirected to a file or a pipe (a log, CI, nohup) it
is left out, since tqdm's carriage returns turn into thousands of lines there: ``L2L_PROGRESS=1`` draws
it anyway, ``L2L_NO_PROGRESS=1`` never draws one (and quiets the libraries' bars too)."""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(
    it: Iterable[T] | None, total: int | None = None, desc: str = "", disable: bool = False, initial: int = 0
) -> tqdm:
    """A bar with rate and ETA (over an iterable, or updated by hand when ``it`` is None); drawn only
    where it is seen (module docstring)."""
    disable = disable or not bars_wanted()
    return tqdm(it, total=total, desc=desc, disable=disable, dynamic_ncols=True, mininterval=0.5, initial=initial)


def bars_wanted() -> bool:
    """Whether to draw bars (module docstring)."""
    if os.environ.get("L2L_NO_PROGRESS") == "1":
        return False
    if os.environ.get("L2L_PROGRESS") == "1":
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def quiet_libraries() -> None:
    """Where no bars are wanted (:func:`bars_wanted`), silence the libraries' own bars too
    (transformers' "Loading weights")."""
    if bars_wanted():
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # transformers is a dependency; a trimmed install just keeps its bars
        pass
