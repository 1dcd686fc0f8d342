"""RPLE: parameter count, action ranges, initial policy, boundary band, scores and reward arithmetic, DDPG."""

from __future__ import annotations

import pytest
import torch

from l2l.semi.rple import (
    IGNORE,
    RPLE,
    ReplayBuffer,
    RPLEConfig,
    label_shares,
    pseudo_label,
    reward,
    scores,
    state,
    thresholds_from,
)


def test_parameter_count_matches_the_paper():
    assert RPLE().num_params() == 9539  # 0.009539 M


def test_action_ranges_and_initial_policy():
    cfg = RPLEConfig()
    thr = thresholds_from(torch.randn(1000, 2) * 10, cfg)
    assert thr[:, 0].min() >= 0.5 and thr[:, 0].max() <= 0.99 and thr[:, 1].min() >= 0.01 and thr[:, 1].max() <= 0.5
    r = RPLE()
    a = r.act(torch.randn(5, 6), explore=False)
    assert torch.allclose(a, torch.tensor([[0.70, 0.20]]).expand(5, 2), atol=1e-5)
    noisy = r.act(torch.randn(200, 6), explore=True, generator=torch.Generator().manual_seed(0))
    assert noisy.std(0).min() > 0.005 and abs(noisy[:, 0].mean() - 0.70) < 0.02


def test_pseudo_label_and_boundary_band():
    p = torch.zeros(1, 20, 20)
    p[0, 5:15, 5:15] = 0.9  # a confident square
    p[0, 0, 0] = 0.4  # an uncertain pixel
    lab = pseudo_label(p, torch.tensor([[0.7, 0.2]]), band=0)
    assert (lab == 1).sum() == 100 and lab[0, 0, 0] == IGNORE and (lab == 0).sum() == 400 - 101
    lab3 = pseudo_label(p, torch.tensor([[0.7, 0.2]]), band=3)
    assert lab3[0, 10, 10] == 1 and lab3[0, 5, 10] == IGNORE and lab3[0, 2, 10] == IGNORE and lab3[0, 1, 10] == 0
    assert (lab3 == 1).sum() == 16  # 10×10 eroded by 3 on each side → 4×4
    assert label_shares(lab3).sum().item() == pytest.approx(1.0)


def test_scores_and_reward_by_hand():
    p_cal = torch.tensor([[[0.9, 0.8, 0.1, 0.5]]])
    p_w = torch.tensor([[[1.0, 0.6, 0.0, 0.4]]])
    lab = torch.tensor([[[1, 1, 0, IGNORE]]])
    s = scores(p_w, p_cal, lab, temperature=0.1)[0]
    # μ_fg = 0.8, μ_bg = 0.0 → σ(8); consistency 1 − (0.1 + 0.2 + 0.1)/3; coverage 3/4
    assert s.tolist() == pytest.approx([torch.sigmoid(torch.tensor(8.0)).item(), 1 - 0.4 / 3, 0.75], abs=1e-5)
    cfg = RPLEConfig(band=0)
    r, terms = reward(p_w, p_cal, torch.tensor([[0.70, 0.20]]), torch.tensor([[0.70, 0.20]]), cfg)
    assert r.item() == pytest.approx(0.0, abs=1e-6)  # the default action gains nothing
    r2, t2 = reward(p_w, p_cal, torch.tensor([[0.85, 0.05]]), torch.tensor([[0.70, 0.20]]), cfg)
    # τ_fg 0.85 keeps only 0.9 as fg; τ_bg 0.05 drops 0.1 from bg → fewer pixels selected
    s_a = scores(p_w, p_cal, pseudo_label(p_cal, torch.tensor([[0.85, 0.05]]), 0))
    s_0 = scores(p_w, p_cal, pseudo_label(p_cal, torch.tensor([[0.70, 0.20]]), 0))
    g = (s_a - s_0)[0] @ torch.tensor([1.0, 1.0, 0.5]) - 0.1 * (0.15**2 + 0.15**2)
    assert r2.item() == pytest.approx(max(-1.0, min(1.0, g.item())), abs=1e-5)
    r3, _ = reward(
        p_w,
        p_cal,
        torch.tensor([[0.85, 0.05]]),
        torch.tensor([[0.70, 0.20]]),
        RPLEConfig(band=0, terms=("sep", "con", "cov")),
    )
    assert r3.item() == pytest.approx(r2.item() + 0.1 * 0.045, abs=1e-5)  # stability term removed
    big, _ = reward(
        p_w,
        p_cal,
        torch.tensor([[0.85, 0.05]]),
        torch.tensor([[0.70, 0.20]]),
        RPLEConfig(band=0, lambdas=(100.0, 100.0, 100.0, 0.0)),
    )
    assert abs(big.item()) == 1.0  # clipped (Eq. 12)


def test_state_ddpg_update_and_buffer():
    torch.manual_seed(0)
    r = RPLE(RPLEConfig(update_batch=8, buffer_size=16))
    p = torch.rand(4, 16, 16)
    s = state(p, torch.tensor([[0.7, 0.2]]).expand(4, 2), torch.rand(4))
    assert s.shape == (4, 6) and torch.allclose(s[:, 2:5].sum(1), torch.ones(4))
    for _ in range(5):
        r.buffer.add(s, r.act(s), torch.rand(4), s)
    assert r.buffer.n == 16 and r.buffer.pos == 4  # wrapped around
    before = [q.clone() for q in r.critic.parameters()]
    tgt_before = [q.clone() for q in r.critic_t.parameters()]
    logs = r.update(torch.Generator().manual_seed(1))
    assert set(logs) == {"rple_critic_loss", "rple_actor_loss"}
    assert any(not torch.equal(a, b) for a, b in zip(before, r.critic.parameters()))
    for a, b, c in zip(tgt_before, r.critic_t.parameters(), r.critic.parameters()):
        assert torch.allclose(b, 0.995 * a + 0.005 * c, atol=1e-6)  # soft update
    buf = ReplayBuffer(16)
    buf.load_state_dict(r.buffer.state_dict())
    assert torch.equal(buf.s, r.buffer.s) and buf.pos == 4 and buf.n == 16


def test_band_equals_dilation_minus_erosion():
    """The summed-area band (``regions="foreground"``) is exactly the morphological one (max pooling
    with -inf padding)."""
    import torch.nn.functional as F

    from l2l.semi.rple import IGNORE, pseudo_label

    g = torch.Generator().manual_seed(0)
    p = torch.rand(6, 40, 33, generator=g)
    p = F.avg_pool2d(p[:, None], 5, 1, 2)[:, 0]  # blobs, touching the borders too
    thr = torch.tensor([[0.55, 0.45]]).repeat(6, 1)
    for band in (1, 3):
        lab = pseudo_label(p, thr, band, regions="foreground")
        f = (p >= 0.55).float()[:, None]
        k = 2 * band + 1
        ring = (F.max_pool2d(f, k, 1, band) - -F.max_pool2d(-f, k, 1, band))[:, 0] > 0
        ref = torch.where(p >= 0.55, 1, torch.where(p <= 0.45, 0, IGNORE)).long()
        ref[ring] = IGNORE
        assert torch.equal(lab, ref)
        assert ring.any() and ((lab == 1).any() or band > 1)


def test_band_around_every_region_boundary():
    """regions="all" (the paper's "band around region boundaries"): the union of dilation minus erosion
    of each of the three regions, so the background next to an ignored area is ignored too."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(1)
    p = F.avg_pool2d(torch.rand(4, 37, 30, generator=g)[:, None], 5, 1, 2)[:, 0]
    thr = torch.tensor([[0.56, 0.48]]).repeat(4, 1)
    base = torch.where(p >= 0.56, 1, torch.where(p <= 0.48, 0, IGNORE)).long()
    for band in (1, 2):
        lab = pseudo_label(p, thr, band, regions="all")
        k, ring = 2 * band + 1, torch.zeros_like(base, dtype=torch.bool)
        for c in (0, 1, IGNORE):
            f = (base == c).float()[:, None]
            ring |= (F.max_pool2d(f, k, 1, band) + F.max_pool2d(-f, k, 1, band))[:, 0] > 0
        ref = base.clone()
        ref[ring] = IGNORE
        assert torch.equal(lab, ref)
        fg_only = pseudo_label(p, thr, band, regions="foreground")
        assert (fg_only != IGNORE).sum() > (lab != IGNORE).sum()  # background beside ignored pixels dropped too
    # a lone ignored pixel in the background: with "all" its neighbours are ignored, with "foreground" not
    q = torch.zeros(1, 9, 9)
    q[0, 4, 4] = 0.3
    lab = pseudo_label(q, torch.tensor([[0.7, 0.2]]), 1, regions="all")
    assert (lab == IGNORE).sum() == 9 and (
        pseudo_label(q, torch.tensor([[0.7, 0.2]]), 1, "foreground") == IGNORE
    ).sum() == 1


def test_one_learning_rate_by_default_and_the_pair_as_a_switch():
    r = RPLE()
    assert r.opt_actor.param_groups[0]["lr"] == r.opt_critic.param_groups[0]["lr"] == 1e-3
    r2 = RPLE(RPLEConfig(lr=None))
    assert r2.opt_actor.param_groups[0]["lr"] == 1e-4 and r2.opt_critic.param_groups[0]["lr"] == 1e-3
    for bad in (dict(lr=0.0), dict(next_state="later"), dict(reward_scale="std"), dict(band_regions="fg")):
        with pytest.raises(Exception, match="semi.rple"):
            RPLEConfig(**bad)  # type: ignore[arg-type]


def test_reward_scale_divides_by_the_running_rms_then_clips():
    r = RPLE()
    g = torch.tensor([1e-4, -2e-4, 3e-4, 0.0])
    out = r.scale(g)
    rms = g.pow(2).mean().sqrt()
    assert torch.allclose(out, (g / rms).clamp(-1, 1), atol=1e-6)
    assert out.abs().max() == 1.0 and out.abs().min() == 0.0  # raw gains of 1e-4 now reach the clip
    g2 = torch.tensor([2e-4, 2e-4])
    out2 = r.scale(g2)
    ms = 0.99 * rms.pow(2) + 0.01 * g2.pow(2).mean()
    assert torch.allclose(out2, (g2 / ms.sqrt()).clamp(-1, 1), atol=1e-6) and int(r.gain_n) == 2
    assert torch.equal(RPLE(RPLEConfig(reward_scale="none")).scale(g * 1e4), (g * 1e4).clamp(-1, 1))


def test_actor_waits_for_actor_start_transitions():
    torch.manual_seed(0)
    r = RPLE(RPLEConfig(update_batch=4, actor_start=8))
    s = torch.rand(4, 6)
    r.buffer.add(s, r.act(s), torch.rand(4), s)
    actor0 = [p.clone() for p in r.actor.parameters()]
    logs = r.update(torch.Generator().manual_seed(0))
    assert set(logs) == {"rple_critic_loss"} and all(torch.equal(a, b) for a, b in zip(actor0, r.actor.parameters()))
    r.buffer.add(s, r.act(s), torch.rand(4), s)  # 8 transitions: the actor learns
    assert "rple_actor_loss" in r.update(torch.Generator().manual_seed(1))
    assert any(not torch.equal(a, b) for a, b in zip(actor0, r.actor.parameters()))
