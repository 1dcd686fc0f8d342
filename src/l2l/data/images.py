"""Reading images and prior maps the way a user means them, or refusing them with a reason.

One place decides what an input image is, for ``Segmenter.segment``, ``l2l predict`` and the dataset
loader:

* files and PIL images: 16-bit greyscale (PNG ``I;16``) is scaled from its 0–65535 range, not
  clipped to white; palette, greyscale and RGBA are converted to RGB (alpha dropped); with
  ``exif=True`` (user photos) the EXIF orientation is applied, as every photo viewer does — the
  dataset loader keeps the stored pixel order, which is the one its masks were drawn on;
* arrays: H×W (grey), H×W×3 or H×W×4 (alpha dropped); ``uint8`` as is, ``uint16`` scaled from
  0–65535, floats in [0, 1] scaled to 0–255 (floats above 1 are refused: 0–255 or 0–1 cannot be
  told apart safely), NaN refused.

Prior maps (:func:`check_prior`): finite, in [0, 1], of the image's height and width.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingFileError, UsageError


def _from_pil(im: Any, exif: bool, name: str) -> np.ndarray:
    from PIL import ImageOps

    if exif:
        im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        return to_rgb_uint8(np.clip(a / top, 0, 1), name)
    if im.mode == "F":
        return to_rgb_uint8(np.asarray(im, dtype=np.float32), name)
    return np.array(im.convert("RGB"))


def to_rgb_uint8(image: Any, name: str = "image", exif: bool = False) -> np.ndarray:
    """An H×W×3 uint8 RGB array of ``image`` (a path, a PIL image or an array; module docstring)."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.exists():
            raise MissingFileError(f"image not found: {path}")
        try:
            with Image.open(path) as im:
                im.load()
                return _from_pil(im, exif, str(path))
        except Image.DecompressionBombError as e:
            raise UsageError(f"{path}: the image is too large to open safely ({e})") from None
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise UsageError(f"{path} is not a readable image ({e})") from None
    if isinstance(image, Image.Image):
        return _from_pil(image, exif, name)
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or min(arr.shape[:2]) < 1:
        raise UsageError(f"{name}: expected an H×W, H×W×3 or H×W×4 image, got shape {arr.shape}")
    arr = arr[:, :, :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.uint16:
        return np.round(arr.astype(np.float64) / 65535.0 * 255.0).astype(np.uint8)
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise UsageError(f"{name}: the image holds NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 1:
            raise UsageError(
                f"{name}: a float image must lie in [0, 1], this one spans [{lo:.3g}, {hi:.3g}] "
                "(pass uint8 for 0–255 values)"
            )
        return np.round(arr * 255.0).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise UsageError(f"{name}: integer values must lie in 0–255 (or be uint16), got [{lo}, {hi}]")
        return arr.astype(np.uint8)
    raise UsageError(f"{name}: unsupported image dtype {arr.dtype}")


def check_prior(prior: Any, shape: tuple[int, int], name: str = "prior") -> np.ndarray:
    """A float32 H×W prior map in [0, 1] of the image's ``shape``, or a UsageError saying what is wrong."""
    p = np.asarray(prior, dtype=np.float32)
    if p.ndim == 3 and p.shape[2] == 1:
        p = p[:, :, 0]
    if p.shape != tuple(shape):
        raise UsageError(f"{name}: shape {p.shape}, but the image is {tuple(shape)} (height, width)")
    if not np.isfinite(p).all():
        raise UsageError(f"{name}: holds {int((~np.isfinite(p)).sum())} NaN or infinite values")
    lo, hi = float(p.min()), float(p.max())
    if lo < 0 or hi > 1:
        hint = " (it looks like 0–255: divide by 255)" if hi > 1 and hi <= 255 and lo >= 0 else ""
        raise UsageError(f"{name}: values must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]{hint}")
    return p


def read_photo(path: str | Path, max_side: int | None = None) -> tuple[np.ndarray, list[str]]:
    """An uploaded photo as H×W×3 uint8 RGB, and notes that tell the user what was done to it.

    As :func:`to_rgb_uint8` with ``exif=True`` (turned upright, 16-bit scaled, CMYK / palette / grey /
    RGBA converted), plus: an image whose longer side exceeds ``max_side`` is downscaled to it (the
    mask then comes at the downscaled size), and an image too large for PIL's decompression-bomb
    guard, a file that is no image, or an empty one is refused with a :class:`UsageError` naming it.
    Notes are short sentences (``"downscaled from 6000×6000 to 1024×1024"``); none when nothing was done.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"image not found: {path}")
    notes: list[str] = []
    try:
        with Image.open(path) as im:
            stored = im.size  # before a JPEG draft shrinks it
            if max_side and max(im.size) > max_side and im.format == "JPEG":
                im.draft("RGB", (max_side, max_side))  # decode big JPEGs at a reduced scale (fast)
            im.load()
            mode, fmt = im.mode, im.format
            orientation = im.getexif().get(0x0112, 1)
            upright = ImageOps.exif_transpose(im) if orientation not in (None, 1) else im
            arr = _from_pil(upright, False, str(path))
    except Image.DecompressionBombError as e:
        raise UsageError(f"{path.name}: the image is too large to open safely ({e})") from None
    except UnidentifiedImageError:
        raise UsageError(
            f"{path.name} is not a readable image (not in a format PIL reads: PNG, JPEG, WebP, BMP, TIFF, …)"
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UsageError(f"{path.name} is not a readable image ({str(e).replace(str(path), path.name)})") from None
    if orientation not in (None, 1):
        notes.append(f"turned upright by its EXIF orientation ({orientation})")
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        notes.append("16-bit image scaled to 8 bits")
    elif mode == "CMYK":
        notes.append("CMYK image converted to RGB")
    elif mode in ("RGBA", "LA", "PA"):
        notes.append("transparency (alpha) dropped")
    elif mode in ("L", "1", "F"):
        notes.append("greyscale image shown as RGB")
    h, w = arr.shape[:2]
    turned = orientation in (5, 6, 7, 8)  # the stored width and height swap when turned upright
    full = f"{stored[1]}×{stored[0]}" if turned else f"{stored[0]}×{stored[1]}"
    if max_side and max(h, w) > max_side:
        scale = max_side / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        arr = np.asarray(Image.fromarray(arr).resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=2.0))
        notes.append(f"downscaled from {full} to {nw}×{nh} (longer side {max_side})")
    elif max_side and fmt == "JPEG" and (w, h) != ((stored[1], stored[0]) if turned else stored):
        notes.append(f"downscaled from {full} to {w}×{h} (longer side {max_side})")
    return arr, notes
