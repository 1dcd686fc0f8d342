"""Mask extraction (Pseudo-RIS §3.1): class-agnostic masks of an unlabeled image, a handful kept.

The paper runs SAM's automatic generator (~120 masks per image) and keeps the ~5 that overlap
masks of CutLER, an unsupervised segmenter. We have no second proposal source; our objectness
filter is the mask model's own: its automatic mode (:func:`l2l.foundation.mask_model.automatic_masks`
— predicted IoU and stability thresholds, mask NMS), masks of a plausible size (``min_area_frac``
to ``max_area_frac`` of the image), ranked by predicted IoU × stability, the best ``max_masks``
kept. ``source="gt"`` takes the image's ground-truth instance masks instead (the paper's Table 6),
an upper bound that reads annotations: never the zero-shot setting.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import MaskConfig


def extract_masks(predictor: Any, image: np.ndarray, cfg: MaskConfig) -> list[dict[str, Any]]:
    """The kept masks of ``image``: SAM-style records (segmentation, area, bbox, predicted_iou,
    stability_score), best first; possibly none (the caller counts such images)."""
    from ..foundation.mask_model import automatic_masks

    recs = automatic_masks(predictor, image, cfg.points_per_side, cfg.pred_iou_thresh, cfg.stability_thresh,
                           cfg.nms_thresh)  # fmt: skip
    return select(recs, image.shape[0] * image.shape[1], cfg)


def select(recs: list[dict[str, Any]], pixels: int, cfg: MaskConfig) -> list[dict[str, Any]]:
    """The objectness filter on automatic-mode records (module docstring)."""
    ok = [r for r in recs if cfg.min_area_frac * pixels <= r["area"] <= cfg.max_area_frac * pixels]
    ok.sort(key=lambda r: -float(r["predicted_iou"]) * float(r["stability_score"]))
    return ok[: cfg.max_masks]


def gt_masks(ds: Any, image_id: int, cfg: MaskConfig) -> list[dict[str, Any]]:
    """Ground-truth instance masks of the image as records (Table 6's variant)."""
    out = []
    for a in ds.image_anns(image_id)[: max(cfg.max_masks, 64)]:
        m = ds.mask(a).astype(bool)
        if not m.any():
            continue
        ys, xs = np.nonzero(m)
        out.append({"segmentation": m, "area": int(m.sum()), "predicted_iou": 1.0, "stability_score": 1.0,
                    "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)],
                    "ann_id": int(a)})  # fmt: skip
    return out
