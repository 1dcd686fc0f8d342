"""What to annotate next (issue 36, item 3): strategies behind one interface that rank the unlabeled images.

Every strategy scores each unlabeled (image, sentence) — higher means "annotate first" — and an image's
score is the mean over its sentences (the unit a person labels is the image: every ref of it, so that the
split stays image-level as the papers' is). The inputs, per sentence, are the current model's foreground
probability ``p_w`` and the prior ``P`` at the model's resolution, and per image a feature vector:

* ``random`` — the papers' protocol: images in the hash order of :mod:`l2l.data.splits` (seeded);
* ``disagreement`` — ``1 − a``, ``a`` the soft IoU of ``p_w`` and ``P`` (Eq. 4, :func:`l2l.semi.spm.agreement`):
  where the model and the prior disagree, one of them is wrong;
* ``uncertainty`` — ``1 − mean c(p_w)``, ``c(p) = |2p − 1|`` (:func:`l2l.semi.spm.certainty`): where the
  model itself is unsure;
* ``rple-state`` — the share of pixels Eq. 6's pseudo-label would ignore on the prior at the static
  thresholds (``r_ign`` of RPLE's state, Eq. 7, :func:`l2l.semi.rple.state`): where self-training has least
  to learn from, so a label is worth most [ours: which part of the state];
* ``diversity`` — greedy k-center on the image features (each pick the image farthest from every labeled
  and already picked one), a scene-coverage term [ours: the features are the segmenter's visual stem,
  average-pooled to a 4 × 4 grid];
* ``disagreement+diversity`` — k-center among the top ``3k`` images by disagreement [ours].

``rank_images`` returns the next ``k`` image ids. The scores come from :func:`candidates`, which runs a
:class:`~l2l.models.predictor.SegmenterPredictor` over the unlabeled images and reads their priors.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.splits import rank_key
from ..errors import UsageError
from ..semi import rple, spm
from ..utils.progress import progress


@dataclass
class Candidate:
    """One unlabeled (image, sentence) and what the strategies read of it."""

    sample_id: int
    image_id: int
    p_w: np.ndarray | None = None  # the model's foreground probability, h × w
    prior: np.ndarray | None = None  # the prior, same size
    feature: np.ndarray | None = None  # the image's feature vector (same for all its sentences)


def _maps(cands: Sequence[Candidate], what: str) -> torch.Tensor:
    missing = [c.sample_id for c in cands if getattr(c, what) is None]
    if missing:
        raise UsageError(f"this strategy needs {what} for every candidate; samples {missing[:5]} have none")
    return torch.as_tensor(np.stack([getattr(c, what) for c in cands]).astype(np.float32))


def _disagreement(cands: Sequence[Candidate]) -> np.ndarray:
    return (1 - spm.agreement(_maps(cands, "p_w"), _maps(cands, "prior"))).numpy()


def _uncertainty(cands: Sequence[Candidate]) -> np.ndarray:
    return (1 - spm.certainty(_maps(cands, "p_w")).flatten(1).mean(1)).numpy()


STATIC_THRESHOLDS = (0.7, 0.2)  # the static pseudo-labeler's (τ_fg, τ_bg) of docs/semi.md


def _rple_state(cands: Sequence[Candidate]) -> np.ndarray:
    prior = _maps(cands, "prior")
    thr = torch.tensor([STATIC_THRESHOLDS], dtype=torch.float32).expand(len(cands), 2)
    s = rple.state(prior, thr, torch.ones(len(cands)))
    return s[:, 4].numpy()  # r_ign


SCORES: dict[str, Callable[[Sequence[Candidate]], np.ndarray]] = {
    "disagreement": _disagreement,
    "uncertainty": _uncertainty,
    "rple-state": _rple_state,
}
STRATEGIES = ("random", *SCORES, "diversity", "disagreement+diversity")


def image_scores(cands: Sequence[Candidate], strategy: str) -> dict[int, float]:
    """Mean score of each image's sentences under a scoring strategy (higher: annotate first)."""
    if strategy not in SCORES:
        raise UsageError(f"strategy {strategy!r} has no per-sentence score; those that do: {sorted(SCORES)}")
    per = SCORES[strategy](cands)
    acc: dict[int, list[float]] = defaultdict(list)
    for c, v in zip(cands, per):
        acc[c.image_id].append(float(v))
    return {i: float(np.mean(v)) for i, v in acc.items()}


def _features(cands: Sequence[Candidate]) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    for c in cands:
        if c.feature is None:
            raise UsageError(f"diversity needs image features; sample {c.sample_id} has none")
        out.setdefault(c.image_id, np.asarray(c.feature, np.float64))
    return out


def k_center(pool: dict[int, np.ndarray], k: int, chosen: Iterable[np.ndarray] = ()) -> list[int]:
    """Greedy k-center: ``k`` ids of ``pool``, each the farthest (Euclidean) from all ``chosen`` features and
    the picks before it; the first pick with nothing chosen is the one farthest from the pool's mean."""
    ids = sorted(pool)
    if not ids or k <= 0:
        return []
    x = np.stack([pool[i] for i in ids])
    ref = [np.asarray(f, np.float64) for f in chosen]
    anchor = np.stack(ref) if ref else x.mean(0, keepdims=True)
    d = np.sqrt(((x[:, None] - anchor[None]) ** 2).sum(-1)).min(1)
    picks: list[int] = []
    for _ in range(min(k, len(ids))):
        j = int(d.argmax())
        picks.append(ids[j])
        d = np.minimum(d, np.sqrt(((x - x[j]) ** 2).sum(-1)))
        d[j] = -1.0
    return picks


def rank_images(
    cands: Sequence[Candidate],
    strategy: str,
    k: int,
    seed: int = 0,
    labeled_features: Sequence[np.ndarray] = (),
) -> list[int]:
    """The next ``k`` images to annotate among the candidates' images (ties: the smaller id first)."""
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    images = sorted({c.image_id for c in cands})
    if strategy == "random":
        return sorted(images, key=lambda i: rank_key(seed, i))[:k]
    if strategy == "diversity":
        return k_center(_features(cands), k, labeled_features)
    if strategy == "disagreement+diversity":
        sc = image_scores(cands, "disagreement")
        top = sorted(images, key=lambda i: (-sc[i], i))[: 3 * k]
        feats = _features(cands)
        return k_center({i: feats[i] for i in top}, k, labeled_features)
    sc = image_scores(cands, strategy)
    return sorted(images, key=lambda i: (-sc[i], i))[:k]


def image_feature(stem: Any) -> np.ndarray:
    """The diversity feature of one image: the visual stem's output average-pooled to 4 × 4, flattened."""
    stem = getattr(stem, "visual", stem)  # the visual part of an ObjectStem (model.objects)
    x = stem[0] if isinstance(stem, (tuple, list)) else stem
    if x.dim() == 3:  # tokens (B, N, C) of a transformer stem: no grid to pool, the mean token
        return x.mean(1)[0].float().cpu().numpy()
    return F.adaptive_avg_pool2d(x.float(), 4)[0].flatten().cpu().numpy()


@torch.no_grad()
def candidates(
    predictor: Any,
    ds: Any,
    image_ids: Iterable[int],
    priors: Any = None,
    size: int = 48,
    split: str = "train",
) -> list[Candidate]:
    """Score inputs of every training sentence of ``image_ids``: the predictor's probabilities and the
    priors (a :class:`~l2l.priors.store.PriorStore`, or None) resized to ``size`` × ``size``, and the image
    feature. ``predictor``: a :class:`~l2l.models.predictor.SegmenterPredictor` (no guidance)."""
    wanted = set(int(i) for i in image_ids)
    by_image: dict[int, list[Any]] = defaultdict(list)
    for r in ds.samples(split):
        if r.image_id in wanted:
            by_image[r.image_id].append(r)
    out: list[Candidate] = []

    def small(m: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(np.asarray(m, np.float32))[None, None]
        return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()

    for image_id in progress(sorted(by_image), desc="scoring unlabeled images"):
        recs = by_image[image_id]
        predictor.set_image(ds.load_image(image_id))
        feat = image_feature(predictor._stem)
        _, probs = predictor.predict([r.sentence for r in recs])
        for r, p in zip(recs, probs):
            prior = None if priors is None else priors.get(r.sample_id)
            out.append(Candidate(r.sample_id, image_id, small(p), None if prior is None else small(prior), feat))
    return out
