"""Is this image far from the model's training domain? A feature-statistics check for the page.

A model trained on SynthRef answers nonsense on a COCO photo, and nothing in its output says so:
the probability map of a wrong answer can be as confident as a right one. The check compares the
image with images of the training domain in the model's own eyes: the visual encoder is run
without language (stem, then each stage; :func:`image_features`), each stage's channels are
pooled to their mean and standard deviation, and the image's distance to the reference set is the
mean squared z-score of those statistics (a diagonal Mahalanobis distance) against the mean and
spread of the reference images, per stage. Each stage's alarm threshold is ``margin`` × the
``quantile`` of the reference images' own distances, each measured against the statistics of the
other ``folds`` (cross-validated, so the threshold is not fitted to itself), and the image is
far when any stage exceeds its threshold (the shallow stages tell SynthRef from photos best: the
deeper ones of a pool-pretrained encoder generalise — measured in docs/predict.md).

References come from the run's training data (``config.yaml`` → ``data.root``, training split) or
from a folder of images given by the user. Measured rates: docs/predict.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.images import to_rgb_uint8
from ..errors import UsageError


@torch.no_grad()
def image_features(model: Any, images: Sequence[np.ndarray], device: str | torch.device = "cpu") -> list[np.ndarray]:
    """Language-free feature statistics of ``images`` (H×W×3 uint8) under ``model``'s visual encoder at
    its training resolution: one (N, 2·C_k) array per stage k, the channel means and standard deviations."""
    s = model.cfg.image_size
    out: list[list[np.ndarray]] = []
    for img in images:
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255)[None].to(device)
        x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        h = model.stem(x)
        stats = []
        for i in range(4):
            v = model.visual.stage(i, h)
            t = v if isinstance(v, torch.Tensor) else v[0]
            t = t.flatten(2) if t.dim() == 4 else t.transpose(1, 2)  # (B, C, HW) for maps and token sequences
            stats.append(torch.cat([t.mean(2), t.std(2)], 1)[0].float().cpu().numpy())
            h = model.visual.to_next(i, v)
        out.append(stats)
    return [np.stack([o[k] for o in out]) for k in range(4)]


@dataclass
class DomainCheck:
    mean: list[np.ndarray]  # per stage
    std: list[np.ndarray]
    thresholds: list[float]  # per stage
    source: str  # where the references came from (said on the page)
    references: int

    @classmethod
    def fit(
        cls,
        model: Any,
        images: Sequence[np.ndarray],
        source: str,
        folds: int = 4,
        quantile: float = 0.99,
        margin: float = 1.0,
        device: str | torch.device = "cpu",
    ) -> "DomainCheck":
        """Statistics of ``images`` (the training domain); each stage's threshold from the distances of
        every reference image to the statistics of the other folds (module docstring)."""
        if len(images) < 2 * folds:
            raise UsageError(
                f"the domain check needs at least {2 * folds} reference images, got {len(images)} ({source})"
            )
        feats = image_features(model, images, device)
        fold = np.arange(len(images)) % folds
        means, stds, thresholds = [], [], []
        for f in feats:
            held = np.concatenate([_distance(f[fold == k], f[fold != k].mean(0), f[fold != k].std(0) + 1e-6)
                                   for k in range(folds)])  # fmt: skip
            means.append(f.mean(0))
            stds.append(f.std(0) + 1e-6)
            thresholds.append(float(np.quantile(held, quantile) * margin))
        return cls(means, stds, thresholds, source, len(images))

    def distance(self, model: Any, image: np.ndarray, device: str | torch.device = "cpu") -> float:
        """How far ``image`` lies, in units of the alarm threshold: the largest over stages of the
        stage's distance divided by its threshold (> 1: far)."""
        return float(self.distances(model, [image], device)[0])

    def distances(self, model: Any, images: Sequence[np.ndarray], device: str | torch.device = "cpu") -> np.ndarray:
        feats = image_features(model, images, device)
        per_stage = [_distance(f, m, s) / t for f, m, s, t in zip(feats, self.mean, self.std, self.thresholds)]
        return np.max(np.stack(per_stage), 0)

    @staticmethod
    def is_far(distance: float) -> bool:
        return distance > 1.0


def _distance(feats: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (((feats - mean) / std) ** 2).mean(1)


def reference_images(
    run: str | Path | None, folder: str | Path | None = None, n: int = 128
) -> tuple[list[np.ndarray], str]:
    """Up to ``n`` training-domain images: from ``folder`` when given, else the training split of the
    run's dataset (``config.yaml`` beside the checkpoint → ``data.root``). Raises when there are none."""
    from ..utils.seeding import mix_seed

    if folder is not None:
        from ..models.batch_predict import IMAGE_EXT

        files = (
            sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXT) if Path(folder).is_dir() else []
        )
        if not files:
            raise UsageError(f"--domain-images {folder}: no image there")
        files = sorted(files, key=lambda p: hashlib.sha1(p.name.encode()).hexdigest())[:n]  # a spread, not the first n
        return [to_rgb_uint8(p, str(p), exif=True) for p in files], f"{len(files)} images of {folder}"
    cfg = _run_config(run) or {}
    root = (cfg.get("data") or {}).get("root")
    if not root or not Path(root).exists():
        raise UsageError(f"the training data of {run} is not here ({root or 'no data.root in its config.yaml'}); "
                         "give --domain-images DIR")  # fmt: skip
    from ..data.refer import ReferDataset

    data = cfg["data"]
    ds = ReferDataset.open(root, data.get("dataset"), data.get("split_by"), data.get("image_dir"))
    ids = sorted(ds.image_ids("train"), key=lambda i: mix_seed(0, int(i)))[:n]
    return [to_rgb_uint8(ds.image_path(i), str(ds.image_path(i))) for i in ids], f"{len(ids)} training images of {root}"


def _run_config(run: str | Path | None) -> dict[str, Any] | None:
    import yaml

    if run is None:
        return None
    run = Path(run)
    for p in (run, run.parent, run.parent.parent):
        if (p / "config.yaml").exists():
            return yaml.safe_load((p / "config.yaml").read_text())
    return None
