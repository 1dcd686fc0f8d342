"""``simulated`` — a SIMULATED stand-in for the MLLM + SAM2 prior, built from the ground truth.

**This is not a model.** It exists so that SynthRef experiments have a prior with known,
controllable failure modes. It is named as a simulation in its provider name, in every
record's provenance and in the store's metadata.

Failure model (each draw from a per-sample RNG seeded by ``(seed, sample_id)``):

* ``miss``     — no grounding at all: an empty, low-confidence prior;
* ``drift``    — grounding lands on another object of the image. Its probability is
  ``drift`` × the kind factor (relational and ordinal expressions are harder for MLLMs:
  ``drift_relational``), and the distractor is drawn with weight 1 + ``lookalike_weight`` ×
  (same category) + ``lookalike_weight`` × (same colour, SynthRef);
* ``partial``  — a random half-plane cuts off 10–35 % of the mask;
* ``bloat``    — the mask is dilated by 15–35 % of the object's equivalent radius;
* ``box``      — leakage: part of the mask's bounding box is filled;
* soft boundaries — a Gaussian blur (σ 0.5–2.5 px) before the values are mapped into
  [low, high]; a prior is *confident* (high ≈ 0.97) or *hesitant* (high 0.6–0.85); a drifted
  prior stays confident with probability ``confident_wrong`` (the paper's Fig. 1: the prior
  can be confident where it is wrong);
* low-frequency noise of amplitude ``noise``.

The defaults are calibrated so that the mean IoU (prior ≥ 0.5 vs ground truth) on SynthRef's
training split is close to the 68.48 % that the paper reports for its raw prior (Fig. 9):
``l2l priors eval`` reports it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.augment import gaussian_blur
from ..data.refer import ReferDataset
from .base import PriorInput, PriorRecord, config_hash

NAME = "simulated"
WARNING = "SIMULATION built from the ground truth - not a real MLLM/SAM2 prior"


@dataclass
class SimulatedConfig:
    seed: int = 0
    miss: float = 0.04
    drift: float = 0.07
    drift_relational: float = 2.0  # multiplier for relation / ordinal expressions
    lookalike_weight: float = 3.0
    partial: float = 0.20
    bloat: float = 0.20
    box: float = 0.15
    confident_wrong: float = 0.6
    noise: float = 0.08


class SimulatedProvider:
    name = NAME

    def __init__(self, ds: ReferDataset, cfg: SimulatedConfig | None = None):
        self.ds, self.cfg = ds, cfg or SimulatedConfig()

    def config(self) -> dict[str, Any]:
        return {"provider": NAME, "warning": WARNING, "dataset": self.ds.name, **asdict(self.cfg)}

    # ------------------------------------------------------------------ pieces
    def _distractor(self, rng: np.random.Generator, target: int, image_id: int) -> int | None:
        others = [a for a in self.ds.image_anns(image_id) if a != target]
        if not others:
            return None
        t = self.ds.anns[target]
        w = []
        for a in others:
            o = self.ds.anns[a]
            same_cat = o["category_id"] == t["category_id"]
            same_col = (o.get("attributes") or {}).get("color") is not None and (o.get("attributes") or {}).get(
                "color"
            ) == (t.get("attributes") or {}).get("color")
            w.append(1.0 + self.cfg.lookalike_weight * (same_cat + same_col))
        w = np.array(w) / sum(w)
        return int(others[int(rng.choice(len(others), p=w))])

    @staticmethod
    def _half_plane_cut(m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ys, xs = np.nonzero(m)
        if len(xs) < 4:
            return m
        theta = rng.uniform(0, 2 * math.pi)
        proj = xs * math.cos(theta) + ys * math.sin(theta)
        cut = np.quantile(proj, rng.uniform(0.1, 0.35))
        out = m.copy()
        out[ys[proj < cut], xs[proj < cut]] = False
        return out

    def _one(self, inp: PriorInput) -> PriorRecord:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, inp.sample_id])
        rec = self.ds.sample(inp.sample_id)
        h, w = inp.image.shape[:2]
        events: list[str] = []
        if rng.random() < cfg.miss:
            prob: np.ndarray = np.clip(0.02 + 0.02 * rng.random((h, w)), 0, 1).astype(np.float32)
            return PriorRecord(
                inp.sample_id,
                prob,
                {},
                0.05,
                {"provider": NAME, "warning": WARNING, "events": ["miss"], "config_hash": config_hash(self.config())},
            )
        ann = rec.ann_id
        factor = cfg.drift_relational if rec.kind in ("relation", "ordinal") else 1.0
        drifted = False
        if rng.random() < min(1.0, cfg.drift * factor):
            d = self._distractor(rng, rec.ann_id, rec.image_id)
            if d is not None:
                ann, drifted = d, True
                events.append("drift")
        m = self.ds.mask(ann)
        if rng.random() < cfg.partial:
            m = self._half_plane_cut(m, rng)
            events.append("partial")
        mt = torch.from_numpy(m.astype(np.float32))[None, None]
        if rng.random() < cfg.bloat:
            r = max(1, int(round(rng.uniform(0.15, 0.35) * math.sqrt(float(mt.sum()) / math.pi))))
            mt = F.max_pool2d(mt, 2 * r + 1, stride=1, padding=r)
            events.append("bloat")
        if rng.random() < cfg.box and mt.sum() > 0:
            ys, xs = torch.nonzero(mt[0, 0] > 0.5, as_tuple=True)
            y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
            fill = float(rng.uniform(0.55, 0.9))
            mt[0, 0, y0:y1, x0:x1] = torch.maximum(mt[0, 0, y0:y1, x0:x1], torch.tensor(fill))
            events.append("box")
        soft = gaussian_blur(mt, torch.tensor([rng.uniform(0.5, 2.5)]))[0, 0].numpy()
        confident = rng.random() < (cfg.confident_wrong if drifted else 0.7)
        hi = rng.uniform(0.93, 0.99) if confident else rng.uniform(0.6, 0.85)
        lo = rng.uniform(0.01, 0.04)
        prob = lo + (hi - lo) * soft
        if cfg.noise > 0:
            grid = torch.from_numpy(rng.normal(0, cfg.noise, size=(1, 1, 6, 6)).astype(np.float32))
            prob = prob + F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
        prob = np.clip(prob, 0, 1).astype(np.float32)
        x, y, bw, bh = self.ds.box(ann)
        return PriorRecord(
            inp.sample_id,
            prob,
            {"box": [x, y, bw, bh]},
            float(hi),
            {"provider": NAME, "warning": WARNING, "events": events, "config_hash": config_hash(self.config())},
        )

    def __call__(self, batch: Sequence[PriorInput]) -> list[PriorRecord]:
        return [self._one(inp) for inp in batch]
