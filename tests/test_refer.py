"""The REFER loader on a RefCOCO-shaped fixture, the restricted unpickler, and clear errors."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from l2l.data.refer import DataError, ReferDataset, length_bucket
from l2l.utils.safe_pickle import restricted_load, restricted_loads


def test_reads_refer_layout_with_polygons_and_rle(refer_root):
    root, expected = refer_root
    ds = ReferDataset.refer(root, "refcoco", "unc")
    assert ds.splits == ["testA", "testB", "train", "val"]
    # one sample per (ref, sentence)
    assert len(ds.samples()) == 6 * 4 * 2 and len(ds.samples("train")) == 3 * 4 * 2
    for ann_id, exp in expected.items():
        m = ds.mask(ann_id)
        assert m.dtype == bool and m.shape == (60, 80)
        assert np.array_equal(m, exp), ann_id
    two_part = ds.mask(10001)
    assert two_part[10, 45] and two_part[40, 70] and not two_part[30, 45]  # both parts, nothing between
    assert not ds.mask(10003)[43, 34]  # the hole of the RLE mask
    s = ds.samples("val")[0]
    assert ds.load_image(s.image_id).shape == (60, 80, 3)
    assert ds.category(s.ann_id) in {"person", "dog", "cup", "car"}
    assert ds.box(s.ann_id) == (0.0, 0.0, 1.0, 1.0)
    assert ds.image_ids("train") == [1000, 1001, 1002]


def test_open_dispatches_and_validates_names(refer_root):
    root, _ = refer_root
    assert ReferDataset.open(root, "refcoco").name == "refcoco(unc)"
    with pytest.raises(ValueError, match="unknown dataset"):
        ReferDataset.open(root, "refclef")
    with pytest.raises(ValueError, match="splits by"):
        ReferDataset.open(root, "refcoco+", "umd")
    with pytest.raises(FileNotFoundError, match="SynthRef"):
        ReferDataset.open(root)


def test_missing_file_is_named(refer_root):
    root, _ = refer_root
    os.remove(root / "refcoco" / "refs(unc).p")
    with pytest.raises(FileNotFoundError, match=r"refs\(unc\)\.p"):
        ReferDataset.refer(root, "refcoco")


def test_ref_with_missing_annotation_is_named(refer_root):
    root, _ = refer_root
    p = root / "refcoco" / "instances.json"
    inst = json.loads(p.read_text())
    inst["annotations"] = [a for a in inst["annotations"] if a["id"] != 10002]
    p.write_text(json.dumps(inst))
    with pytest.raises(DataError, match="annotation 10002"):
        ReferDataset.refer(root, "refcoco")


def test_unreadable_and_missing_images_are_named(refer_root):
    root, _ = refer_root
    ds = ReferDataset.refer(root, "refcoco")
    path = ds.image_path(1003)
    path.write_bytes(b"this is not a jpeg")
    with pytest.raises(DataError, match="COCO_train2014_000000001003.jpg"):
        ds.load_image(1003)
    path.unlink()
    with pytest.raises(FileNotFoundError, match="COCO_train2014_000000001003.jpg"):
        ds.load_image(1003)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "refs(unc).p"
    evil.write_bytes(pickle.dumps([{"ref_id": 1, "x": _Evil(marker)}], protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        restricted_load(evil)
    assert not marker.exists()
    # the same file through the dataset loader: refused as well
    (tmp_path / "refcoco").mkdir()
    (tmp_path / "refcoco" / "instances.json").write_text('{"images": [], "annotations": [], "categories": []}')
    (tmp_path / "refcoco" / "refs(unc).p").write_bytes(evil.read_bytes())
    (tmp_path / "images" / "mscoco" / "images" / "train2014").mkdir(parents=True)
    with pytest.raises(DataError, match="refused to load .*refs\\(unc\\).p.*refusing to load"):
        ReferDataset.refer(tmp_path, "refcoco")
    assert not marker.exists()


@pytest.mark.parametrize(
    "instances, refs, says",
    [
        ('{"images": [], "annot', "[]", "instances.json: not valid JSON"),  # F9: truncated
        ("[1, 2]", "[]", "expected a COCO instances object"),
        ('{"images": [{"x": 1}], "annotations": [], "categories": []}', "[]", "image entry 0 has no integer id"),
        ('{"images": [], "annotations": [], "categories": []}', "[{", "refs(synthref).json: not valid JSON"),  # F10
        (
            '{"images": [{"id": 1}], "annotations": [{"id": 2}], "categories": []}',
            '[{"ref_id": 1, "ann_id": 2, "image_id": 1, "split": "val", "sentences": [{"x": 1}]}]',
            "malformed sentence",
        ),
        ("\xff\xfe", "[]", "not valid JSON"),
    ],
)
def test_damaged_dataset_files_are_one_line(tmp_path, capsys, instances, refs, says):
    """F9, F10, F11: damaged instances.json / refs files (and the refused pickle above) end in one
    ``l2l: error:`` line naming the file, not a traceback."""
    from l2l.cli import main

    (tmp_path / "images").mkdir()
    (tmp_path / "meta.json").write_text('{"complete": true}')
    (tmp_path / "instances.json").write_bytes(instances.encode("latin-1"))
    (tmp_path / "refs(synthref).json").write_text(refs)
    assert main(["data", "stats", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("l2l: error:") and says in err and "Traceback" not in err


def test_restricted_unpickler_accepts_plain_data():
    data = [{"a": [1, 2.5, "x", None, True], "b": (1, 2), "c": {3, 4}, "d": b"bytes"}]
    for proto in (0, 2, 4, 5):
        assert restricted_loads(pickle.dumps(data, protocol=proto)) == data
    with pytest.raises(pickle.UnpicklingError, match="<bytes>"):
        restricted_loads(b"\x80\x02garbage")


def test_length_buckets_on_real_expressions(real_expressions):
    from collections import Counter

    c = Counter(length_bucket(len(e["sent"].split())) for e in real_expressions)
    # the counts stated in shared/data/README.md
    assert c == {"1-3": 12896, "4-6": 6813, "7-10": 1642, "11+": 235}


def _read_refer(data_root, dataset, split_by):
    """A reader written from the REFER format's description (not the project's loader): refs(<split_by>).p
    beside instances.json under data_root/dataset, images under data_root/images/mscoco/images/train2014;
    each ref names its annotation, whose segmentation is COCO RLE or polygons."""
    import json as _json

    from pycocotools import mask as mu

    from l2l.utils.safe_pickle import restricted_load

    refs = restricted_load(Path(data_root) / dataset / f"refs({split_by}).p")
    inst = _json.loads((Path(data_root) / dataset / "instances.json").read_text())
    anns = {a["id"]: a for a in inst["annotations"]}
    imgs = {i["id"]: i for i in inst["images"]}
    out = {}
    for r in refs:
        a, im = anns[r["ann_id"]], imgs[r["image_id"]]
        seg = a["segmentation"]
        rle = mu.frPyObjects(seg, im["height"], im["width"]) if isinstance(seg, list) else seg
        m = mu.decode(mu.merge(rle) if isinstance(rle, list) else rle)
        assert (Path(data_root) / "images/mscoco/images/train2014" / r["file_name"]).exists()
        for s in r["sentences"]:
            out[s["sent_id"]] = (r["split"], s["sent"], s["tokens"], m)
    return out


def test_synthref_exports_to_the_refer_layout(synthref_dir, tmp_path, capsys):
    from l2l.cli import main

    out = tmp_path / "refer_root"
    assert main(["data", "export", "--data", str(synthref_dir), "--format", "refer", "--out", str(out)]) == 0
    assert "refs" in capsys.readouterr().out and (out / "refcoco" / "refs(unc).p").exists()
    src = ReferDataset.open(synthref_dir)
    got = _read_refer(out, "refcoco", "unc")
    assert len(got) == len(src.samples())
    for r in src.samples():
        split, sent, tokens, m = got[r.sample_id]
        assert (split, sent) == (r.split, r.sentence) and tokens
        assert np.array_equal(m.astype(bool), src.mask(r.ann_id).astype(bool))
    # the project's own REFER loader opens the export too, with the same samples
    back = ReferDataset.open(out, "refcoco", "unc")
    assert [(s.sample_id, s.split, s.sentence) for s in back.samples()] == [
        (s.sample_id, s.split, s.sentence) for s in src.samples()
    ]
    assert main(["data", "export", str(synthref_dir), "--out", str(tmp_path / "x"), "--name", "synthref"]) == 2
    assert "opens only" in capsys.readouterr().err
    # one spelling for the dataset across commands: `data stats DIR` and `data stats --data DIR`
    assert main(["data", "stats", "--data", str(synthref_dir)]) == 0
    assert main(["data", "stats", str(synthref_dir), "--data", str(tmp_path)]) == 2
    assert "two datasets given" in capsys.readouterr().err
