"""Image-level label splits: determinism, presets, no leakage, versioned files."""
from __future__ import annotations

import json

import pytest

from l2l.data.splits import LabelSplit, make_split, parse_fraction, split_filename


def test_deterministic_and_seed_dependent():
    ids = list(range(1, 2001))
    a = make_split("d", ids, "5%", 22)
    b = make_split("d", list(reversed(ids)), 0.05, 22)
    assert a == b and len(a.labeled) == 100 and len(a.unlabeled) == 1900
    assert make_split("d", ids, "5%", 23).labeled != a.labeled


def test_presets_and_at_least_one_labeled():
    assert parse_fraction("0.1%") == 0.001 and parse_fraction("10%") == 0.1 and parse_fraction("0.02") == 0.02
    s = make_split("d", range(1, 51), "0.1%", 0)
    assert len(s.labeled) == 1 and len(s.unlabeled) == 49
    for bad in ("0", "150%", "-1", 2.0):
        with pytest.raises(ValueError):
            parse_fraction(bad)


def test_no_image_on_both_sides():
    s = make_split("d", range(1, 301), "10%", 5)
    assert not set(s.labeled) & set(s.unlabeled)
    assert set(s.labeled) | set(s.unlabeled) == set(range(1, 301))
    with pytest.raises(ValueError, match="both sides"):
        LabelSplit("d", 0.5, 0, (1, 2), (2, 3))


def test_file_round_trip_is_byte_identical_and_tamper_evident(tmp_path):
    s = make_split("synthref", range(1, 401), "5%", 22)
    p1, p2 = tmp_path / "a.json", tmp_path / "b.json"
    h = s.save(p1)
    make_split("synthref", range(1, 401), "5%", 22).save(p2)
    assert p1.read_bytes() == p2.read_bytes()
    assert LabelSplit.load(p1) == s and LabelSplit.load(p1).content_hash == h
    doc = json.loads(p1.read_text())
    doc["labeled"][0], doc["unlabeled"][0] = doc["unlabeled"][0], doc["labeled"][0]
    p1.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="hash mismatch"):
        LabelSplit.load(p1)
    assert split_filename(0.001, 22) == "label_split_0p1pct_seed22.json"


def test_split_of_synthref_train_images(synthref):
    s = make_split(synthref.name, synthref.image_ids("train"), "10%", 22)
    assert set(s.labeled) | set(s.unlabeled) == set(synthref.image_ids("train"))
    assert not (set(s.labeled) | set(s.unlabeled)) & set(synthref.image_ids("val"))
