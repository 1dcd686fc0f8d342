"""Per-epoch telemetry of self-training on the unlabeled samples (the paper's Fig. 9).

For every visit the method returns what it computed (weak prediction ``p_w``, stored prior
``P†``, soft target ``q`` = calibrated prior ``P̃`` for L2L, pseudo-labels, thresholds, reward
terms). :class:`Telemetry` compares them with the **hidden** ground truth through
:class:`~l2l.data.dataset.HiddenMasks`, which the loss path never receives:

* ``tele_prior_iou`` / ``tele_target_iou`` / ``tele_weak_iou`` — mean IoU (maps ≥ 0.5) of the raw
  prior, of the target ``q`` (the calibrated prior under SPM) and of the weak prediction;
* ``tele_sel_acc`` — accuracy of the selected (non-ignored) pseudo-label pixels;
  ``tele_sel_cov`` — selected share of the view's valid pixels; ``tele_ignored`` — the rest;
  ``tele_fg_precision`` / ``tele_fg_recall`` — of the pseudo-foreground against the true foreground
  (the accuracy above is dominated by easy background on small objects);
* ``tele_tau_fg_*`` / ``tele_tau_bg_*`` — mean and 10/50/90 % quantiles of the thresholds;
  ``tele_reward_<term>_*`` — the same for each reward term of Eq. 8 (RPLE only);
* the reward-landscape probe (``telemetry_landscape_every`` > 0, every self-training selector):
  Eq. 8's gain (without its stability term) on a 0.05 grid of (τ_fg, τ_bg) per sample —
  ``tele_land_tau_fg_*`` / ``tele_land_tau_bg_*`` the quantiles of its argmax, ``tele_land_fg_at_min``
  the share of samples whose argmax is the lowest τ_fg, ``tele_oracle_tau_fg_*`` the τ_fg whose
  foreground ``{q ≥ τ_fg}`` has the highest IoU with the hidden mask, and ``tele_land_fg_iou_*`` the
  pseudo-foreground's IoU with the hidden mask under the chosen thresholds (``chosen``), the gain's
  argmax (``argmax``), the static default (``static``) and the oracle τ_fg (``oracle``): whether
  following the reward would make better pseudo-labels.

Pixels where the weak view was padded are excluded. Under DDP the sums are gathered.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data.augment import IGNORE_INDEX as IGNORE  # the one ignore index
from ..data.dataset import HiddenMasks
from ..engine.method import Hook, StepOutput
from ..utils.distributed import DistInfo, all_gather_objects
from ..utils.masks import masks_iou
from . import rple as R


def _iou(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> float:
    """IoU of a prediction with the hidden mask's foreground, on the valid pixels."""
    return float(masks_iou(pred & valid, ((gt == 1) & valid)[None])[0])


@dataclass
class Visit:
    """What one self-training step computed for its unlabeled samples (CPU tensors, view frame)."""

    sample_ids: list[int]
    geometries: list[Any]
    prior: torch.Tensor | None  # (B, H, W) stored prior P† where the sample has one
    has_prior: torch.Tensor  # (B,) bool
    p_w: torch.Tensor  # (B, H, W) weak prediction
    q: torch.Tensor  # (B, H, W) soft target (the calibrated prior P̃ under SPM)
    labels: torch.Tensor  # (B, H, W) pseudo-labels, 255 = ignored
    thr: torch.Tensor  # (B, 2) (τ_fg, τ_bg)
    terms: dict[str, torch.Tensor] = field(default_factory=dict)  # RPLE reward terms (Eq. 8)


class Telemetry:
    def __init__(self, hidden: HiddenMasks, probe: R.RPLEConfig | None = None):
        self._hidden = hidden
        self.probe_cfg = probe  # the reward-landscape probe's RPLE settings (band, λ, terms); None = off
        self.grid = R.threshold_grid(probe) if probe is not None else None
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.lists: dict[str, list[float]] = defaultdict(list)

    def add(self, visit: Visit) -> None:
        s = self.sums
        for j, (sid, geo) in enumerate(zip(visit.sample_ids, visit.geometries)):
            gt = self._hidden.get(sid, geo).long()
            valid = gt != IGNORE
            s["samples"] += 1
            s["weak_iou"] += _iou(visit.p_w[j] >= 0.5, gt, valid)
            s["target_iou"] += _iou(visit.q[j] >= 0.5, gt, valid)
            if visit.prior is not None and bool(visit.has_prior[j]):
                s["prior_n"] += 1
                s["prior_iou"] += _iou(visit.prior[j] >= 0.5, gt, valid)
            lab = visit.labels[j]
            sel = (lab != IGNORE) & valid
            s["valid_px"] += valid.sum().item()
            s["selected_px"] += sel.sum().item()
            s["correct_px"] += (lab[sel] == gt[sel]).sum().item()
            s["pseudo_fg_px"] += ((lab == 1) & valid).sum().item()
            s["true_fg_px"] += ((gt == 1) & valid).sum().item()
            s["hit_fg_px"] += ((lab == 1) & (gt == 1)).sum().item()
        for i, name in enumerate(("tau_fg", "tau_bg")):
            self.lists[name] += visit.thr[:, i].tolist()
        for k, v in visit.terms.items():
            self.lists[f"reward_{k}"] += v.tolist()

    def add_landscape(self, visit: Visit) -> None:
        """The reward-landscape probe on one visit (see the module docstring); hidden masks, never the loss."""
        cfg, grid = self.probe_cfg, self.grid
        assert cfg is not None and grid is not None, "Telemetry(probe=...) first"
        g = R.landscape(visit.p_w, visit.q, cfg, grid)  # (B, K)
        best = grid[g.argmax(1)]  # (B, 2)
        fg_levels = torch.unique(grid[:, 0])
        default = torch.tensor(cfg.init_thresholds).expand_as(visit.thr)
        lab_best = R.pseudo_label(visit.q, best, cfg.band, cfg.band_regions)
        lab_static = R.pseudo_label(visit.q, default, cfg.band, cfg.band_regions)
        for j, (sid, geo) in enumerate(zip(visit.sample_ids, visit.geometries)):
            gt = self._hidden.get(sid, geo).long()
            valid = gt != IGNORE
            ious = [_iou(visit.q[j] >= t, gt, valid) for t in fg_levels.tolist()]
            k = max(range(len(ious)), key=ious.__getitem__)
            self.lists["land_tau_fg"].append(float(best[j, 0]))
            self.lists["land_tau_bg"].append(float(best[j, 1]))
            self.lists["oracle_tau_fg"].append(float(fg_levels[k]))
            self.sums["land_n"] += 1
            self.sums["land_fg_at_min"] += float(best[j, 0] <= fg_levels[0] + 1e-6)
            self.sums["land_fg_iou_chosen"] += _iou(visit.labels[j] == 1, gt, valid)
            self.sums["land_fg_iou_argmax"] += _iou(lab_best[j] == 1, gt, valid)
            self.sums["land_fg_iou_static"] += _iou(lab_static[j] == 1, gt, valid)
            self.sums["land_fg_iou_oracle"] += ious[k]

    def summary(self, info: DistInfo | None = None) -> dict[str, float]:
        sums, lists = dict(self.sums), {k: list(v) for k, v in self.lists.items()}
        if info is not None and info.enabled:
            parts = all_gather_objects((sums, lists), info)
            sums, lists = defaultdict(float), defaultdict(list)
            for ps, pl in parts:
                for k, v in ps.items():
                    sums[k] += v
                for k, v in pl.items():
                    lists[k] += v
        n = sums.get("samples", 0)
        if not n and not sums.get("land_n"):
            return {}
        out: dict[str, float] = {}
        if n:
            out.update(
                {
                    "tele_samples": n,
                    "tele_weak_iou": sums["weak_iou"] / n,
                    "tele_target_iou": sums["target_iou"] / n,
                    "tele_sel_cov": sums["selected_px"] / max(sums["valid_px"], 1),
                    "tele_ignored": 1 - sums["selected_px"] / max(sums["valid_px"], 1),
                    "tele_sel_acc": sums["correct_px"] / max(sums["selected_px"], 1),
                    "tele_fg_precision": sums["hit_fg_px"] / max(sums["pseudo_fg_px"], 1),
                    "tele_fg_recall": sums["hit_fg_px"] / max(sums["true_fg_px"], 1),
                }
            )
        if sums.get("prior_n"):
            out["tele_prior_iou"] = sums["prior_iou"] / sums["prior_n"]
        if sums.get("land_n"):
            m = sums["land_n"]
            out["tele_land_n"] = m
            out["tele_land_fg_at_min"] = sums["land_fg_at_min"] / m
            for name in ("chosen", "argmax", "static", "oracle"):
                out[f"tele_land_fg_iou_{name}"] = sums[f"land_fg_iou_{name}"] / m
        for k, v in lists.items():
            t = torch.tensor(v, dtype=torch.float64)
            q = torch.quantile(t, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)).tolist()
            out.update(
                {f"tele_{k}_mean": float(t.mean()), f"tele_{k}_p10": q[0], f"tele_{k}_p50": q[1], f"tele_{k}_p90": q[2]}
            )
        return out

    def values(self, key: str) -> list[float]:
        return list(self.lists.get(key, []))


class TelemetryHook(Hook):
    """Adds every ``telemetry_every``-th visit after the update; logs a summary at each epoch end, or
    every ``telemetry_log_every`` steps (the Fig. 9 curves), with τ histograms in TensorBoard."""

    def __init__(self, trainer):
        from ..data.dataset import HiddenMasks

        self.every = trainer.cfg.telemetry_every
        self.log_every = trainer.cfg.telemetry_log_every
        self.land_every = trainer.cfg.telemetry_landscape_every
        probe = None
        if self.land_every > 0:
            probe = trainer.method.probe_config()
        self.tele = Telemetry(HiddenMasks(trainer.dataset), probe)

    def after_step(self, trainer, out: StepOutput) -> None:
        # trainer.state.step is still the index of the step just taken
        if out.visit is not None and self.every > 0 and trainer.state.step % self.every == 0:
            self.tele.add(out.visit)  # hidden masks: outside the loss, after the update
        if out.visit is not None and self.land_every > 0 and trainer.state.step % self.land_every == 0:
            self.tele.add_landscape(out.visit)

    def after_interval(self, trainer, epoch_end: bool) -> None:
        step = trainer.state.step
        due = epoch_end if self.log_every <= 0 else (step % self.log_every == 0 or step >= trainer.total)
        if not due:
            return
        summ = self.tele.summary(trainer.info)
        if summ:
            trainer.log({"step": step, "epoch": trainer.state.epoch, "kind": "telemetry", **summ})
            if trainer.tb is not None:
                for k in ("tau_fg", "tau_bg"):
                    if self.tele.values(k):
                        trainer.tb.add_histogram(f"tele_{k}", torch.tensor(self.tele.values(k)), step)
        self.tele.reset()
