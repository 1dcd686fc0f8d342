"""Semi-supervised training: losses, selection rules, the step stream, every method end to end,
the no-ground-truth-leak guarantee, exact resume of an l2l run, and a 2-process gloo l2l run."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from l2l.config import load_config
from l2l.data.refer import ReferDataset
from l2l.engine.stream import StepStream
from l2l.engine.trainer import TrainConfig, Trainer
from l2l.semi import rple as R
from l2l.semi import selection
from l2l.semi.config import SemiConfig, presets
from l2l.semi.losses import dice_on_selected, masked_ce, unlabeled_loss
from l2l.semi.rple import RPLEConfig
from l2l.semi.telemetry import Telemetry, Visit
from l2l.utils.distributed import DistInfo, ResumableBatchSampler

PRESETS = presets()

TINY = [
    "model.visual.name=conv",
    "model.visual.conv_channels=[8,16,16,32]",
    "model.text.name=tiny",
    "model.text.tiny_dim=16",
    "model.text.tiny_layers=1",
    "model.decoder_dim=16",
    "model.sesm.heads=2",
    "data.size=32",
    "data.workers=0",
    "data.eval_max_samples=8",
    "optim.lr=1e-3",
    "log_every=1",
    "batch_size=2",
    "semi.unlabeled_batch_size=3",
    "data.label_fraction=25%",
    "data.strong_text=false",
    "ckpt_every=1000",
    "data.scale_range=[0.9,1.1]",
    "device=cpu",  # bit-exactness is asserted: pinned to the CPU also on GPU machines
]


@pytest.fixture(scope="module")
def priors_dir(synthref_dir, tmp_path_factory):
    from l2l.priors.base import PriorInput
    from l2l.priors.simulated import SimulatedProvider
    from l2l.priors.store import PriorStore

    ds = ReferDataset.synthref(synthref_dir)
    out = tmp_path_factory.mktemp("priors")
    store = PriorStore(out)
    ids = [r.sample_id for r in ds.samples("train")]
    store.generate(
        SimulatedProvider(ds),
        ids,
        lambda s: PriorInput(s, ds.load_image(ds.sample(s).image_id), ds.sample(s).sentence),
        32,
        0,
        1,
        dataset={"name": ds.name, "fingerprint": ds.fingerprint()},
    )
    return out


def _cfg(root, priors, method, *extra):
    sesm = "model.sesm.enabled=true" if method in ("l2l", "static-threshold") else "model.sesm.enabled=false"
    return load_config(
        TrainConfig, None, [f"data.root={root}", f"semi.priors={priors}", f"method={method}", sesm, *TINY, *extra]
    )


# ----------------------------------------------------------------------------- losses and selection
def test_masked_ce_and_dice_by_hand():
    logits = torch.zeros(1, 2, 1, 3)
    logits[0, 1] = torch.tensor([[2.0, -1.0, 0.0]])
    labels = torch.tensor([[[1, 0, 255]]])
    ce1 = -torch.log_softmax(torch.tensor([0.0, 2.0]), 0)[1]
    ce0 = -torch.log_softmax(torch.tensor([0.0, -1.0]), 0)[0]
    assert torch.allclose(masked_ce(logits, labels), ((ce1 + ce0) / 2).view(1), atol=1e-5)
    p = torch.sigmoid(torch.tensor([2.0, -1.0]))
    dice = 1 - 2 * p[0] / (p.sum() + 1)
    assert torch.allclose(dice_on_selected(logits, labels), dice.view(1), atol=1e-5)
    # no selected foreground: Dice contributes nothing; nothing selected: loss 0
    assert dice_on_selected(logits, torch.tensor([[[0, 0, 255]]])).item() == 0
    assert unlabeled_loss(logits, torch.full((1, 1, 3), 255), "ce_dice").item() == 0
    with pytest.raises(ValueError, match="unlabeled loss"):
        unlabeled_loss(logits, labels, "focal")


def test_labeled_loss_adds_dice_when_asked():
    """L_s with sup_dice = λ: the weighted CE plus λ × the soft Dice; λ = 0 is the CE alone; the methods
    read it from the run's config (supervised and the self-training family)."""
    from l2l.semi.methods.l2l import L2L
    from l2l.semi.methods.supervised import SupervisedMethod, labeled_loss_per_sample, weighted_ce_per_sample

    torch.manual_seed(0)
    logits = torch.randn(3, 2, 6, 6)
    target = (torch.rand(3, 6, 6) > 0.8).long()
    target[0, 0, 0] = 255
    ce = weighted_ce_per_sample(logits, target)
    assert torch.equal(labeled_loss_per_sample(logits, target, 0.0), ce)
    assert torch.allclose(labeled_loss_per_sample(logits, target, 0.5), ce + 0.5 * dice_on_selected(logits, target))
    cfg = load_config(TrainConfig, None, ["sup_dice=0.7"])
    assert SupervisedMethod.from_config(cfg).dice == 0.7
    assert L2L.from_config(cfg, "l2l").sup_dice == 0.7


def test_selection_rules():
    q = torch.tensor([[[0.9, 0.9], [0.1, 0.1]], [[0.6, 0.4], [0.5, 0.5]]])
    thr = selection.catm_thresholds(q)  # catm-sample: per sample
    assert torch.allclose(thr[0], torch.tensor([0.9, 0.1]))  # mean confidence 0.9
    assert torch.allclose(thr[1], torch.tensor([0.6, 0.4]))  # 0.525 clipped to 0.6
    with pytest.raises(ValueError, match="τ_bg"):
        selection.static_thresholds(2, 0.3, 0.5)
    p_w = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]], [[0.6, 0.4]]])
    prior = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[0.6, 0.4]]])
    keep = selection.agreement_keep(p_w, prior, torch.tensor([True, True, True]))
    assert keep.tolist() == [True, False, False]  # agree+confident / disagree / not confident
    assert not selection.agreement_keep(p_w, prior, torch.tensor([False, True, True]))[0]


def test_catm_class_wise_thresholds_with_momentum_by_hand():
    """CATM: one threshold per class, a moving average of the mean confidence of the pixels assigned
    to that class, clipped; the same for every sample of a batch; resumable."""
    c = selection.ClassThresholds(0.6, 0.95, momentum=0.5)
    q = torch.tensor([[[0.9, 0.7], [0.2, 0.0]], [[0.8, 0.1], [0.3, 0.4]]])
    thr = c(q)
    # foreground pixels 0.9, 0.7, 0.8 → mean confidence 0.8; background 0.8, 1.0, 0.9, 0.7, 0.6 → 0.8
    assert torch.allclose(thr, torch.tensor([[0.8, 0.2]]).expand(2, 2))
    q2 = torch.tensor([[[0.99, 0.5], [0.45, 0.45]]])  # fg 0.99, 0.5 → 0.745; bg 0.55, 0.55 → 0.55
    thr2 = c(q2)
    assert torch.allclose(thr2, torch.tensor([[0.5 * 0.8 + 0.5 * 0.745, 1 - (0.5 * 0.8 + 0.5 * 0.55)]]), atol=1e-6)
    q3 = torch.full((1, 2, 2), 0.1)  # no foreground in the batch: its threshold keeps its value
    assert torch.allclose(c(q3)[0, 0], thr2[0, 0])
    d = c.state_dict()
    c2 = selection.ClassThresholds(0.6, 0.95, momentum=0.5)
    c2.load_state_dict(d)
    assert torch.equal(c2.thresholds(1), c.thresholds(1))
    low = selection.ClassThresholds(0.6, 0.95)
    assert torch.allclose(low(torch.tensor([[[0.55, 0.45]]])), torch.tensor([[0.6, 0.4]]))  # clipped to lo
    first = selection.ClassThresholds(0.6, 0.95)
    assert torch.allclose(first(torch.full((1, 2, 2), 0.55)), torch.tensor([[0.6, 0.05]]))  # no bg yet: hi
    two = sum([selection.ClassThresholds.batch_stats(q[:1]), selection.ClassThresholds.batch_stats(q[1:])])
    assert torch.allclose(two, selection.ClassThresholds.batch_stats(q))  # ranks' stats add up


def test_presets_resolve_and_validate():
    for name, preset in PRESETS.items():
        r = SemiConfig().resolved(name)
        assert all(getattr(r, k) == v for k, v in preset.items())
    assert SemiConfig(tau_fg=0.8).resolved("static-threshold").tau_fg == 0.8  # an explicit value wins
    assert not SemiConfig().resolved("fixmatch").uses_prior
    assert SemiConfig().resolved("l2l").uses_prior
    with pytest.raises(ValueError, match="unknown semi-supervised method"):
        SemiConfig().resolved("mean-teacher")
    with pytest.raises(ValueError, match="semi.source"):
        SemiConfig(source="oracle").resolved("l2l")


# ----------------------------------------------------------------------------- the step stream
class _Idx(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


def test_step_stream_orders():
    lab, unl = _Idx(5), _Idx(12)
    one = StepStream(lab, unl, 2, 4, DistInfo(), 7, list, list)
    # supervised: the labeled driver reproduces the resumable sampler (so earlier runs stay valid),
    # the epoch encoded as i + e·N
    sup = StepStream(unl, None, 4, 4, DistInfo(), 7, list, list)
    ref = ResumableBatchSampler(12, 4, DistInfo(), 7)
    for e in range(2):
        ref.set_epoch(e)
        for s, b in enumerate(ref):
            assert sup[e * 3 + s][0] == [i + 12 * e for i in b] and sup[e * 3 + s][1] is None
    # semi-supervised: one epoch = one pass over the unlabeled set, a new permutation each epoch
    for e in range(2):
        seen = [i for t in range(3 * e, 3 * e + 3) for i in one[t][1]]
        assert sorted(seen) == [i + 12 * e for i in range(12)]
    # the labeled set is cycled without dropping: every cycle is a permutation of the 5 samples
    seq = [i for t in range(10) for i in one[t][0]]
    for c in range(4):
        assert sorted(seq[5 * c : 5 * c + 5]) == [i + 5 * c for i in range(5)]
    # 2 ranks with batch (1, 2) see what 1 rank sees with batch (2, 4)
    r0 = StepStream(lab, unl, 1, 2, DistInfo(0, 2), 7, list, list)
    r1 = StepStream(lab, unl, 1, 2, DistInfo(1, 2), 7, list, list)
    for t in range(7):
        assert r0[t][0] + r1[t][0] == one[t][0] and r0[t][1] + r1[t][1] == one[t][1]
    with pytest.raises(ValueError, match="empty"):
        StepStream(_Idx(0), unl, 2, 4, DistInfo(), 7, list, list)


# ----------------------------------------------------------------------------- methods end to end
@pytest.mark.parametrize("method", ["fixmatch", "prior-fusion", "agreement-filter", "catm", "static-threshold", "l2l"])
def test_every_method_trains(synthref_dir, priors_dir, tmp_path, method):
    run = tmp_path / method
    n = 3  # next_state=batch: RPLE updates from step 2 (the default waits for a sample's second visit)
    out = Trainer(
        _cfg(
            synthref_dir,
            priors_dir,
            method,
            "total_steps=3",
            "telemetry_log_every=3",
            "telemetry_landscape_every=2",
            "semi.rple.next_state=batch",
        ),
        run,
        show_progress=False,
    ).fit()
    assert 0 <= out["results"]["oIoU"] <= 1
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in recs if "loss_unsup" in r]
    assert len(steps) == n and all(np.isfinite(r["loss"]) for r in steps)
    tele = [r for r in recs if r.get("kind") == "telemetry"]
    assert tele and tele[-1]["tele_samples"] == 3 * n and 0 <= tele[-1]["tele_sel_acc"] <= 1
    assert tele[-1]["tele_land_n"] == 3 * 2  # the probe at steps 0 and 2
    assert 0.5 <= tele[-1]["tele_land_tau_fg_p10"] <= tele[-1]["tele_land_tau_fg_p90"] <= 0.99
    assert 0 <= tele[-1]["tele_land_fg_at_min"] <= 1
    env = json.loads((run / "env.json").read_text())
    assert env["method"]["method"] == method and env["method"]["source"] == PRESETS[method]["source"]
    if method == "l2l":
        from l2l.cli import main

        assert "tele_reward_sep_mean" in tele[-1] and "rple_critic_loss" in steps[-1]
        assert env["method"]["band_pixels"] == 0  # 3 px at 480² is 0.2 px at 32²
        # the scaled band is the method's, not the config's: config.yaml keeps the given value
        assert yaml.safe_load((run / "config.yaml").read_text())["semi"]["rple"]["band"] == 3
        assert main(["plot", str(run)]) == 0 and (run / "curves.png").stat().st_size > 10_000
        from PIL import Image

        with Image.open(run / "curves.png") as im:  # a third row: the reward-landscape panels
            assert im.height > 1000
        assert (run / "bank" / "bank.u8").exists()
        assert (run / "checkpoints" / "step_000000003" / "bank" / "bank.u8").exists()
    if PRESETS[method]["source"] != "weak":
        assert "tele_prior_iou" in tele[-1]


def test_warmup_and_unscaled_band(synthref_dir, priors_dir, tmp_path):
    run = tmp_path / "w"
    Trainer(
        _cfg(synthref_dir, priors_dir, "l2l", "total_steps=3", "semi.warmup_steps=2", "semi.band_at=null"),
        run,
        show_progress=False,
    ).fit()
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert [("warmup" in r, "loss_unsup" in r) for r in recs] == [(True, False), (True, False), (False, True)]
    assert json.loads((run / "env.json").read_text())["method"]["band_pixels"] == 2  # width 3 → half-width 2


def test_prior_methods_need_a_store(synthref_dir, tmp_path):
    cfg = load_config(TrainConfig, None, [f"data.root={synthref_dir}", "method=l2l", *TINY, "total_steps=1"])
    with pytest.raises(ValueError, match="semi.priors"):
        Trainer(cfg, tmp_path / "r", show_progress=False).fit()
    cfg.semi.priors = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="l2l priors generate"):
        Trainer(cfg, tmp_path / "r2", show_progress=False).fit()


def test_unlabeled_ground_truth_never_reaches_training(synthref_dir, priors_dir, tmp_path, monkeypatch):
    """Replace every unlabeled mask by an empty one (and probe the reward landscape every step): training is
    bit-identical, only telemetry changes."""
    from l2l.data.splits import make_split

    ds = ReferDataset.synthref(synthref_dir)
    split = make_split(ds.name, ds.image_ids("train"), "25%", 22)
    hidden = {a for r in ds.samples("train") if not split.is_labeled(r.image_id) for a in [r.ann_id]}
    extra = ["total_steps=3", "telemetry_log_every=3", "model.sesm.prior_dropout=0.0"]
    Trainer(_cfg(synthref_dir, priors_dir, "l2l", *extra), tmp_path / "a", show_progress=False).fit()
    real_mask = ReferDataset.mask
    calls = []

    def blank(self, ann_id):
        m = real_mask(self, ann_id)
        if ann_id in hidden:
            calls.append(ann_id)
            return np.zeros_like(m)
        return m

    monkeypatch.setattr(ReferDataset, "mask", blank)
    probe = "telemetry_landscape_every=1"
    Trainer(_cfg(synthref_dir, priors_dir, "l2l", *extra, probe), tmp_path / "b", show_progress=False).fit()
    wa, wb = (
        load_file(str(tmp_path / "a" / "last" / "model.safetensors")),
        load_file(str(tmp_path / "b" / "last" / "model.safetensors")),
    )
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert calls  # the hidden masks were read — by the telemetry only
    ta, tb = (
        [json.loads(x) for x in (tmp_path / r / "metrics.jsonl").read_text().splitlines() if "tele_weak_iou" in x][-1]
        for r in ("a", "b")
    )
    assert ta["tele_prior_iou"] > 0 and tb["tele_prior_iou"] == 0  # telemetry did see the blank masks
    assert "tele_land_n" not in ta and tb["tele_land_n"] > 0


def test_unlabeled_dataset_never_reads_a_mask(synthref, monkeypatch):
    from l2l.data.augment import WeakAugConfig
    from l2l.data.dataset import UnlabeledRefDataset

    def refuse(self, ann_id):
        raise AssertionError("an unlabeled sample read its mask")

    monkeypatch.setattr(ReferDataset, "mask", refuse)
    uds = UnlabeledRefDataset(synthref, synthref.samples("train")[:4], WeakAugConfig(size=32), seed=0)
    assert [uds[i].sample_id for i in range(4)]
    assert not hasattr(uds[0], "mask")


@pytest.mark.parametrize("next_state", ["batch", "sample"])
def test_l2l_resume_restores_bank_buffer_and_policy(synthref_dir, priors_dir, tmp_path, next_state):
    extra = ["max_steps=5", "total_steps=8", "semi.rple.update_batch=4", f"semi.rple.next_state={next_state}"]
    Trainer(_cfg(synthref_dir, priors_dir, "l2l", *extra), tmp_path / "ref", show_progress=False).fit()
    cut = ["total_steps=8", "semi.rple.update_batch=4", f"semi.rple.next_state={next_state}"]
    Trainer(_cfg(synthref_dir, priors_dir, "l2l", *cut, "max_steps=2"), tmp_path / "cut", show_progress=False).fit()
    # the bank moves on after the checkpoint in a crash; resume must restore the snapshot
    bank = np.memmap(tmp_path / "cut" / "bank" / "bank.u8", dtype=np.uint8, mode="r+")
    bank[:] = 7
    bank.flush()
    del bank
    Trainer(_cfg(synthref_dir, priors_dir, "l2l", *cut, "max_steps=5"), tmp_path / "cut", show_progress=False).fit()
    wa, wb = (load_file(str(tmp_path / r / "last" / "model.safetensors")) for r in ("ref", "cut"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    ba, bb = (np.fromfile(tmp_path / r / "bank" / "bank.u8", dtype=np.uint8) for r in ("ref", "cut"))
    assert np.array_equal(ba, bb)
    sa, sb = (
        torch.load(tmp_path / r / "checkpoints" / "step_000000005" / "state.pt", weights_only=True)["extra"]["method"]
        for r in ("ref", "cut")
    )
    if next_state == "batch":
        assert sa["buffer"]["n"] == sb["buffer"]["n"] == 12  # 4 completed transitions × 3 samples
    else:  # a transition per revisit: 15 visits of the unlabeled samples, each one's first visit pending
        rows = sa["pending_rows"]["rows"]
        assert sa["buffer"]["n"] == sb["buffer"]["n"] == 15 - len(rows) and len(rows) > 0
        assert all(torch.equal(sa["pending_rows"][k], sb["pending_rows"][k]) for k in ("rows", "s", "a", "r"))
    assert torch.equal(sa["buffer"]["r"], sb["buffer"]["r"]) and torch.equal(sa["prev_thr"], sb["prev_thr"])
    assert all(torch.equal(sa["rple"][k], sb["rple"][k]) for k in sa["rple"])


def test_telemetry_by_hand(synthref):
    from l2l.data.augment import Geometry
    from l2l.data.dataset import HiddenMasks

    rec = synthref.samples("train")[0]
    h, w = synthref.mask(rec.ann_id).shape
    geo = Geometry((h, w), 16)
    gt = HiddenMasks(synthref).get(rec.sample_id, geo).float()
    labels = torch.where(gt > 0, 1, 0)
    labels[:, :8] = 255  # half selected
    visit = Visit(
        [rec.sample_id],
        [geo],
        gt[None],
        torch.tensor([True]),
        torch.zeros(1, 16, 16),
        gt[None],
        labels[None],
        torch.tensor([[0.7, 0.2]]),
        {"sep": torch.tensor([0.5])},
    )
    t = Telemetry(HiddenMasks(synthref))
    t.add(visit)
    s = t.summary()
    assert s["tele_prior_iou"] == 1.0 and s["tele_target_iou"] == 1.0 and s["tele_weak_iou"] == 0.0
    assert s["tele_sel_acc"] == 1.0 and s["tele_sel_cov"] == pytest.approx(0.5)
    assert s["tele_tau_fg_mean"] == pytest.approx(0.7) and s["tele_reward_sep_p50"] == pytest.approx(0.5)


def test_reward_landscape(synthref):
    """The probe's gain is Eq. 8 without its stability term at every grid point; its oracle τ_fg is the one
    whose foreground matches the hidden mask best."""
    from l2l.data.augment import Geometry
    from l2l.data.dataset import HiddenMasks

    cfg = R.RPLEConfig(band=1)
    grid = R.threshold_grid(cfg)
    assert grid.shape == (10 * 10, 2) and float(grid[:, 0].min()) == 0.5 and float(grid[:, 1].max()) <= 0.5
    g = torch.Generator().manual_seed(0)
    q, p_w = torch.rand(3, 12, 12, generator=g), torch.rand(3, 12, 12, generator=g)
    land = R.landscape(p_w, q, cfg, grid)
    for k in (0, 37, 99):
        thr = grid[k].expand(3, 2)
        want, _ = R.gain(p_w, q, thr, thr, cfg)  # prev = thr: the stability term is 0
        assert torch.allclose(land[:, k], want, atol=1e-6)
    no_cov = R.landscape(p_w, q, replace(cfg, terms=("sep", "con")), grid)
    assert not torch.allclose(no_cov, land)

    rec = synthref.samples("train")[0]
    h, w = synthref.mask(rec.ann_id).shape
    geo = Geometry((h, w), 64)
    gt = HiddenMasks(synthref).get(rec.sample_id, geo).float()
    soft = 0.6 * gt + 0.2  # the object at 0.8, the rest at 0.2: every τ_fg in (0.2, 0.8] finds it exactly
    thr = torch.tensor([[0.7, 0.2]])
    labels = R.pseudo_label(soft[None], thr, 1)
    visit = Visit([rec.sample_id], [geo], None, torch.tensor([False]), soft[None], soft[None], labels, thr)
    t = Telemetry(HiddenMasks(synthref), cfg)
    t.add(visit)
    t.add_landscape(visit)
    s = t.summary()
    assert s["tele_land_n"] == 1 and t.values("oracle_tau_fg") == [0.5] and s["tele_land_fg_iou_oracle"] == 1.0
    assert 0 < s["tele_land_fg_iou_static"] < 1.0  # the band takes the object's rim
    assert s["tele_land_fg_iou_chosen"] == s["tele_land_fg_iou_static"]  # chosen = the static default here
    alone = Telemetry(HiddenMasks(synthref), cfg)  # telemetry_every=0: the probe still reports
    alone.add_landscape(visit)
    s2 = alone.summary()
    assert "tele_samples" not in s2 and s2["tele_land_fg_iou_oracle"] == 1.0


@pytest.mark.slow
def test_two_process_gloo_l2l(synthref_dir, priors_dir, tmp_path):
    from tests.test_trainer import torchrun_train

    run = tmp_path / "ddp"
    args = [
        f"data.root={synthref_dir}",
        f"semi.priors={priors_dir}",
        "method=l2l",
        "model.sesm.enabled=true",
        *TINY,
        "total_steps=4",
        "semi.rple.update_batch=4",
        "semi.rple.next_state=batch",  # transitions from step 2 on (sample: at revisits only)
        "telemetry_log_every=4",
    ]
    r = torchrun_train(run, args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((run / "env.json").read_text())["world_size"] == 2
    st = torch.load(run / "checkpoints" / "step_000000004" / "state.pt", weights_only=True)["extra"]["method"]
    assert st["buffer"]["n"] == 3 * 6  # 3 completed steps × (3 samples × 2 ranks): transitions of both ranks
    # both ranks wrote their own samples' bank rows, and every rank's visits count in the telemetry
    tele = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if "tele_samples" in x][-1]
    assert tele["tele_samples"] == 4 * 6
    bank = np.fromfile(run / "bank" / "bank.u8", dtype=np.uint8)
    init = np.fromfile(run / "checkpoints" / "step_000000004" / "bank" / "bank.u8", dtype=np.uint8)
    assert np.array_equal(bank, init)


@pytest.mark.parametrize("weak_dropout", [False, True])
def test_weak_pass_keeps_its_guidance(synthref_dir, priors_dir, tmp_path, monkeypatch, weak_dropout):
    """The weak (teacher) pass is conditioned on every sample's bank entry even with prior dropout 1.0;
    `semi.weak_prior_dropout=true` restores the old behaviour (the teacher lost its guidance too)."""
    from l2l.models.segmenter import Segmenter

    seen = []
    real = Segmenter._guidance

    def spy(self, b, size, guidance, has_guidance, device, dropout=True, fallback=None):
        g = real(self, b, size, guidance, has_guidance, device, dropout, fallback)
        if guidance is not None and not torch.is_grad_enabled():  # the weak pass runs under no_grad
            null = torch.sigmoid(
                torch.nn.functional.interpolate(self.null_map, size=size, mode="bilinear", align_corners=False)
            )
            seen.append(bool(torch.isclose(g, null.expand_as(g)).flatten(1).all(1).any()))
        return g

    monkeypatch.setattr(Segmenter, "_guidance", spy)
    extra = ["total_steps=3", "model.sesm.prior_dropout=1.0", f"semi.weak_prior_dropout={str(weak_dropout).lower()}"]
    Trainer(_cfg(synthref_dir, priors_dir, "static-threshold", *extra), tmp_path / "r", show_progress=False).fit()
    assert len(seen) == 3  # one weak pass per step
    assert all(seen) if weak_dropout else not any(seen)


def test_the_loader_worker_encodes_new_sentences_and_the_run_is_unchanged(
    synthref_dir, priors_dir, tmp_path, monkeypatch
):
    """With a frozen, caching text encoder and loader workers, the sentences new to the model (the
    unlabeled ones, their EDA variants and flips) are encoded in the worker and sent with the batch
    (engine/stream.py): the training process only absorbs them, and the weights are those of a run
    that encoded everything itself (workers=0)."""
    from l2l.nets.text_encoders import PackedFeatures

    extra = ["total_steps=3", "semi.warmup_steps=0", "model.text.name=minilm", "model.text.freeze=true"]
    ref = Trainer(_cfg(synthref_dir, priors_dir, "fixmatch", *extra), tmp_path / "w0", show_progress=False)
    ref.fit()
    tr = Trainer(
        _cfg(synthref_dir, priors_dir, "fixmatch", *extra, "data.workers=1"), tmp_path / "w1", show_progress=False
    )
    tr.prepare(resume=False)
    assert tr.stream.text_encoder is tr.model.text
    lab, unl = tr.stream[0]  # in this process: what the worker does
    packed = unl.text_features
    assert isinstance(packed, PackedFeatures) and set(unl.texts) <= set(packed.texts)
    assert packed.data.shape == (sum(packed.lengths), tr.model.text.dim)
    assert tr.stream[0][1].text_features is None  # each sentence is sent once
    import os

    from l2l.data.text_augment import flip_directions
    from l2l.nets.text_encoders import HFTextEncoder

    here, encoded = os.getpid(), []  # the sentences this (the training) process encodes itself
    real = HFTextEncoder.precompute

    def spy(self, texts, *a, **k):
        if os.getpid() == here:
            encoded.extend(t for t in texts if t not in self._cache)
        return real(self, texts, *a, **k)

    monkeypatch.setattr(HFTextEncoder, "precompute", spy)
    tr = Trainer(
        _cfg(synthref_dir, priors_dir, "fixmatch", *extra, "data.workers=1"), tmp_path / "w1", show_progress=False
    )
    tr.fit(resume=False)
    both = lambda recs: {t for r in recs for t in (r.sentence, flip_directions(r.sentence))}  # noqa: E731
    unlabeled_only = (
        both(tr.stream.unlabeled.records) - both(tr.stream.labeled.records) - both(tr.dataset.samples("val"))
    )
    assert unlabeled_only and encoded  # (the labeled sentences at prepare, the val ones at the evaluation)
    assert not unlabeled_only & set(encoded)  # the unlabeled sentences came from the worker, encoded there
    assert set(unl.texts) <= set(tr.model.text._cache)  # absorbed from the worker's batches
    wa, wb = (load_file(str(tmp_path / r / "last" / "model.safetensors")) for r in ("w0", "w1"))
    assert all(torch.allclose(wa[k], wb[k], rtol=0, atol=1e-6) for k in wa)


@pytest.mark.parametrize("mode", ["sample", "batch"])
def test_rple_next_state_is_the_same_samples_next_visit(mode):
    """next_state=sample: a transition's s' is the state of the *same* sample at its next visit;
    next_state=batch: the state at the same position of the next mini-batch (another sample)."""
    from l2l.engine.method import StepContext
    from l2l.semi.methods.l2l import L2L

    m = L2L("l2l", SemiConfig(rple=RPLEConfig(next_state=mode, update_batch=2)), data_size=32)
    m.row = {10: 0, 11: 1, 12: 2, 13: 3}
    m.prev_thr = torch.tensor([[0.7, 0.2]]).repeat(4, 1)
    g = torch.Generator().manual_seed(0)
    maps = {i: torch.rand(1, 32, 32, generator=g) for i in m.row}
    ctx = lambda k: StepContext(step=k, epoch=0, device="cpu", seed=22, info=DistInfo())  # noqa: E731

    def visit(ids, k):
        q = torch.cat([maps[i] for i in ids])
        rows = torch.tensor([m.row[i] for i in ids])
        s = R.state(q, m.prev_thr[rows], torch.ones(len(ids)), m.band_px, m.cfg.band_regions)
        m._rple_step(q, q, torch.ones(len(ids)), m.prev_thr[rows], rows, ctx(k))
        return s

    s1 = visit([10, 11], 1)
    s2 = visit([12, 13], 2)
    s3 = visit([11, 10], 3)  # the first two samples again, in the other order
    buf = m.rple.buffer  # type: ignore[union-attr]
    if mode == "sample":
        assert buf.n == 2  # only the revisits completed transitions
        assert torch.allclose(buf.s[0], s1[1]) and torch.allclose(buf.s2[0], s3[0])  # sample 11
        assert torch.allclose(buf.s[1], s1[0]) and torch.allclose(buf.s2[1], s3[1])  # sample 10
    else:
        assert buf.n == 4
        assert torch.allclose(buf.s2[0], s2[0]) and torch.allclose(buf.s2[2], s3[0])


def test_baseline_without_prior_is_fixmatch_on_the_sesm_segmenter(synthref_dir, priors_dir, tmp_path):
    """The paper's "Baseline (w/o MLLM)" (§2 with L2L's segmenter): FixMatch's preset on a SESM model,
    whose guidance bank holds its own weak predictions; it reads no prior store."""
    run = tmp_path / "b"
    cfg = _cfg(
        synthref_dir, "/nonexistent/priors", "fixmatch", "total_steps=2", "model.sesm.enabled=true"
    )  # never opened
    Trainer(cfg, run, show_progress=False).fit()
    bank = np.fromfile(run / "bank" / "bank.u8", dtype=np.uint8)
    assert bank.any()  # written from p_w (no prior to start from)
    env = json.loads((run / "env.json").read_text())
    assert env["method"]["source"] == "weak" and env["method"]["tau_fg"] == 0.95


def test_rple_band_keys_come_from_the_semi_section():
    """semi.rple.band_regions would be replaced by semi.band_regions: setting it is refused, and
    semi.band_regions reaches RPLE's reward and state."""
    from l2l.semi.methods.l2l import L2L

    with pytest.raises(ValueError, match="semi.band_regions"):
        L2L("l2l", SemiConfig(rple=RPLEConfig(band_regions="foreground")), data_size=96)
    m = L2L("l2l", SemiConfig(band_regions="foreground"), data_size=96)
    assert m.rple is not None and m.rple.cfg.band_regions == "foreground" and m.band_px == 1
