"""SynthRef: determinism, unique referents (checked from the files alone), splits, knobs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from l2l.data.stats import dataset_stats
from l2l.data.synthref import SynthRefConfig, generate, generate_image, is_complete
from l2l.data.synthref_lang import KINDS, SceneObject, parse, resolve
from l2l.data.vocab import SHAPE_WORDS


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_same_seed_is_byte_identical_whatever_the_workers(tmp_path):
    cfg = SynthRefConfig(images=24, seed=11)
    generate(cfg, tmp_path / "a", workers=1, show_progress=False)
    generate(cfg, tmp_path / "b", workers=2, show_progress=False)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) == 24 + 3
    assert all(a[k] == b[k] for k in a)
    generate(SynthRefConfig(images=24, seed=12), tmp_path / "c", workers=1, show_progress=False)
    c = _files(tmp_path / "c")
    assert c["instances.json"] != a["instances.json"]


def test_every_sentence_refers_to_exactly_its_object(synthref_dir):
    """Rebuild each scene from instances.json, parse each sentence from its words only,
    and evaluate it: the one object it picks must be the ref's annotation."""
    inst = json.loads((synthref_dir / "instances.json").read_text())
    refs = json.loads((synthref_dir / "refs(synthref).json").read_text())
    meta = json.loads((synthref_dir / "meta.json").read_text())
    margin = meta["config"]["margin"] * meta["config"]["image_size"]
    scenes: dict[int, list[tuple[int, SceneObject]]] = {}
    for a in inst["annotations"]:
        at = a["attributes"]
        scenes.setdefault(a["image_id"], []).append(
            (a["id"], SceneObject(at["shape"], at["color"], at["size"], at["texture"], *a["center"]))
        )
    n = 0
    for ref in refs:
        ids = [i for i, _ in scenes[ref["image_id"]]]
        objs = [o for _, o in scenes[ref["image_id"]]]
        for s in ref["sentences"]:
            hit = resolve(parse(s["sent"]), objs, margin)
            assert [ids[i] for i in hit] == [ref["ann_id"]], (s["sent"], ref["ref_id"])
            assert parse(s["sent"])["kind"] == ref["kind"]
            n += 1
    assert n > 200


def test_kinds_shapes_textures_and_occlusion_are_present(synthref_dir, synthref):
    refs = json.loads((synthref_dir / "refs(synthref).json").read_text())
    assert {r["kind"] for r in refs} == set(KINDS)
    inst = json.loads((synthref_dir / "instances.json").read_text())
    assert len({a["attributes"]["shape"] for a in inst["annotations"]}) >= 8
    assert {a["attributes"]["texture"] for a in inst["annotations"]} == {"solid", "striped", "dotted"}
    # partial occlusion exists: some visible area is well below the full silhouette of its size class
    occluded = 0
    for a in inst["annotations"]:
        m = synthref.mask(a["id"])
        assert m.sum() == a["area"] > 0
        occluded += a["depth"] < max(b["depth"] for b in inst["annotations"] if b["image_id"] == a["image_id"])
    assert occluded > 0
    # several sentences per ref with paraphrases
    assert np.mean([len(r["sentences"]) for r in refs]) > 1.8


def test_splits_disjoint_and_testB_harder(synthref):
    img = {s: set(synthref.image_ids(s)) for s in ("train", "val", "testA", "testB")}
    keys = list(img)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not img[keys[i]] & img[keys[j]]
    st = dataset_stats(synthref)["splits"]
    assert st["testB"]["objects_per_image_mean"] > st["val"]["objects_per_image_mean"]
    assert st["testB"]["objects_per_image_mean"] > st["testA"]["objects_per_image_mean"] + 1.5
    assert st["testB"]["same_category_distractors_per_ref"] > st["testA"]["same_category_distractors_per_ref"]


def test_knobs_and_validation(tmp_path):
    cfg = SynthRefConfig(images=6, image_size=64, shapes=("circle", "square"), colors=("red", "blue"))
    rec = generate_image(cfg, 0)
    assert rec["image"]["height"] == 64
    assert {a["attributes"]["shape"] for a in rec["anns"]} <= {"circle", "square"}
    with pytest.raises(ValueError, match="unknown vocabulary"):
        SynthRefConfig(shapes=("circle", "blob"))
    with pytest.raises(ValueError, match="image_size"):
        SynthRefConfig(image_size=8)


def test_finished_generation_is_reused_and_config_change_refused(tmp_path):
    cfg = SynthRefConfig(images=8)
    generate(cfg, tmp_path, workers=1, show_progress=False)
    assert is_complete(tmp_path, cfg)
    stamp = (tmp_path / "meta.json").stat().st_mtime_ns
    generate(cfg, tmp_path, workers=1, show_progress=False)  # no-op
    assert (tmp_path / "meta.json").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="another config"):
        generate(SynthRefConfig(images=9), tmp_path, workers=1, show_progress=False)
    # an interrupted generation (no meta.json) is redone
    (tmp_path / "meta.json").unlink()
    generate(cfg, tmp_path, workers=1, show_progress=False)
    assert is_complete(tmp_path, cfg)


def test_same_loader_reads_synthref(synthref):
    s = synthref.samples("val")[0]
    img = synthref.load_image(s.image_id)
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    assert synthref.category(s.ann_id) in SHAPE_WORDS


def test_fixed_evaluation_split_sizes(tmp_path):
    """split_images keeps val / testA / testB at fixed sizes whatever the number of images; unset, the
    config (and so every dataset made before the field) compares as before."""
    cfg = SynthRefConfig(images=30, split_images={"val": 3, "testA": 2, "testB": 1})
    splits = [cfg.split_of(i) for i in range(30)]
    assert [splits.count(s) for s in ("train", "val", "testA", "testB")] == [24, 3, 2, 1]
    assert splits[:24] == ["train"] * 24  # contiguous blocks, train first, as with split_fractions
    assert "split_images" not in SynthRefConfig().to_dict() and cfg.to_dict()["split_images"]["val"] == 3
    with pytest.raises(ValueError, match="exactly"):
        SynthRefConfig(images=30, split_images={"val": 3, "testA": 2})
    with pytest.raises(ValueError, match="no training image"):
        SynthRefConfig(images=6, split_images={"val": 3, "testA": 2, "testB": 1})
