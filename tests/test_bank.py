"""Guidance bank: initialisation from priors, round trips through weak views, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from l2l.data.augment import Geometry
from l2l.semi.bank import GuidanceBank


def _blob(size=32):
    m = torch.zeros(1, size, size)
    m[0, 6:16, 4:12] = 1.0  # off-centre, asymmetric
    return m


def test_initialise_from_priors_and_uint8_storage(tmp_path):
    priors = {1: np.full((60, 80), 0.25, np.float32), 2: np.eye(64, dtype=np.float32)}
    bank = GuidanceBank(tmp_path, [1, 2, 3], size=16)
    assert bank.initialise(priors.get) == 2  # sample 3 has no prior
    assert bank.has([1, 2, 3]).tolist() == [True, True, False]
    g = bank.get([1, 2])
    assert g.shape == (2, 1, 16, 16) and torch.allclose(g[0], torch.full((1, 16, 16), 64 / 255))
    assert g[1, 0].diagonal().mean() > g[1, 0].mean()
    assert bank.initialise(priors.get) == 0  # nothing redone


@pytest.mark.parametrize(
    "geo",
    [
        Geometry((32, 32), 64),
        Geometry((32, 32), 64, flip=True),
        Geometry((32, 32), 64, 1.25, (6, 10), True),
        Geometry((32, 32), 64, 0.75, (-5, -9), False),
    ],
)
def test_view_round_trip_restores_the_bank_frame(tmp_path, geo):
    bank = GuidanceBank(tmp_path, [7], size=32)
    m = _blob()[None]
    view = bank.to_view(m, [geo])
    assert view.shape == (1, 1, 64, 64)
    if geo.flip:
        assert view[0, 0, :, 32:].sum() > view[0, 0, :, :32].sum()  # the blob moved to the right half
    back = bank.from_view(view, [geo], old=torch.full_like(m, 0.5))
    covered = back != 0.5
    assert ((back - m).abs()[covered]).mean() < 0.08
    if geo.scale > 1:  # a crop leaves part of the image unseen: it keeps the old value
        assert (back == 0.5).any()


def test_put_persist_and_snapshot(tmp_path):
    bank = GuidanceBank(tmp_path / "b", [10, 11], size=8)
    bank.put([11], torch.full((1, 1, 8, 8), 0.8))
    bank.flush()
    again = GuidanceBank(tmp_path / "b")  # reopen after a restart
    assert torch.allclose(again.get([11]), torch.full((1, 1, 8, 8), 204 / 255)) and again.has([10, 11]).tolist() == [
        False,
        True,
    ]
    bank.save_to(tmp_path / "snap")
    bank.put([11], torch.zeros(1, 1, 8, 8))
    bank.load_from(tmp_path / "snap")
    assert bank.get([11]).max() > 0.7
    with pytest.raises(ValueError, match="other samples"):
        GuidanceBank(tmp_path / "b", [1, 2])
