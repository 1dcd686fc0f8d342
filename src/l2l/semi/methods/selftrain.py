"""Weak-to-strong self-training (docs/spec.md §2, §3, §5, §7): the base class of three method families.

The families are classes of their own, each registered under its presets' names
(:data:`l2l.registry.METHODS`): :class:`~l2l.semi.methods.fixmatch.FixMatch` (no prior),
:class:`~l2l.semi.methods.prior_fusion.PriorFusion` (prior fused linearly; static, agreement or
CATM selection) and :class:`~l2l.semi.methods.l2l.L2L` (SPM calibration; RPLE or a static
threshold). The step below is shared; each stage is a method of its own
(:meth:`SelfTrainingMethod.weak_pass`, :meth:`~SelfTrainingMethod.soft_target`,
:meth:`~SelfTrainingMethod.update_bank`, :meth:`~SelfTrainingMethod.thresholds`,
:meth:`~SelfTrainingMethod.strong_pass`).

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
   view conditioned on the *updated* ``G_i``; ``L = L_s + λ_u L_u`` with ``L_u`` = masked CE (docs/spec.md §2)
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
the method computed (``p_w``, ``q``, labels, thresholds, reward terms) is returned as a
:class:`~l2l.semi.telemetry.Visit` for the telemetry hook, which compares it with the hidden
masks outside the loss.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch

from ...data.augment import StrongAugment
from ...data.dataset import LabeledBatch, UnlabeledBatch
from ...engine.method import DataContext, Hook, MethodData, SetupContext, StepContext, StepOutput, unwrap
from ...errors import MissingFileError, UsageError
from ...models.object_choice import choice_loss_per_sample
from ...utils.distributed import all_gather_objects
from ...utils.seeding import mix_seed
from .. import rple as R
from .. import selection
from ..bank import GuidanceBank
from ..config import SemiConfig
from ..data import self_training_data
from ..losses import unlabeled_loss
from ..spm import agreement, calibrate
from ..telemetry import TelemetryHook, Visit
from .supervised import SupervisedMethod, labeled_loss_per_sample

if TYPE_CHECKING:
    from ...schema import TrainConfig


T = TypeVar("T")


def _set(value: T | None, key: str) -> T:
    """A ``semi.*`` value that the preset resolution has filled (``None`` only before ``resolved``)."""
    if value is None:
        raise UsageError(f"semi.{key} is unset: the method's preset should have filled it")
    return value


def _gen(*key: int) -> torch.Generator:
    return torch.Generator().manual_seed(mix_seed(*key))


class SelfTrainingMethod:
    """One weak-to-strong step (module docstring); subclasses name their presets in ``PRESETS``."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    needs_unlabeled = True
    model = "segmenter"

    def __init__(self, name: str, cfg: SemiConfig, data_size: int | None = None, sup_dice: float = 0.0):
        if name not in self.PRESETS:
            raise UsageError(f"{type(self).__name__} has no preset {name!r}; its presets: {sorted(self.PRESETS)}")
        self.name = name
        self.sup_dice = sup_dice  # TrainConfig.sup_dice: the Dice term of L_s
        self.cfg = cfg.resolved(self.PRESETS[name])
        self.needs_priors = self.cfg.uses_prior
        # FixMatch reads no prior anywhere: on a SESM segmenter ("Baseline (w/o MLLM)") its labeled samples
        # get no prior guidance either, and its bank holds its own predictions
        self.priors_path = self.cfg.priors if self.cfg.reads_priors else None
        self.unlabeled_batch_size = self.cfg.unlabeled_batch_size
        self.strong = StrongAugment(self.cfg.strong)
        self.bank: GuidanceBank | None = None
        # the band's width is a length in pixels at `band_at` [paper: 3 px at 480²], scaled to the data size
        self.band_px = self._band_pixels(data_size)
        if self.cfg.rple.band_regions != R.RPLEConfig.band_regions:
            raise UsageError("semi.rple.band_regions is set from semi.band_regions: set that key instead")
        self.rple: R.RPLE | None = (
            R.RPLE(replace(self.cfg.rple, band=self.band_px, band_regions=self.cfg.band_regions))
            if self.cfg.selector == "rple"
            else None
        )
        self.catm = (
            selection.ClassThresholds(*self.cfg.catm_range, momentum=self.cfg.catm_momentum)
            if self.cfg.selector == "catm"
            else None
        )
        self.row: dict[int, int] = {}
        self.prev_thr: torch.Tensor | None = None
        # RPLE transitions waiting for their s_{t+1}: next_state=batch: the last mini-batch (s, a, r);
        # next_state=sample: by table row, each sample's last visit
        self.pending: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.pending_rows: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def from_config(cls, cfg: "TrainConfig", name: str) -> "SelfTrainingMethod":
        return cls(name, cfg.semi, cfg.data.size, cfg.sup_dice)

    def _band_pixels(self, data_size: int | None) -> int:
        """The band's half-width r in pixels at the training size, from its width ``w = band · size /
        band_at``: ``r = ceil(w / 2)``, none below half a pixel (a symmetric band is 2r wide: 3 px at
        480² → r = 2, 4 px, the nearest symmetric band not narrower than the paper's; 96² → w = 0.6,
        r = 1; 32² → w = 0.2, none) [ours]."""
        band = _set(self.cfg.band, "band")
        width = band if (data_size is None or not self.cfg.band_at) else band * data_size / self.cfg.band_at
        width = round(width, 6)
        return 0 if width < 0.5 else math.ceil(width / 2)

    # ------------------------------------------------------------------ lifecycle
    def settings(self) -> dict[str, Any]:
        return {
            "method": self.name,
            **{k: v for k, v in asdict(self.cfg).items()},
            "band_pixels": self.band_px,
            "sup_dice": self.sup_dice,
        }

    def hooks(self, trainer) -> list[Hook]:
        return [TelemetryHook(trainer)]

    def probe_config(self) -> R.RPLEConfig:
        """The RPLE settings Eq. 8 would use with this method's band (the telemetry's reward-landscape probe)."""
        return (
            self.rple.cfg
            if self.rple is not None
            else replace(self.cfg.rple, band=self.band_px, band_regions=self.cfg.band_regions)
        )

    def datasets(self, ctx: DataContext) -> MethodData:
        """The prior store, the labeled samples and the unlabeled ones with priors and EDA (:mod:`l2l.semi.data`)."""
        return self_training_data(self, ctx)

    def setup(self, ctx: SetupContext) -> None:
        """Create the per-sample state: bank (rank 0 initialises it from the priors) and the threshold table."""
        if self._band_pixels(ctx.data_size) != self.band_px:
            raise UsageError(f"{self.name}: built for another data size than {ctx.data_size}")
        ids, info = list(ctx.unlabeled_ids), ctx.info
        self.row = {int(s): r for r, s in enumerate(ids)}
        self.prev_thr = torch.tensor(self.cfg.rple.init_thresholds).repeat(len(ids), 1)
        if self.cfg.bank and unwrap(ctx.model).uses_guidance:
            root = Path(ctx.run_dir) / "bank"
            size = self.cfg.bank_size or max(4, ctx.data_size // 4)
            if info.is_main:
                if ctx.fresh and root.exists():
                    import shutil

                    shutil.rmtree(root)
                bank = GuidanceBank(root, ids, size)
                if self.cfg.uses_prior and ctx.prior_store is not None:
                    bank.initialise(ctx.prior_store.get)
                del bank
            if info.enabled:
                torch.distributed.barrier()
            self.bank = GuidanceBank(root)

    def flush(self) -> None:
        if self.bank is not None:
            self.bank.flush()

    def state_dict(self) -> dict[str, Any]:
        assert self.prev_thr is not None, "setup() first"
        d: dict[str, Any] = {"prev_thr": self.prev_thr.clone()}
        if self.catm is not None:
            d["catm"] = self.catm.state_dict()
        if self.rple is not None:
            d["rple"] = {k: v.clone() for k, v in self.rple.state_dict().items()}
            d["opt_actor"] = self.rple.opt_actor.state_dict()
            d["opt_critic"] = self.rple.opt_critic.state_dict()
            d["buffer"] = self.rple.buffer.state_dict()
            d["pending"] = list(self.pending) if self.pending is not None else None
            rows = sorted(self.pending_rows)
            d["pending_rows"] = {
                "rows": torch.tensor(rows, dtype=torch.long),
                **{
                    k: torch.stack([self.pending_rows[r][i] for r in rows]) if rows else torch.zeros(0)
                    for i, k in enumerate(("s", "a", "r"))
                },
            }
        return d

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.prev_thr = d["prev_thr"].clone()
        if self.catm is not None:
            self.catm.load_state_dict(d.get("catm", {}))
        if self.rple is not None:
            fresh = {k: v for k, v in self.rple.state_dict().items() if k in ("gain_ms", "gain_n")}
            self.rple.load_state_dict({**fresh, **d["rple"]})  # a checkpoint from before the reward scale
            self.rple.opt_actor.load_state_dict(d["opt_actor"])
            self.rple.opt_critic.load_state_dict(d["opt_critic"])
            self.rple.buffer.load_state_dict(d["buffer"])
            self.pending = tuple(d["pending"]) if d["pending"] is not None else None  # type: ignore[assignment]
            pr = d.get("pending_rows")
            self.pending_rows = (
                {int(r): (pr["s"][i], pr["a"][i], pr["r"][i]) for i, r in enumerate(pr["rows"].tolist())}
                if pr is not None
                else {}
            )

    def save_files(self, folder: Path) -> None:
        if self.bank is not None:
            self.bank.save_to(Path(folder) / "bank")

    def load_files(self, folder: Path) -> None:
        if self.bank is not None:
            snap = Path(folder) / "bank"
            if not snap.exists():
                raise MissingFileError(f"checkpoint {folder} has no guidance-bank snapshot; cannot resume {self.name}")
            self.bank.load_from(snap)

    # ------------------------------------------------------------------ one step
    def loss(self, net, lab: LabeledBatch, unl: UnlabeledBatch, ctx: StepContext) -> StepOutput:
        cfg, dev = self.cfg, ctx.device
        if ctx.step < cfg.warmup_steps:  # supervised warm-up: no pseudo-labels from an untrained model
            out = SupervisedMethod(dice=self.sup_dice).loss(net, lab, None, ctx)
            return StepOutput(out.loss, {**out.logs, "warmup": 1.0})
        b_u = unl.images.shape[0]
        prior = unl.priors.to(dev)[:, 0].float() if (cfg.uses_prior and unl.priors is not None) else None
        has_prior = unl.has_prior.to(dev) if prior is not None else torch.zeros(b_u, dtype=torch.bool, device=dev)
        p_w, old = self.weak_pass(net, unl, dev)  # 1
        q, a = self.soft_target(p_w, prior, has_prior)  # 2
        g_s, has_s = self.update_bank(unl, q, old, has_prior, dev)  # 3
        thr, keep, logs, terms = self.thresholds(q, p_w, a, prior, has_prior, unl.sample_ids, ctx)  # 4
        labels = R.pseudo_label(q, thr, self.band_px, self.cfg.band_regions)
        labels[~keep] = R.IGNORE
        loss, l_s, l_u = self.strong_pass(net, lab, unl, labels, g_s, has_s, prior, has_prior, ctx)  # 5
        sel = (labels != R.IGNORE).float()
        logs.update(
            loss_sup=float(l_s.detach()),
            loss_unsup=float(l_u.detach()),
            selected=float(sel.mean()),
            tau_fg=float(thr[:, 0].mean()),
            tau_bg=float(thr[:, 1].mean()),
        )
        visit = Visit(
            list(unl.sample_ids),
            list(unl.geometries),
            prior.detach().cpu() if prior is not None else None,
            has_prior.cpu(),
            p_w.detach().cpu(),
            q.detach().cpu(),
            labels.cpu(),
            thr.detach().cpu(),
            {k: v.detach().cpu() for k, v in terms.items()},
        )
        return StepOutput(loss, logs, visit)

    def weak_pass(self, net, unl: UnlabeledBatch, dev: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """1. ``p_w = f(u_w, t_w, g_w)`` without gradient; ``g_w`` = the bank ``G_i`` in the weak view's frame
        (SESM models). Returns ``p_w`` and the bank's rows before the update."""
        model = unwrap(net)
        g_w = has_w = old = None
        if model.uses_guidance and self.bank is not None:
            old = self.bank.get(unl.sample_ids)
            has_w = self.bank.has(unl.sample_ids)
            g_w = self.bank.to_view(old, unl.geometries).to(dev)
        with torch.no_grad():
            logits = model(
                unl.images.to(dev, non_blocking=True),
                unl.texts,
                g_w,
                has_w,
                guidance_dropout=self.cfg.weak_prior_dropout,
            )
        return logits.float().softmax(1)[:, 1], old

    def soft_target(
        self, p_w: torch.Tensor, prior: torch.Tensor | None, has_prior: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """2. The soft target ``q`` of the source (weak / linear / spm: Eqs. 4–6) and the agreement ``a``."""
        cfg = self.cfg
        a = torch.ones(p_w.shape[0], device=p_w.device)
        if cfg.source == "weak" or prior is None:
            return p_w, a
        if cfg.source == "linear":
            q = torch.where(has_prior.view(-1, 1, 1), cfg.fusion_weight * prior + (1 - cfg.fusion_weight) * p_w, p_w)
            return q, torch.where(has_prior, agreement(p_w, prior), a)
        cal, _, a_spm = calibrate(p_w, prior, cfg.spm)
        return torch.where(has_prior.view(-1, 1, 1), cal, p_w), torch.where(has_prior, a_spm, a)

    def update_bank(
        self, unl: UnlabeledBatch, q: torch.Tensor, old: torch.Tensor | None, has_prior: torch.Tensor, dev: str
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """3. ``G_i ← q`` (in the bank's frame); returns the updated guidance in the view's frame."""
        if old is None or self.bank is None:
            return None, None
        ids = unl.sample_ids
        write = torch.ones(len(ids), dtype=torch.bool) if self.cfg.source == "weak" else has_prior.cpu()
        new = self.bank.from_view(q[:, None].cpu(), unl.geometries, old)
        idx = write.nonzero(as_tuple=True)[0].tolist()
        if idx:
            self.bank.put([ids[i] for i in idx], new[idx])
        return self.bank.to_view(self.bank.get(ids), unl.geometries).to(dev), self.bank.has(ids)

    def thresholds(self, q, p_w, a, prior, has_prior, ids, ctx: StepContext):
        """4. Per-sample (τ_fg, τ_bg) of the selector and which samples keep their pseudo-labels."""
        cfg, dev, b_u = self.cfg, ctx.device, q.shape[0]
        assert self.prev_thr is not None, "setup() first"
        logs: dict[str, float] = {}
        terms: dict[str, torch.Tensor] = {}
        keep = torch.ones(b_u, dtype=torch.bool, device=dev)
        rows = torch.tensor([self.row[int(s)] for s in ids])
        prev = self.prev_thr[rows].to(dev)
        if cfg.selector == "static":
            thr = selection.static_thresholds(b_u, _set(cfg.tau_fg, "tau_fg"), _set(cfg.tau_bg, "tau_bg"), dev)
        elif cfg.selector == "catm":
            assert self.catm is not None
            self.catm.update(sum(all_gather_objects(self.catm.batch_stats(q), ctx.info)))
            thr = self.catm.thresholds(b_u, dev)
        elif cfg.selector == "catm-sample":
            thr = selection.catm_thresholds(q, *cfg.catm_range)
        elif cfg.selector == "agreement":
            thr = selection.static_thresholds(b_u, _set(cfg.tau_fg, "tau_fg"), _set(cfg.tau_bg, "tau_bg"), dev)
            if prior is not None:
                keep = selection.agreement_keep(p_w, prior, has_prior, cfg.agreement_min, cfg.confidence_min)
            else:
                keep = torch.zeros(b_u, dtype=torch.bool, device=dev)
        else:
            t0 = time.perf_counter()
            thr, terms, upd = self._rple_step(q, p_w, a, prev, rows, ctx)
            logs.update(upd)
            logs["rple_seconds"] = time.perf_counter() - t0
        if cfg.selector != "rple":  # RPLE gathers its table across ranks itself
            self.prev_thr[rows] = thr.cpu()
        return thr, keep, logs, terms

    def strong_pass(
        self, net, lab: LabeledBatch, unl: UnlabeledBatch, labels, g_s, has_s, prior, has_prior, ctx: StepContext
    ):
        """5. One pass with gradient over [labeled; strong views]; ``L = L_s + λ_u L_u`` (docs/spec.md §2, Eq. 22)."""
        cfg, dev = self.cfg, ctx.device
        b_l, b_u = lab.images.shape[0], unl.images.shape[0]
        imgs_s = self.strong(
            unl.images.to(dev, non_blocking=True), generator=_gen(ctx.seed, ctx.step, ctx.info.rank, 1)
        )
        images = torch.cat([lab.images.to(dev, non_blocking=True), imgs_s])
        texts = list(lab.texts) + list(unl.texts_strong)
        g = has = None
        if unwrap(net).uses_guidance:
            size = images.shape[-2:]
            g_l = lab.priors.to(dev).float() if lab.priors is not None else torch.zeros(b_l, 1, *size, device=dev)
            g_u = (
                g_s
                if g_s is not None
                else (prior[:, None] if prior is not None else torch.zeros(b_u, 1, *size, device=dev))
            )
            h_u = (
                has_s
                if has_s is not None
                else (has_prior.cpu() if prior is not None else torch.zeros(b_u, dtype=torch.bool))
            )
            if cfg.strong_guidance == "none":
                h_u = torch.zeros(b_u, dtype=torch.bool)
            g = torch.cat([g_l, g_u])
            has = torch.cat([lab.has_prior.cpu(), h_u.cpu()])
        logits = net(images, texts, g, has).float()
        l_s = labeled_loss_per_sample(logits[:b_l], lab.masks.to(dev), self.sup_dice).mean()
        choice = choice_loss_per_sample(unwrap(net), lab.masks.to(dev), rows=b_l)  # model.objects.choice_loss
        if choice is not None:
            l_s = l_s + choice.mean()
        l_u = unlabeled_loss(logits[b_l:], labels, _set(cfg.loss, "loss"), cfg.dice_weight).mean()
        return l_s + cfg.lambda_u * l_u, l_s, l_u

    # ------------------------------------------------------------------ RPLE (Eqs. 7–14)
    def _rple_step(self, q, p_w, a, prev, rows, ctx):
        assert self.rple is not None and self.prev_thr is not None
        rcfg = self.rple.cfg
        s = R.state(
            q, prev, a, self.band_px, rcfg.band_regions
        ).cpu()  # Eq. 7 under the sample's previous thresholds (maps stay on device)
        thr = self.rple.act(s, explore=True, generator=_gen(ctx.seed, ctx.step, ctx.info.rank, 2)).to(q.device)
        g, terms = R.gain(p_w, q, thr, prev, rcfg)  # Eq. 8
        # every rank holds the same replay buffer and threshold table, so the policies stay identical
        local = (rows, s, thr.cpu(), g.cpu())
        parts = all_gather_objects(local, ctx.info)
        rows_all = torch.cat([p[0] for p in parts])
        s_all, a_all, g_all = (torch.cat([p[i] for p in parts]) for i in (1, 2, 3))
        r_all = self.rple.scale(g_all)  # Eq. 12 (the running RMS sees every rank's gains)
        if rcfg.next_state == "batch":  # s_{t+1}: the state at the same position of the next mini-batch
            if self.pending is not None:
                ps, pa, pr = self.pending
                n = min(ps.shape[0], s_all.shape[0])
                self.rple.buffer.add(ps[:n], pa[:n], pr[:n], s_all[:n])
            self.pending = (s_all, a_all, r_all)
        else:  # s_{t+1}: the same sample's state at its next visit
            done = [
                (i, self.pending_rows[int(row)])
                for i, row in enumerate(rows_all.tolist())
                if int(row) in self.pending_rows
            ]
            if done:
                self.rple.buffer.add(
                    torch.stack([t[0] for _, t in done]),
                    torch.stack([t[1] for _, t in done]),
                    torch.stack([t[2] for _, t in done]),
                    s_all[[i for i, _ in done]],
                )
            for i, row in enumerate(rows_all.tolist()):
                self.pending_rows[int(row)] = (s_all[i], a_all[i], r_all[i])
        self.prev_thr[rows_all] = a_all
        upd = self.rple.update(generator=_gen(ctx.seed, ctx.step, 3))  # one update per mini-batch [paper]
        upd["rple_reward"] = float(r_all.mean())
        upd["rple_gain"] = float(g_all.mean())
        upd["rple_buffer"] = float(self.rple.buffer.n)
        return thr, terms, upd
