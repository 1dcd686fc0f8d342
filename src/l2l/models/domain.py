"""Is this image far from the model's training domain? A feature-statistics check for the page.

A model trained on SynthRef answers nonsense on a COCO photo, and nothing in its output says so:
the probability map of a wrong answer can be as confident as a right one. The check compares the
image, resized to the model's input size, with images of the training domain, in three groups of
statistics (:func:`image_features`):

* ``pixels`` — how the picture is made: the histogram of local colour differences (flat regions
  and sharp edges versus texture), how concentrated its colours are (the share of the 1, 3 and 8
  commonest of 512 colour bins, the number of bins used) and the spread of each channel;
* ``stage1``, ``stage2`` — the model's own eyes: the first two stages of its visual encoder run
  without language, each channel pooled to its mean and standard deviation.

Per group, the distance is the mean squared z-score against the reference images (a diagonal
Mahalanobis distance); its alarm threshold is ``margin`` × the ``quantile`` of the reference
images' own distances, each measured against the statistics of the other ``folds``
(cross-validated, so the threshold is not fitted to itself). The image is far when any group
exceeds its threshold. Deeper stages are left out: they generalise (a pool-pretrained encoder's
deep features of a photo look like SynthRef's) and only added false alarms — measured in
docs/predict.md, with the alarm rates on SynthRef and on COCO photos.

References come from the run's training data (``config.yaml`` → ``data.root``, training split) or
from a folder of images given by the user. The fitted statistics are saved beside the model's
weights (``domain.json`` in the model folder, tied to the weights by their hash), so a model folder
copied elsewhere — without its training data — keeps its check. :func:`domain_check_for` is the one
way every entry point gets it: :class:`~l2l.models.predictor.SegmenterPredictor`,
:meth:`~l2l.models.segmenter.Segmenter.segment`, ``l2l predict`` and ``l2l serve`` all use it and
say a far image in the same words (:func:`far_notice`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.images import to_rgb_uint8
from ..errors import L2LError, UsageError
from ..utils.io import atomic_write_text, sha256_file
from ..utils.run_folder import RunFolder
from ..utils.tensors import image_tensor

DOMAIN_FILE = "domain.json"
GROUPS = ("pixels", "stage1", "stage2")
_DIFF_BINS = np.array([0.0, 0.004, 0.02, 0.05, 0.1, 0.2, 0.4, 1.01])


def pixel_statistics(x: np.ndarray) -> np.ndarray:
    """The ``pixels`` group of one image (H×W×3 float in [0, 1]; module docstring)."""
    gx, gy = np.abs(np.diff(x, axis=1)).max(2), np.abs(np.diff(x, axis=0)).max(2)
    g = np.concatenate([gx.ravel(), gy.ravel()])
    diffs = np.histogram(g, bins=_DIFF_BINS)[0] / g.size
    q = np.minimum((x * 8).astype(np.int64), 7).reshape(-1, 3)
    share = np.bincount(q[:, 0] * 64 + q[:, 1] * 8 + q[:, 2], minlength=512) / len(q)
    top = np.sort(share)[::-1]
    colours = [top[:1].sum(), top[:3].sum(), top[:8].sum(), (share > 0.001).sum() / 512]
    return np.concatenate([diffs, colours, x.reshape(-1, 3).std(0)]).astype(np.float32)


def model_input(image: np.ndarray, size: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """``image`` (H×W×3 uint8) as the model sees it: (1, 3, size, size) in [0, 1], resized as the predictor
    and ``segment()`` resize it (bilinear, antialiased)."""
    x = image_tensor(image)[None].to(device)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


@torch.no_grad()
def input_features(model: Any, x: torch.Tensor, stem: Any = None) -> dict[str, np.ndarray]:
    """The three groups of statistics of one model input ``x`` (:func:`model_input`); ``stem``: the
    model's stem output for ``x`` when the caller has it already (the predictor's ``set_image``)."""
    out = {"pixels": pixel_statistics(x[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy())}
    h = model.stem(x) if stem is None else stem
    h = getattr(h, "visual", h)  # the visual part of an ObjectStem (model.objects)
    for i in range(2):
        v = model.visual.stage(i, h)
        t = v if isinstance(v, torch.Tensor) else v[0]
        t = t.flatten(2) if t.dim() == 4 else t.transpose(1, 2)  # (B, C, HW) for maps and token sequences
        out[f"stage{i + 1}"] = torch.cat([t.mean(2), t.std(2)], 1)[0].float().cpu().numpy()
        h = model.visual.to_next(i, v)
    return out


def image_features(
    model: Any, images: Sequence[np.ndarray], device: str | torch.device = "cpu"
) -> dict[str, np.ndarray]:
    """The three groups of statistics (module docstring) of ``images`` (H×W×3 uint8), each (N, D),
    computed on the image resized to ``model``'s input size."""
    feats = [input_features(model, model_input(img, model.cfg.image_size, device)) for img in images]
    return {g: np.stack([f[g] for f in feats]) for g in GROUPS}


@dataclass
class DomainCheck:
    mean: dict[str, np.ndarray]  # per group
    std: dict[str, np.ndarray]
    thresholds: dict[str, float]
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
        """Statistics of ``images`` (the training domain); each group's threshold from the distances of
        every reference image to the statistics of the other folds (module docstring)."""
        if len(images) < 2 * folds:
            raise UsageError(
                f"the domain check needs at least {2 * folds} reference images, got {len(images)} ({source})"
            )
        feats = image_features(model, images, device)
        fold = np.arange(len(images)) % folds
        means, stds, thresholds = {}, {}, {}
        for g, f in feats.items():
            held = np.concatenate(
                [_distance(f[fold == k], f[fold != k].mean(0), f[fold != k].std(0) + 1e-6) for k in range(folds)]
            )
            means[g], stds[g] = f.mean(0), f.std(0) + 1e-6
            thresholds[g] = float(np.quantile(held, quantile) * margin)
        return cls(means, stds, thresholds, source, len(images))

    def distance(self, model: Any, image: np.ndarray, device: str | torch.device = "cpu") -> float:
        """How far ``image`` lies, in units of the alarm threshold: the largest over the groups of the
        group's distance divided by its threshold (> 1: far)."""
        return float(self.distances(model, [image], device)[0])

    def distances(self, model: Any, images: Sequence[np.ndarray], device: str | torch.device = "cpu") -> np.ndarray:
        return self.by_group(model, images, device).max(1)

    def by_group(self, model: Any, images: Sequence[np.ndarray], device: str | torch.device = "cpu") -> np.ndarray:
        """(N, groups) distances in units of each group's threshold, in the order of :data:`GROUPS`."""
        return self._scaled(image_features(model, images, device))

    def distance_of_input(self, model: Any, x: torch.Tensor, stem: Any = None) -> float:
        """:meth:`distance` of a model input already made (:func:`model_input`), reusing its ``stem`` output."""
        return float(self._scaled({g: f[None] for g, f in input_features(model, x, stem).items()}).max(1)[0])

    def _scaled(self, feats: dict[str, np.ndarray]) -> np.ndarray:
        return np.stack([_distance(feats[g], self.mean[g], self.std[g]) / self.thresholds[g] for g in GROUPS], 1)

    @staticmethod
    def is_far(distance: float) -> bool:
        return distance > 1.0

    def to_json(self, weights: str = "") -> str:
        return json.dumps(
            {
                "source": self.source,
                "references": self.references,
                "weights": weights,
                "thresholds": self.thresholds,
                "mean": {g: v.tolist() for g, v in self.mean.items()},
                "std": {g: v.tolist() for g, v in self.std.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "DomainCheck":
        d = json.loads(text)
        arr = {k: {g: np.asarray(d[k][g], np.float32) for g in GROUPS} for k in ("mean", "std")}
        return cls(
            arr["mean"],
            arr["std"],
            {g: float(d["thresholds"][g]) for g in GROUPS},
            str(d["source"]),
            int(d["references"]),
        )


def far_notice(distance: float, check: DomainCheck, dataset: str | None = None) -> str:
    """What every entry point says of an image far from the training domain (the same words everywhere)."""
    return (
        f"FAR FROM THE TRAINING DOMAIN: this image's features lie {distance:.1f}× the alarm distance "
        f"from the {check.source}; the model{f' ({dataset})' if dataset else ''} "
        "was not trained on images like it, so do not trust this mask"
    )


class OutOfDomainWarning(UserWarning):
    """Raised as a warning by the Python API when an image is far from the model's training domain."""


def domain_check_for(
    path: str | Path, model: Any, images: str | Path | None = None, device: str | torch.device = "cpu"
) -> tuple[DomainCheck | None, str]:
    """The domain check of the model saved at ``path`` and a note saying what it was measured against:
    ``images`` (a folder) when given; else the model folder's ``domain.json`` when its weights are the
    ones it was fitted for; else fitted on the run's training images and saved there (when the folder
    is writable). ``(None, "no domain check: <why>")`` when none can be had."""
    folder = RunFolder.saved_model(path)
    weights = sha256_file(folder / "model.safetensors") if folder is not None else ""
    saved = folder / DOMAIN_FILE if folder is not None else None
    if images is None and saved is not None and saved.exists():
        try:
            doc = json.loads(saved.read_text())
            if doc.get("weights") == weights:
                check = DomainCheck.from_json(saved.read_text())
                return check, f"domain check against {check.source}"
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            pass  # damaged: fitted again below
    try:
        refs, source = reference_images(path, images)
        check = DomainCheck.fit(model, refs, source, device=device)
    except L2LError as e:
        return None, f"no domain check: {e}"
    if images is None and saved is not None:
        try:
            atomic_write_text(saved, check.to_json(weights))
        except OSError:
            pass  # a read-only model folder: the check holds for this process
    return check, f"domain check against {check.source}"


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
    from ..utils.run_paths import load_run_dict

    cfg = load_run_dict(run) or {}
    root = (cfg.get("data") or {}).get("root")
    if not root or not Path(root).exists():
        raise UsageError(
            f"the training data of {run} is not here ({root or 'no data.root in its config.yaml'}); "
            "give --domain-images DIR"
        )
    from ..data.refer import ReferDataset

    data = cfg["data"]
    ds = ReferDataset.open(root, data.get("dataset"), data.get("split_by"), data.get("image_dir"))
    ids = sorted(ds.image_ids("train"), key=lambda i: mix_seed(0, int(i)))[:n]
    return [to_rgb_uint8(ds.image_path(i), str(ds.image_path(i))) for i in ids], f"{len(ids)} training images of {root}"
