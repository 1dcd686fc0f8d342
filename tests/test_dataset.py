"""Typed samples: no ground truth on the unlabeled side, determinism, collate, eval resolution."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from l2l.data.augment import WeakAugConfig
from l2l.data.dataset import (
    EvalRefDataset,
    HiddenMasks,
    LabeledRefDataset,
    UnlabeledBatch,
    UnlabeledRefDataset,
    UnlabeledSample,
    collate_eval,
    collate_labeled,
    collate_unlabeled,
    seed_worker,
    train_records,
)
from l2l.data.splits import make_split


@pytest.fixture(scope="module")
def parts(synthref):
    split = make_split(synthref.name, synthref.image_ids("train"), "10%", 22)
    lab, unl = train_records(synthref, split)
    return split, lab, unl


def test_records_follow_the_image_split(synthref, parts):
    split, lab, unl = parts
    assert lab and unl
    assert {r.image_id for r in lab} == set(split.labeled)
    assert {r.image_id for r in unl} == set(split.unlabeled)
    other = make_split(synthref.name, synthref.image_ids("val"), "10%", 22)
    with pytest.raises(ValueError, match="does not match"):
        train_records(synthref, other)


def test_unlabeled_side_never_sees_a_mask(synthref, parts, monkeypatch):
    _, _, unl = parts
    names = {f.name for f in dataclasses.fields(UnlabeledSample)} | {f.name for f in dataclasses.fields(UnlabeledBatch)}
    assert not any("mask" in n for n in names)

    def boom(*a, **k):
        raise AssertionError("the unlabeled dataset read a mask")

    monkeypatch.setattr(synthref, "mask", boom)
    ds = UnlabeledRefDataset(synthref, unl[:6], WeakAugConfig(size=64))
    batch = collate_unlabeled([ds[i] for i in range(6)])
    assert batch.images.shape == (6, 3, 64, 64)
    with pytest.raises(AttributeError):
        batch.mask  # noqa: B018 - slots: no such attribute can even be attached
    with pytest.raises((AttributeError, TypeError)):
        object.__setattr__(batch, "masks", torch.zeros(1))


def test_hidden_masks_follow_the_weak_view(synthref, parts):
    _, _, unl = parts
    ds = UnlabeledRefDataset(synthref, unl[:8], WeakAugConfig(size=64, scale_range=(0.8, 1.2)), seed=1)
    hm = HiddenMasks(synthref)
    lab = LabeledRefDataset(synthref, unl[:8], WeakAugConfig(size=64, scale_range=(0.8, 1.2)), seed=1)
    for i in range(8):
        u = ds[i]
        # the same (seed, epoch, index) gives the same geometry on both sides
        assert torch.equal(hm.get(u.sample_id, u.geometry), lab[i].mask)
        assert torch.equal(u.image, lab[i].image) and u.text == lab[i].text


def test_determinism_independent_of_workers(synthref, parts):
    _, lab, _ = parts
    ds = LabeledRefDataset(synthref, lab, WeakAugConfig(size=64, scale_range=(0.9, 1.1)), seed=5)
    ds.set_epoch(2)

    def run(workers):
        dl = DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=collate_labeled, worker_init_fn=seed_worker)
        return [(b.images.clone(), b.masks.clone(), b.texts) for b in dl]

    a, b = run(0), run(2)
    assert len(a) == len(b)
    for (ia, ma, ta), (ib, mb, tb) in zip(a, b):
        assert torch.equal(ia, ib) and torch.equal(ma, mb) and ta == tb
    ds.set_epoch(3)
    assert not torch.equal(run(0)[0][0], a[0][0])


def test_flipped_samples_swap_their_words(synthref, parts):
    _, lab, _ = parts
    ds = LabeledRefDataset(synthref, lab, WeakAugConfig(size=64, hflip_prob=1.0))
    from l2l.data.text_augment import flip_directions

    for i in range(min(30, len(lab))):
        assert ds[i].text == flip_directions(lab[i].sentence)


def test_eval_keeps_original_resolution_and_priors_align(synthref):
    recs = synthref.samples("val")[:4]
    prior = {r.sample_id: synthref.mask(r.ann_id).astype(np.float32) for r in recs}
    ds = EvalRefDataset(synthref, recs, WeakAugConfig(size=64), prior_lookup=prior.get)
    b = collate_eval([ds[i] for i in range(4)])
    assert b.images.shape == (4, 3, 64, 64) and b.masks.shape == (4, 64, 64)
    assert b.masks_orig[0].shape == (128, 128) and b.masks_orig[0].dtype == torch.bool
    assert b.priors.shape == (4, 1, 64, 64) and b.has_prior.all()
    assert (((b.priors[:, 0] > 0.5) == (b.masks == 1)).float().mean()) > 0.98
    lab = collate_labeled([LabeledRefDataset(synthref, recs, WeakAugConfig(size=64))[i] for i in range(4)])
    assert lab.priors is None and not lab.has_prior.any()


def test_prior_of_wrong_size_is_refused(synthref):
    recs = synthref.samples("val")[:1]
    ds = EvalRefDataset(synthref, recs, WeakAugConfig(size=64), prior_lookup=lambda i: np.zeros((5, 5)))
    with pytest.raises(ValueError, match="prior of sample"):
        ds[0]
