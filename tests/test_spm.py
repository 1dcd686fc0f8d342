"""SPM (Eqs. 4–6) on hand-made inputs."""

from __future__ import annotations

import math

import pytest
import torch

from l2l.semi.spm import SPMConfig, agreement, calibrate, certainty, fusion_weight, logit


def test_certainty_and_agreement_by_hand():
    assert certainty(torch.tensor([0.0, 0.25, 0.5, 1.0])).tolist() == [1.0, 0.5, 0.0, 1.0]
    pw = torch.tensor([[[0.2, 0.8], [1.0, 0.0]]])
    pr = torch.tensor([[[0.4, 0.6], [1.0, 0.5]]])
    # Σ min = 0.2 + 0.6 + 1.0 + 0.0 = 1.8 ; Σ max = 0.4 + 0.8 + 1.0 + 0.5 = 2.7
    assert agreement(pw, pr).item() == pytest.approx(1.8 / 2.7, abs=1e-5)
    assert agreement(pr, pr).item() == pytest.approx(1.0, abs=1e-5)


def test_fusion_weight_by_hand():
    cfg = SPMConfig()
    pw = torch.tensor([[0.5, 1.0]])  # uncertain model pixel, certain model pixel
    pr = torch.tensor([[1.0, 0.5]])  # certain prior pixel, uncertain prior pixel
    w = fusion_weight(pw, pr, torch.tensor([0.5]), cfg)
    # a^κ · (γ + α(1 − c(p_w)) + β c(P†)) = 0.5 · (0.2 + 0.4·1 + 0.25·1) and 0.5 · (0.2 + 0 + 0)
    assert w.tolist()[0] == pytest.approx([0.5 * 0.85, 0.5 * 0.2])
    assert fusion_weight(pw, pr, torch.tensor([1.0]), SPMConfig(w_max=0.5)).max().item() == pytest.approx(0.5)
    assert fusion_weight(pw, pr, torch.tensor([0.0]), cfg).abs().max().item() == 0.0  # disagreement silences the prior


def test_calibrate_logit_space_and_extremes():
    pw = torch.tensor([[[0.5, 0.9]]])
    pr = torch.tensor([[[0.9, 0.9]]])
    fused, w, a = calibrate(pw, pr)
    expected = torch.sigmoid(w * logit(pr) + (1 - w) * logit(pw))
    assert torch.allclose(fused, expected)
    assert fused[0, 0, 1].item() == pytest.approx(0.9, abs=1e-5)  # two equal opinions stay
    assert 0.5 < fused[0, 0, 0].item() < 0.9  # the prior pulls an uncertain pixel towards it
    # exact 0 and 1 anywhere: no NaN, no inf
    ext = torch.tensor([[[0.0, 1.0, 0.0, 1.0]]])
    fused, w, a = calibrate(ext, ext.flip(-1))
    assert torch.isfinite(fused).all() and torch.isfinite(w).all() and torch.isfinite(a).all()
    assert torch.isfinite(logit(torch.tensor([0.0, 1.0]))).all()
    assert logit(torch.tensor([0.5])).item() == 0.0 and logit(torch.tensor([0.0])).item() == pytest.approx(
        math.log(1e-6), rel=1e-3
    )
    with pytest.raises(ValueError):
        calibrate(torch.zeros(1, 2, 2), torch.zeros(1, 3, 3))


def test_the_three_damping_forms_of_eq5_by_hand():
    pw = torch.tensor([[0.5, 1.0]])
    pr = torch.tensor([[1.0, 0.5]])
    base = torch.tensor([0.85, 0.2])  # γ + α(1 − c(p_w)) + β c(P†) per pixel (previous test)
    for a in (0.0, 0.3, 1.0):
        at = torch.tensor([a])
        floor = fusion_weight(pw, pr, at, SPMConfig(damping="floor", a_floor=0.5))[0]
        assert torch.allclose(floor, (0.5 + 0.5 * a) * base)
        add = fusion_weight(pw, pr, at, SPMConfig(damping="additive", delta=0.15))[0]
        assert torch.allclose(add, (base + 0.15 * (a - 1)).clamp(0, 0.95))
    # an unguided p_w that disagrees completely: power switches the prior off, the others keep it
    zero = torch.tensor([0.0])
    assert fusion_weight(pw, pr, zero, SPMConfig()).max() == 0.0
    assert fusion_weight(pw, pr, zero, SPMConfig(damping="floor")).min() >= 0.5 * 0.2 - 1e-6
    assert fusion_weight(pw, pr, zero, SPMConfig(damping="additive")).min() >= 0.2 - 0.15 - 1e-6
    for bad in (dict(damping="soft"), dict(a_floor=1.5)):
        with pytest.raises(ValueError, match="semi.spm"):
            SPMConfig(**bad)  # type: ignore[arg-type]
