"""A qualitative grid like the paper's Fig. 4: image and sentence, ground truth, and the prediction
of each method (its IoU in the title), on samples chosen reproducibly.

Choice: ``pool`` samples of the evaluation split drawn with ``seed``; every method's trained model
(``best/`` of the run) segments them without guidance (the paper's protocol); the rows are the
samples where the reference method (the paper's "Ours" row, else the last) beats the best other
method by the widest margin, then — a third of the rows, at least one — its worst samples (failures).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..utils.masks import mask_iou
from .collect import CellData


def qualitative_grid(
    cells: list[tuple[str, CellData]],
    reference: str,
    split: str,
    out: Path,
    rows: int = 6,
    seed: int = 0,
    pool: int = 48,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """``cells``: (label, finished run) per method; ``reference``: the label of the method the rows
    are chosen for. Writes the PNG and returns one record per shown sample."""
    from ..data.preview import overlay
    from ..engine.trainer import TrainConfig, open_dataset
    from ..models.segmenter import Segmenter
    from ..utils.figures import save_panel_grid, wrap
    from ..utils.run_paths import load_run_config

    cfg = load_run_config(cells[0][1].run_dir, TrainConfig)
    ds = open_dataset(cfg.data)
    recs = ds.samples(split)
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(recs), size=min(pool, len(recs)), replace=False).tolist())
    chosen = [recs[i] for i in pick]
    models = {label: Segmenter.from_pretrained(c.run_dir, device) for label, c in cells}
    preds: dict[int, dict[str, tuple[np.ndarray, float]]] = {}
    for r in chosen:
        img = ds.load_image(r.image_id)
        gt = ds.mask(r.ann_id).astype(bool)
        preds[r.sample_id] = {}
        for label, m in models.items():
            mask, _ = m.segment(img, r.sentence, guidance="none", domain_check=False)
            preds[r.sample_id][label] = (mask.astype(bool), mask_iou(mask.astype(bool), gt))
    others = [label for label, _ in cells if label != reference]

    def margin(r) -> float:
        p = preds[r.sample_id]
        return p[reference][1] - max((p[o][1] for o in others), default=0.0)

    n_fail = min(len(chosen), max(1, rows // 3))
    n_win = min(len(chosen), rows) - n_fail
    wins = sorted(chosen, key=lambda r: (-margin(r), r.sample_id))[:n_win]
    rest = [r for r in chosen if r not in wins]
    fails = sorted(rest, key=lambda r: (preds[r.sample_id][reference][1], r.sample_id))[:n_fail]
    grid, records = [], []
    for why, group in (("largest margin of " + reference, wins), (reference + " failure", fails)):
        for r in group:
            img = ds.load_image(r.image_id)
            gt = ds.mask(r.ann_id).astype(np.uint8)
            row: list[tuple[Any, str, dict[str, Any]]] = [
                (img, wrap(f'#{r.sample_id}: "{r.sentence}"', 30), {}),
                (overlay(img, gt), "ground truth", {}),
            ]
            rec = {"sample_id": r.sample_id, "sentence": r.sentence, "why": why}
            for label, _ in cells:
                mask, iou = preds[r.sample_id][label]
                row.append((overlay(img, mask.astype(np.uint8)), wrap(f"{label}", 24) + f"\nIoU {100 * iou:.1f}", {}))
                rec[label] = iou
            grid.append(row)
            records.append(rec)
    save_panel_grid(grid, out, panel_w=2.2, panel_h=2.6, dpi=85)
    from PIL import Image

    with Image.open(out) as im:  # photos of noisy textures: a 256-colour palette keeps the PNG ~3× smaller
        im.convert("RGB").quantize(256).save(out, optimize=True)
    return records


def fixed_samples_figure(
    model: Any, ds: Any, records: list[Any], out: Path, zoom: int = 4, guidance: str = "none"
) -> list[dict[str, Any]]:
    """One column per sample, always the given ``records`` (never chosen by result): the image with
    its sentence, the ground truth, and the model's prediction with its IoU, each panel drawn at
    ``zoom`` × the image's pixels (nearest neighbour). Writes the PNG; returns one record per sample
    (sample id, sentence, kind, IoU)."""
    from ..data.preview import overlay
    from ..utils.figures import save_panel_grid, wrap

    cols: list[list[tuple[Any, str, dict[str, Any]]]] = []
    rows: list[dict[str, Any]] = []
    for r in records:
        img = ds.load_image(r.image_id)
        gt = ds.mask(r.ann_id).astype(bool)
        mask, _ = model.segment(img, r.sentence, guidance=guidance, domain_check=False)
        mask = mask.astype(bool)
        iou = mask_iou(mask, gt)
        big = lambda a: np.repeat(np.repeat(a, zoom, 0), zoom, 1)  # noqa: E731 — nearest-neighbour zoom
        cols.append(
            [
                (big(img), wrap(f'#{r.sample_id} ({r.kind}): "{r.sentence}"', 40), {}),
                (big(overlay(img, gt.astype(np.uint8))), "ground truth", {}),
                (big(overlay(img, mask.astype(np.uint8))), f"prediction — IoU {100 * iou:.1f} %", {}),
            ]
        )
        rows.append({"sample_id": r.sample_id, "sentence": r.sentence, "kind": r.kind, "iou": iou})
    grid = [[c[i] for c in cols] for i in range(3)]
    h, w = ds.load_image(records[0].image_id).shape[:2]
    dpi = 100
    save_panel_grid(grid, out, panel_w=w * zoom / dpi + 0.2, panel_h=h * zoom / dpi + 1.0, dpi=dpi, title_size=15)
    from PIL import Image

    with Image.open(out) as im:
        im.convert("RGB").quantize(256).save(out, optimize=True)
    return rows
