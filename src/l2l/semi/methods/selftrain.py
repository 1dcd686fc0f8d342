"""Weak-to-strong self-training methods (spec §2, §3, §5, §7): fixmatch … l2l, one strategy class.

Per step, with a labeled batch (x, t, y) and an unlabeled batch (u_w, t_w, t_s, P†):

1. weak pass (no gradient): ``p_w = f(u_w, t_w, g_w)``, ``g_w`` = the guidance bank ``G_i`` in
   the weak view's frame when the model takes guidance (SESM), else none;
2. soft target ``q`` from the **source**: ``weak`` (``q = p_w``), ``linear`` (``q = w P† + (1 − w) p_w``,
   the paper's "Baseline w/ MLLM", w = 0.5, Table 14 sweeps it) or ``spm`` (``q = P̃``, Eqs. 4–6);
   samples without a stored prior use ``q = p_w``;
3. bank update ``G_i ← q`` (mapped back to the bank frame) when the bank is in use;
4. thresholds from the **selector** — ``static``, ``catm``, ``agreement`` (:mod:`l2l.semi.selection`)
   or ``rple`` (Eqs. 7–14: state, action with exploration, reward, replay, one DDPG update per
   mini-batch) — and the pseudo-label of :func:`l2l.semi.rple.pseudo_label`;
5. one forward pass with gradient over [labeled; strong view ``u_s = A_s(u_w)``, ``t_s``], the strong
   view conditioned on the *updated* ``G_i``; ``L = L_s + λ_u L_u`` with ``L_u`` = masked CE (spec §2)
   or CE + Dice (Eq. 22).

Method presets (``semi.*`` fields left at ``null`` take the method's value; every field can be set
to build the ablations of Tables 3–7, 14, 15 and Fig. 5):

================  ========  =========  ============  ====  =======
method            source    selector   (τ_fg, τ_bg)  band  loss
================  ========  =========  ============  ====  =======
fixmatch          weak      static     0.95, 0.05    0     ce
prior-fusion      linear    static     0.95, 0.05    0     ce
agreement-filter  linear    agreement  0.95, 0.05    0     ce
catm              linear    catm       adaptive      0     ce
static-threshold  spm       static     0.70, 0.20    3     ce_dice
l2l               spm       rple       learned       3     ce_dice
================  ========  =========  ============  ====  =======

The ground truth of unlabeled samples never reaches this class: batches carry no mask. What
the method computed (``p_w``, ``q``, labels, thresholds, reward terms) is returned as a *visit*
record for the trainer's telemetry, which compares it with the hidden masks outside the loss.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ...data.augment import StrongAugConfig, StrongAugment
from ...data.dataset import LabeledBatch, UnlabeledBatch
from ...engine.distributed import all_gather_objects
from .. import rple as R
from .. import selection
from ..bank import GuidanceBank
from ..losses import unlabeled_loss
from ..spm import SPMConfig, agreement, calibrate
from .supervised import SupervisedMethod, weighted_ce_per_sample

SOURCES = ("weak", "linear", "spm")
SELECTORS = ("static", "catm", "agreement", "rple")

PRESETS: dict[str, dict[str, Any]] = {
    "fixmatch": dict(source="weak", selector="static", tau_fg=0.95, tau_bg=0.05, band=0, loss="ce"),
    "prior-fusion": dict(source="linear", selector="static", tau_fg=0.95, tau_bg=0.05, band=0, loss="ce"),
    "agreement-filter": dict(source="linear", selector="agreement", tau_fg=0.95, tau_bg=0.05, band=0, loss="ce"),
    "catm": dict(source="linear", selector="catm", tau_fg=0.95, tau_bg=0.05, band=0, loss="ce"),
    "static-threshold": dict(source="spm", selector="static", tau_fg=0.70, tau_bg=0.20, band=3, loss="ce_dice"),
    "l2l": dict(source="spm", selector="rple", tau_fg=0.70, tau_bg=0.20, band=3, loss="ce_dice"),
}


@dataclass
class SemiConfig:
    """Semi-supervised settings; ``None`` = the method's preset (table in the module docstring)."""

    priors: str | None = None  # prior store folder (l2l priors generate); needed by every source but `weak`
    lambda_u: float = 1.0  # [ours]
    unlabeled_batch_size: int | None = None  # per process; None = batch_size
    source: str | None = None  # weak | linear | spm
    selector: str | None = None  # static | catm | agreement | rple
    tau_fg: float | None = None  # static thresholds (and RPLE's reference in Eq. 8 via rple.init_thresholds)
    tau_bg: float | None = None
    band: int | None = None  # ignored band around the pseudo-foreground boundary, pixels at `band_at`
    band_at: int | None = 480  # resolution the band is given at [paper: 3 px at 480²]; scaled to data.size
    loss: str | None = None  # ce | ce_dice (Eq. 22)
    dice_weight: float = 0.5  # λ_dice [ours]
    fusion_weight: float = 0.5  # linear source: weight of the prior (Table 14 sweeps 0.1…0.9)
    agreement_min: float = 0.7  # agreement filter [paper]
    confidence_min: float = 0.6  # agreement filter: mean certainty of each source [ours]
    catm_range: tuple[float, float] = (0.60, 0.95)  # [ours]
    warmup_steps: int = 0  # labeled loss only for the first steps (unlabeled branch skipped) [ours; 0 = the spec]
    bank: bool = True  # the guidance bank conditions SESM (only when the model takes guidance)
    strong_guidance: str = "bank"  # bank: the strong pass sees the updated G_i [spec]; none: the null map [ours]
    weak_prior_dropout: bool = False  # [fix] True = the weak (teacher) pass also drops its guidance with
    #                                    sesm.prior_dropout, as before issue 11 (docs/semi.md: a defect)
    bank_size: int | None = None  # side of the stored maps; None = data.size // 4 [spec: 1/4]
    spm: SPMConfig = field(default_factory=SPMConfig)
    rple: R.RPLEConfig = field(default_factory=R.RPLEConfig)
    strong: StrongAugConfig = field(default_factory=StrongAugConfig)

    def resolved(self, method: str) -> "SemiConfig":
        if method not in PRESETS:
            raise ValueError(f"unknown semi-supervised method {method!r}; available: {sorted(PRESETS)}")
        fill = {k: v for k, v in PRESETS[method].items() if getattr(self, k) is None}
        out = replace(self, **fill)
        if out.source not in SOURCES:
            raise ValueError(f"semi.source must be one of {SOURCES}, got {out.source!r}")
        if out.selector not in SELECTORS:
            raise ValueError(f"semi.selector must be one of {SELECTORS}, got {out.selector!r}")
        if out.loss not in ("ce", "ce_dice"):
            raise ValueError(f"semi.loss must be ce or ce_dice, got {out.loss!r}")
        if out.strong_guidance not in ("bank", "none"):
            raise ValueError(f"semi.strong_guidance must be bank or none, got {out.strong_guidance!r}")
        if not 0 <= out.fusion_weight <= 1:
            raise ValueError(f"semi.fusion_weight must be in [0, 1], got {out.fusion_weight}")
        selection.static_thresholds(1, out.tau_fg, out.tau_bg)  # validates
        return out

    @property
    def uses_prior(self) -> bool:
        return self.source != "weak" or self.selector == "agreement"


@dataclass
class StepContext:
    step: int
    epoch: int
    device: str
    seed: int
    info: Any  # DistInfo


def _gen(*key: int) -> torch.Generator:
    h = 0
    for k in key:
        h = (h * 1_000_003 + int(k)) % (2**63 - 1)
    return torch.Generator().manual_seed(h)


def unwrap(net):
    net = getattr(net, "_orig_mod", net)
    return getattr(net, "module", net)


class SelfTrainingMethod:
    needs_unlabeled = True

    def __init__(self, name: str, cfg: SemiConfig):
        self.name = name
        self.cfg = cfg.resolved(name)
        self.strong = StrongAugment(self.cfg.strong)
        self.bank: GuidanceBank | None = None
        self.rple: R.RPLE | None = R.RPLE(self.cfg.rple) if self.cfg.selector == "rple" else None
        self.row: dict[int, int] = {}
        self.prev_thr: torch.Tensor | None = None
        self.pending: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.band_px = self.cfg.band

    # ------------------------------------------------------------------ lifecycle
    def settings(self) -> dict[str, Any]:
        return {"method": self.name, **{k: v for k, v in asdict(self.cfg).items()},
                "band_pixels": getattr(self, "band_px", None)}

    def setup(self, run_dir: Path, unlabeled_ids: list[int], prior_store, model, info, data_size: int,
              fresh: bool) -> None:
        """Create the per-sample state: bank (rank 0 initialises it from the priors) and RPLE's tables."""
        # the band is a length in pixels: 3 px at 480² is 0.4 px at 64², i.e. none [ours: scale it]
        self.band_px = int(round(self.cfg.band * data_size / self.cfg.band_at)) if self.cfg.band_at else self.cfg.band
        if self.rple is not None:  # a copy: the run's config (config.yaml) keeps the value the user gave
            self.rple.cfg = replace(self.rple.cfg, band=self.band_px)
        self.row = {int(s): r for r, s in enumerate(unlabeled_ids)}
        self.prev_thr = torch.tensor(self.cfg.rple.init_thresholds).repeat(len(unlabeled_ids), 1)
        if self.cfg.bank and unwrap(model).uses_guidance:
            root = Path(run_dir) / "bank"
            size = self.cfg.bank_size or max(4, data_size // 4)
            if info.is_main:
                if fresh and root.exists():
                    import shutil
                    shutil.rmtree(root)
                bank = GuidanceBank(root, unlabeled_ids, size)
                if self.cfg.uses_prior and prior_store is not None:
                    bank.initialise(prior_store.get)
                del bank
            if info.enabled:
                torch.distributed.barrier()
            self.bank = GuidanceBank(root)

    def flush(self) -> None:
        if self.bank is not None:
            self.bank.flush()

    def state_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"prev_thr": self.prev_thr.clone()}
        if self.rple is not None:
            d["rple"] = {k: v.clone() for k, v in self.rple.state_dict().items()}
            d["opt_actor"] = self.rple.opt_actor.state_dict()
            d["opt_critic"] = self.rple.opt_critic.state_dict()
            d["buffer"] = self.rple.buffer.state_dict()
            d["pending"] = list(self.pending) if self.pending is not None else None
        return d

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.prev_thr = d["prev_thr"].clone()
        if self.rple is not None:
            self.rple.load_state_dict(d["rple"])
            self.rple.opt_actor.load_state_dict(d["opt_actor"])
            self.rple.opt_critic.load_state_dict(d["opt_critic"])
            self.rple.buffer.load_state_dict(d["buffer"])
            self.pending = tuple(d["pending"]) if d["pending"] is not None else None  # type: ignore[assignment]

    def save_files(self, folder: Path) -> None:
        if self.bank is not None:
            self.bank.save_to(Path(folder) / "bank")

    def load_files(self, folder: Path) -> None:
        if self.bank is not None:
            snap = Path(folder) / "bank"
            if not snap.exists():
                raise FileNotFoundError(f"checkpoint {folder} has no guidance-bank snapshot; cannot resume {self.name}")
            self.bank.load_from(snap)

    # ------------------------------------------------------------------ one step
    def loss(self, net, lab: LabeledBatch, unl: UnlabeledBatch, ctx: StepContext
             ) -> tuple[torch.Tensor, dict[str, float], dict[str, Any]]:
        cfg, dev, model = self.cfg, ctx.device, unwrap(net)
        if ctx.step < cfg.warmup_steps:  # supervised warm-up: no pseudo-labels from an untrained model
            l_s, logs, _ = SupervisedMethod().loss(net, lab, None, ctx)
            return l_s, {**logs, "warmup": 1.0}, None
        guide = model.uses_guidance
        b_l, b_u = lab.images.shape[0], unl.images.shape[0]
        imgs_w = unl.images.to(dev, non_blocking=True)
        ids = unl.sample_ids
        prior = unl.priors.to(dev)[:, 0].float() if (cfg.uses_prior and unl.priors is not None) else None
        has_prior = unl.has_prior.to(dev) if prior is not None else torch.zeros(b_u, dtype=torch.bool, device=dev)

        # 1. weak pass, conditioned on the bank
        g_w = has_w = old = None
        if guide and self.bank is not None:
            old = self.bank.get(ids)
            has_w = self.bank.has(ids)
            g_w = self.bank.to_view(old, unl.geometries).to(dev)
        with torch.no_grad():
            p_w = model(imgs_w, unl.texts, g_w, has_w, guidance_dropout=cfg.weak_prior_dropout).float().softmax(1)[:, 1]

        # 2. soft target
        a = torch.ones(b_u, device=dev)
        if cfg.source == "weak" or prior is None:
            q = p_w
        elif cfg.source == "linear":
            q = torch.where(has_prior.view(-1, 1, 1), cfg.fusion_weight * prior + (1 - cfg.fusion_weight) * p_w, p_w)
            a = torch.where(has_prior, agreement(p_w, prior), a)
        else:
            cal, _, a_spm = calibrate(p_w, prior, cfg.spm)
            q = torch.where(has_prior.view(-1, 1, 1), cal, p_w)
            a = torch.where(has_prior, a_spm, a)

        # 3. bank update; the strong pass sees the new G_i
        g_s = has_s = None
        if guide and self.bank is not None:
            write = torch.ones(b_u, dtype=torch.bool) if cfg.source == "weak" else has_prior.cpu()
            new = self.bank.from_view(q[:, None].cpu(), unl.geometries, old)
            idx = write.nonzero(as_tuple=True)[0].tolist()
            if idx:
                self.bank.put([ids[i] for i in idx], new[idx])
            g_s = self.bank.to_view(self.bank.get(ids), unl.geometries).to(dev)
            has_s = self.bank.has(ids)

        # 4. thresholds and pseudo-labels
        logs: dict[str, float] = {}
        terms: dict[str, torch.Tensor] = {}
        keep = torch.ones(b_u, dtype=torch.bool, device=dev)
        rows = torch.tensor([self.row[int(s)] for s in ids])
        prev = self.prev_thr[rows].to(dev)
        if cfg.selector == "static":
            thr = selection.static_thresholds(b_u, cfg.tau_fg, cfg.tau_bg, dev)
        elif cfg.selector == "catm":
            thr = selection.catm_thresholds(q, *cfg.catm_range)
        elif cfg.selector == "agreement":
            thr = selection.static_thresholds(b_u, cfg.tau_fg, cfg.tau_bg, dev)
            if prior is not None:
                keep = selection.agreement_keep(p_w, prior, has_prior, cfg.agreement_min, cfg.confidence_min)
            else:
                keep = torch.zeros(b_u, dtype=torch.bool, device=dev)
        else:
            t0 = time.perf_counter()
            thr, terms, upd = self._rple_step(q, p_w, a, prev, rows, ctx)
            logs.update(upd)
            logs["rple_seconds"] = time.perf_counter() - t0
        labels = R.pseudo_label(q, thr, self.band_px)
        labels[~keep] = R.IGNORE
        if cfg.selector != "rple":  # RPLE gathers its table across ranks itself
            self.prev_thr[rows] = thr.cpu()

        # 5. one pass with gradient over labeled + strong views
        imgs_s = self.strong(imgs_w, generator=_gen(ctx.seed, ctx.step, ctx.info.rank, 1))
        images = torch.cat([lab.images.to(dev, non_blocking=True), imgs_s])
        texts = list(lab.texts) + list(unl.texts_strong)
        g = has = None
        if guide:
            size = images.shape[-2:]
            g_l = lab.priors.to(dev).float() if lab.priors is not None else torch.zeros(b_l, 1, *size, device=dev)
            g_u = g_s if g_s is not None else (prior[:, None] if prior is not None else torch.zeros(b_u, 1, *size, device=dev))
            h_u = has_s if has_s is not None else (has_prior.cpu() if prior is not None else torch.zeros(b_u, dtype=torch.bool))
            if cfg.strong_guidance == "none":
                h_u = torch.zeros(b_u, dtype=torch.bool)
            g = torch.cat([g_l, g_u])
            has = torch.cat([lab.has_prior.cpu(), h_u.cpu()])
        logits = net(images, texts, g, has).float()
        l_s = weighted_ce_per_sample(logits[:b_l], lab.masks.to(dev)).mean()
        l_u = unlabeled_loss(logits[b_l:], labels, cfg.loss, cfg.dice_weight).mean()
        loss = l_s + cfg.lambda_u * l_u
        sel = (labels != R.IGNORE).float()
        logs.update(loss_sup=float(l_s.detach()), loss_unsup=float(l_u.detach()),
                    selected=float(sel.mean()), tau_fg=float(thr[:, 0].mean()), tau_bg=float(thr[:, 1].mean()))
        visit = {"sample_ids": list(ids), "geometries": list(unl.geometries),
                 "prior": prior.detach().cpu() if prior is not None else None, "has_prior": has_prior.cpu(),
                 "p_w": p_w.detach().cpu(), "q": q.detach().cpu(), "labels": labels.cpu(), "thr": thr.detach().cpu(),
                 "terms": {k: v.detach().cpu() for k, v in terms.items()}}
        return loss, logs, visit

    # ------------------------------------------------------------------ RPLE (Eqs. 7–14)
    def _rple_step(self, q, p_w, a, prev, rows, ctx):
        assert self.rple is not None
        rc = self.rple.cfg
        s = R.state(q, prev, a, rc.band).cpu()  # Eq. 7 under the sample's previous thresholds (maps stay on device)
        thr = self.rple.act(s, explore=True, generator=_gen(ctx.seed, ctx.step, ctx.info.rank, 2)).to(q.device)
        r, terms = R.reward(p_w, q, thr, prev, rc)  # Eqs. 8–12
        # every rank holds the same replay buffer and threshold table, so the policies stay identical
        local = (rows, s, thr.cpu(), r.cpu())
        parts = all_gather_objects(local, ctx.info)
        rows_all = torch.cat([p[0] for p in parts])
        s_all, a_all, r_all = (torch.cat([p[i] for p in parts]) for i in (1, 2, 3))
        if self.pending is not None:  # s_{t+1}: the state at the same position of the next mini-batch
            ps, pa, pr = self.pending
            n = min(ps.shape[0], s_all.shape[0])
            self.rple.buffer.add(ps[:n], pa[:n], pr[:n], s_all[:n])
        self.pending = (s_all, a_all, r_all)
        self.prev_thr[rows_all] = a_all
        upd = self.rple.update(generator=_gen(ctx.seed, ctx.step, 3))  # one update per mini-batch [paper]
        upd["rple_reward"] = float(r.mean())
        return thr, terms, upd
