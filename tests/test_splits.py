"""Image-level label splits: determinism, presets, no leakage, versioned files."""

from __future__ import annotations

import json
from pathlib import Path

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
    for bad in ("150%", "-1", 2.0, "abc"):
        with pytest.raises(ValueError):
            parse_fraction(bad)


def test_label_counts_are_floors_as_in_the_paper():
    """0.1 %: 16 labeled images of RefCOCO's 16,994 and RefCOCO+'s 16,992, 21 of RefCOCOg's 21,899
    (the paper's counts); rounding, the earlier rule, gave 17 / 17 / 22."""
    from l2l.data.splits import label_count

    assert [label_count(0.001, n) for n in (16994, 16992, 21899)] == [16, 16, 21]
    assert [label_count(0.001, n, "round") for n in (16994, 16992, 21899)] == [17, 17, 22]
    assert label_count(0.05, 1600) == 80 and label_count(0.01, 1600) == 16 and label_count(0.1, 1600) == 160
    assert label_count(0.001, 1600) == 1 and label_count(0.001, 1600, "round") == 2 and label_count(0.0, 99) == 0
    assert len(make_split("d", range(1, 1601), "0.1%", 22).labeled) == 1
    assert len(make_split("d", range(1, 1601), "0.1%", 22, count="round").labeled) == 2
    with pytest.raises(ValueError, match="data.label_count"):
        label_count(0.1, 10, "ceil")


def test_zero_budget_is_a_split_with_no_labeled_image(tmp_path):
    assert parse_fraction("0%") == 0.0 == parse_fraction("0")
    s = make_split("d", range(1, 51), "0%", 22)
    assert s.labeled == () and len(s.unlabeled) == 50
    s.save(tmp_path / "z.json")
    assert LabelSplit.load(tmp_path / "z.json") == s
    with pytest.raises(ValueError, match="no labeled image"):
        LabelSplit("d", 0.05, 0, (), (1, 2))


def test_committed_synthref_split_files_are_valid():
    root = Path(__file__).resolve().parents[1] / "configs" / "splits" / "synthref"
    counts = {}
    for f in sorted(root.glob("label_split_*pct_seed22.json")):
        s = LabelSplit.load(f)  # format and content hash checked
        assert s.dataset == "synthref" and s.seed == 22 and len(s.labeled) + len(s.unlabeled) == 1600
        counts[f.name] = len(s.labeled)
    assert counts == {
        "label_split_0pct_seed22.json": 0,
        "label_split_10pct_seed22.json": 160,
        "label_split_1pct_seed22.json": 16,
        "label_split_5pct_seed22.json": 80,
    }


def test_split_file_drives_training_and_is_checked(synthref_dir, tmp_path):
    from l2l.config import load_config
    from l2l.data.refer import ReferDataset
    from l2l.data.splits import resolve_split
    from l2l.engine.trainer import Trainer
    from l2l.schema import TrainConfig

    ds = ReferDataset.synthref(synthref_dir)
    ids = ds.image_ids("train")
    f = tmp_path / "split.json"
    make_split(ds.name, ids, "20%", 7).save(f)
    assert resolve_split(ds.name, ids, "20%", 22, f) == make_split(
        ds.name, ids, "20%", 7
    )  # the file wins over the seed
    with pytest.raises(ValueError, match="set them alike"):
        resolve_split(ds.name, ids, "5%", 22, f)
    with pytest.raises(ValueError, match="is a split of 'synthref', the data is 'other'"):
        resolve_split("other", ids, "20%", 22, f)
    with pytest.raises(ValueError, match="missing from the file"):
        resolve_split(ds.name, list(ids) + [10**9], "20%", 22, f)
    cfg = load_config(
        TrainConfig,
        None,
        [
            f"data.root={synthref_dir}",
            "model.visual.path=null",
            "model.text.name=tiny",
            "model.visual.name=conv",
            "model.visual.conv_channels=[8,8,8,8]",
            "model.decoder_dim=8",
            "data.size=32",
            "data.workers=0",
            "total_steps=1",
            "batch_size=2",
            "data.eval_max_samples=2",
            "data.label_fraction=20%",
            f"data.split_file={f}",
        ],
    )
    Trainer(cfg, tmp_path / "run", show_progress=False).fit()
    assert LabelSplit.load(tmp_path / "run" / "label_split.json") == make_split(ds.name, ids, "20%", 7)
    cfg.data.label_fraction, cfg.data.split_file = "0%", None
    with pytest.raises(ValueError, match="no labeled image, and method 'supervised'"):
        Trainer(cfg, tmp_path / "run0", show_progress=False).fit()


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
