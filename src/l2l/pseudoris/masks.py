"""Mask extraction (Pseudo-RIS §3.1): class-agnostic masks of an unlabeled image, a handful kept.

The paper runs SAM's automatic generator (~120 masks per image) and keeps the ~5 that overlap
masks of CutLER, an unsupervised segmenter, most. Two selections (``masks.select``), both on the mask
model's automatic mode (:func:`l2l.foundation.mask_model.automatic_masks` — predicted IoU and
stability thresholds, mask NMS) and masks of a plausible size (``min_area_frac`` to ``max_area_frac``
of the image):

* ``score`` [ours, the default]: ranked by predicted IoU × stability, the best ``max_masks`` kept;
* ``ncut`` (the paper's procedure with a substitute for CutLER): for each mask that MaskCut-style
  normalised cuts find on the pool-pretrained encoder's features (:mod:`~l2l.pseudoris.ncut`), the
  automatic mask with the highest IoU with it (App. F), at most ``max_masks``.
 ``source="gt"`` takes the image's ground-truth instance masks instead (the paper's Table 6),
an upper bound that reads annotations: never the zero-shot setting.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UsageError
from .config import MaskConfig


def extract_masks(predictor: Any, image: np.ndarray, cfg: MaskConfig, discoverer: Any = None) -> list[dict[str, Any]]:
    """The kept masks of ``image``: SAM-style records (segmentation, area, bbox, predicted_iou,
    stability_score), best first; possibly none (the caller counts such images). ``discoverer``
    (``masks.select: ncut``): image → object masks (:class:`~l2l.pseudoris.ncut.NCutDiscoverer`)."""
    from ..foundation.mask_model import automatic_masks

    if cfg.select == "ncut" and discoverer is None:
        raise UsageError("masks.select=ncut needs the object discoverer (load_models(..., discover=cfg.masks))")
    recs = automatic_masks(
        predictor, image, cfg.points_per_side, cfg.pred_iou_thresh, cfg.stability_thresh, cfg.nms_thresh
    )
    if cfg.select == "ncut":
        return select_by_overlap(recs, discoverer(image), image.shape[0] * image.shape[1], cfg)
    return select(recs, image.shape[0] * image.shape[1], cfg)


def _plausible(recs: list[dict[str, Any]], pixels: int, cfg: MaskConfig) -> list[dict[str, Any]]:
    return [r for r in recs if cfg.min_area_frac * pixels <= r["area"] <= cfg.max_area_frac * pixels]


def select(recs: list[dict[str, Any]], pixels: int, cfg: MaskConfig) -> list[dict[str, Any]]:
    """The objectness filter on automatic-mode records (module docstring)."""
    ok = _plausible(recs, pixels, cfg)
    ok.sort(key=lambda r: -float(r["predicted_iou"]) * float(r["stability_score"]))
    return ok[: cfg.max_masks]


def select_by_overlap(
    recs: list[dict[str, Any]], found: list[np.ndarray], pixels: int, cfg: MaskConfig
) -> list[dict[str, Any]]:
    """App. F: per discovered mask (in order), the plausible automatic mask with the highest IoU with it
    (IoU > 0; each automatic mask taken once), at most ``max_masks``."""
    ok = _plausible(recs, pixels, cfg)
    segs = [np.asarray(r["segmentation"], bool) for r in ok]
    chosen: list[int] = []
    for d in found:
        d = np.asarray(d, bool)
        ious = [
            float((s & d).sum()) / max(float((s | d).sum()), 1.0) if k not in chosen else -1.0
            for k, s in enumerate(segs)
        ]
        if ious and max(ious) > 0:
            chosen.append(int(np.argmax(ious)))
        if len(chosen) == cfg.max_masks:
            break
    return [ok[k] for k in chosen]


def gt_masks(ds: Any, image_id: int, cfg: MaskConfig) -> list[dict[str, Any]]:
    """Ground-truth instance masks of the image as records (Table 6's variant)."""
    out = []
    for a in ds.image_anns(image_id)[: max(cfg.max_masks, 64)]:
        m = ds.mask(a).astype(bool)
        if not m.any():
            continue
        ys, xs = np.nonzero(m)
        out.append(
            {
                "segmentation": m,
                "area": int(m.sum()),
                "predicted_iou": 1.0,
                "stability_score": 1.0,
                "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)],
                "ann_id": int(a),
            }
        )
    return out
