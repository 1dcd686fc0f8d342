"""COCO run-length encoding of masks, JSON-ready (one function for SynthRef, batch prediction and Pseudo-RIS)."""

from __future__ import annotations

from typing import Any

import numpy as np


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """``{"size": [h, w], "counts": str}`` of a bool / 0-1 mask (pycocotools' compressed RLE)."""
    from pycocotools import mask as mask_utils

    r = mask_utils.encode(np.asfortranarray(np.asarray(mask).astype(np.uint8)))
    return {"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"].decode("ascii")}


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    from pycocotools import mask as mask_utils

    counts = rle["counts"]
    return mask_utils.decode(
        {"size": rle["size"], "counts": counts.encode() if isinstance(counts, str) else counts}
    ).astype(bool)
