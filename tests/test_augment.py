"""Weak-view geometry keeps image, mask and prior aligned; strong ops never move pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from l2l.data.augment import IGNORE_INDEX, STRONG_OPS, Geometry, StrongAugment, WeakAugConfig, sample_geometry


def _scene(h=90, w=120):
    mask = torch.zeros(h, w, dtype=torch.uint8)
    mask[20:50, 10:40] = 1  # an object in the upper left
    img = torch.zeros(3, h, w)
    img[0][mask.bool()] = 1.0  # red where the object is
    prior = mask.float() * 0.9
    return img, mask, prior


@pytest.mark.parametrize("scale", [1.0, 1.3, 0.7])
@pytest.mark.parametrize("flip", [False, True])
def test_image_mask_prior_stay_aligned(scale, flip):
    img, mask, prior = _scene()
    s = max(1, round(64 * scale))
    off = (0, 0) if s == 64 else ((5, 3) if s > 64 else (-4, -6))
    g = Geometry((90, 120), 64, scale, off, flip)
    gi, gm, gp = g.apply(img, "image"), g.apply(mask, "mask"), g.apply(prior, "prior")
    assert gi.shape == (3, 64, 64) and gm.shape == (64, 64) and gp.shape == (64, 64)
    valid = gm != IGNORE_INDEX
    fg = (gm == 1) & valid
    assert fg.sum() > 20
    # the prior and the image show the object where the mask does (up to resampling edges)
    agree_p = ((gp > 0.45) == fg)[valid].float().mean()
    agree_i = ((gi[0] > 0.5) == fg)[valid].float().mean()
    assert agree_p > 0.97 and agree_i > 0.97
    # flipping moves the object to the right half
    cx = fg.nonzero()[:, 1].float().mean()
    assert (cx > 32) == flip
    if scale < 1:
        assert (gm == IGNORE_INDEX).any() and (gi[:, gm == IGNORE_INDEX] == 0).all()


def test_sample_geometry_is_seeded_and_size_checked():
    cfg = WeakAugConfig(size=64, scale_range=(0.8, 1.2))
    a = [sample_geometry((90, 120), cfg, np.random.default_rng(i)) for i in range(20)]
    b = [sample_geometry((90, 120), cfg, np.random.default_rng(i)) for i in range(20)]
    assert a == b and {g.flip for g in a} == {True, False}
    assert sample_geometry((90, 120), cfg, None) == Geometry((90, 120), 64)
    with pytest.raises(ValueError, match="does not match"):
        a[0].apply(torch.zeros(50, 50), "mask")


@pytest.mark.parametrize("name", list(STRONG_OPS))
def test_strong_ops_are_appearance_only(name):
    """Left half dark, right half bright, a bright square: after the op the bright
    region is where it was (no shift, flip, crop), and values stay in [0, 1]."""
    x = torch.full((4, 3, 48, 48), 0.2)
    x[..., 24:] = 0.8
    x[..., 5:15, 5:15] = 0.95
    x += torch.rand_like(x) * 0.02
    y = StrongAugment()(x, torch.Generator().manual_seed(1), ops=[name])
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    for b in range(4):
        left, right = y[b, :, :, 17:22].mean(), y[b, :, :, 30:].mean()
        assert right > left, name
        assert y[b, :, 5:15, 5:15].mean() > y[b, :, 20:22, 5:15].mean() - 1e-6, name


def test_strong_augment_mixes_ops_per_image_and_is_seeded():
    x = torch.rand(16, 3, 32, 32)
    sa = StrongAugment()
    a = sa(x, torch.Generator().manual_seed(3))
    b = sa(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    changed = [(a[i] - x[i]).abs().max() > 1e-4 for i in range(16)]
    assert sum(changed) >= 8  # most images changed (a few draw Identity twice)
    with pytest.raises(ValueError):
        StrongAugment()(torch.rand(3, 32, 32))
