"""Progress bars (tqdm) that stay quiet when asked to or when output is not a terminal in CI."""
from __future__ import annotations

import os
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(it: Iterable[T], total: int | None = None, desc: str = "", disable: bool = False) -> Iterable[T]:
    """Wrap an iterable in a bar with rate and ETA; ``L2L_NO_PROGRESS=1`` silences all bars."""
    disable = disable or os.environ.get("L2L_NO_PROGRESS") == "1"
    return tqdm(it, total=total, desc=desc, disable=disable, dynamic_ncols=True, mininterval=0.5)
