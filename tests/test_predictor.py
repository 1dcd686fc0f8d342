"""SegmenterPredictor: set_image once, predict many sentences; the same answers as segment()."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from l2l.config import load_config
from l2l.models.predictor import SegmenterPredictor
from l2l.models.segmenter import ModelConfig, Segmenter

SENTENCES = ["the red circle", "the left one", "a small blue square on the right", "the striped ring"]


def _model(sesm: bool) -> Segmenter:
    cfg = load_config(
        ModelConfig,
        None,
        [
            "visual.name=conv",
            "visual.path=null",
            "visual.conv_channels=[8,8,8,8]",
            "text.name=tiny",
            "decoder_dim=8",
            "image_size=64",
            f"sesm.enabled={str(sesm).lower()}",
        ],
    )
    torch.manual_seed(0)
    return Segmenter(cfg).eval()


@pytest.mark.parametrize("sesm", [False, True])
def test_predictor_matches_segment_and_batches_sentences(sesm, monkeypatch):
    m = _model(sesm)
    img = np.random.default_rng(2).integers(0, 256, (30, 40, 3)).astype(np.uint8)
    p = SegmenterPredictor(m, device="cpu", batch_size=3)
    stems = []
    real = m.stem
    monkeypatch.setattr(m, "stem", lambda x: stems.append(1) or real(x))
    p.set_image(img)
    masks, probs = p.predict(SENTENCES)
    assert len(stems) == 1  # the image went through the stem once for four sentences
    assert len(masks) == 4 and masks[0].shape == (30, 40) and masks[0].dtype == bool
    for t, pr in zip(SENTENCES, probs):
        _, ref = m.segment(img, t)
        assert np.allclose(pr, ref, atol=1e-5)
    mask, prob = p.predict(SENTENCES[1], threshold=0.0)
    assert mask.all() and prob.shape == (30, 40)
    if sesm:
        prior = np.zeros((30, 40), np.float32)
        prior[5:15, 5:20] = 1
        _, pp = p.predict(SENTENCES[0], prior=prior)
        assert np.allclose(pp, m.segment(img, SENTENCES[0], prior=prior)[1], atol=1e-5)
        _, ps = p.predict(SENTENCES[0], guidance="self")
        assert np.allclose(ps, m.segment(img, SENTENCES[0], guidance="self")[1], atol=1e-5)
    else:
        with pytest.raises(ValueError, match="needs a model with SESM"):
            p.predict(SENTENCES[0], guidance="self")


def test_predictor_refuses_misuse():
    p = SegmenterPredictor(_model(False), device="cpu")
    with pytest.raises(ValueError, match="before set_image"):
        p.predict("x")
    p.set_image(np.zeros((8, 8, 3), np.uint8))
    for bad in ([], [""], [None]):
        with pytest.raises(ValueError, match="non-empty sentences"):
            p.predict(bad)
    with pytest.raises(ValueError, match="threshold"):
        p.predict("x", threshold=1.5)


def test_batch_prediction_writes_masks_and_coco_rle_and_resumes(synthref_dir, tmp_path, capsys):
    import json

    from pycocotools import mask as mask_utils

    from l2l.cli import main
    from l2l.data.refer import ReferDataset

    model_dir = tmp_path / "model"
    _model(False).save_pretrained(model_dir)
    ds = ReferDataset.synthref(synthref_dir)
    recs = ds.samples("val")[:5]
    man = tmp_path / "pairs.jsonl"
    man.write_text(
        "".join(
            json.dumps({"image": str(ds.image_path(r.image_id)), "text": r.sentence, "id": f"s{r.sample_id}"}) + "\n"
            for r in recs
        )
    )
    out = tmp_path / "preds"
    argv = ["predict", "--ckpt", str(model_dir), "--manifest", str(man), "--out-dir", str(out), "--device", "cpu"]
    assert main(argv) == 0
    assert "5 pairs predicted" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert [r["id"] for r in res] == [f"s{r.sample_id}" for r in recs]
    for r in res:  # the RLE decodes to the PNG mask
        png = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(out / "masks" / f"{r['id']}.png")) > 127
        rle = {"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode()}
        assert np.array_equal(mask_utils.decode(rle).astype(bool), png) and r["area"] == int(png.sum())
    assert main(argv) == 0  # resumable: nothing left to do
    assert "0 pairs predicted, 5 already done" in capsys.readouterr().out
    # F4: a torn last line of results.jsonl: that pair is predicted again, the file stays readable
    log = out / "results.jsonl"
    log.write_bytes(log.read_bytes()[:-30])
    assert main(argv) == 0 and "1 pairs predicted, 4 already done" in capsys.readouterr().out
    assert [json.loads(x)["id"] for x in log.read_text().splitlines()] == [f"s{r.sample_id}" for r in recs]
    man.write_text(man.read_text() + '{"image": "x.png"}\n')
    assert main(argv) == 2 and "line 6" in capsys.readouterr().err
    assert main(["predict", "--ckpt", str(model_dir), "--image", "x.png"]) == 2  # single mode needs --text, --out
    assert "needs --image, --text and --out" in capsys.readouterr().err


def test_batch_prediction_lists_bad_pairs_and_predicts_the_rest(synthref_dir, tmp_path, capsys):
    """F8, F14, F18: list-valued texts, empty / NUL / over-long / path ids and a decompression bomb are listed
    in failed.json with their reasons; every other pair is predicted (the batch never stops for one)."""
    import json

    from PIL import Image

    from l2l.cli import main
    from l2l.data.refer import ReferDataset

    model_dir = tmp_path / "model"
    _model(False).save_pretrained(model_dir)
    ds = ReferDataset.synthref(synthref_dir)
    img = str(ds.image_path(ds.samples("val")[0].image_id))
    bomb = tmp_path / "bomb.png"
    Image.new("1", (14_000, 14_000)).save(bomb)  # 196 Mpx: above PIL's decompression-bomb error (2 × 89 Mpx)
    rows = [
        {"image": img, "text": "the red circle", "id": "good"},
        {"image": img, "text": ["a"], "id": "listtext"},
        {"image": img, "text": "x", "id": ""},
        {"image": img, "text": "x", "id": "a\u0000b"},
        {"image": img, "text": "x", "id": "n" * 300},
        {"image": img, "text": "x", "id": "../../evil"},
        {"image": str(bomb), "text": "x", "id": "bomb"},
        {"image": img, "text": "the blue square", "id": "good2"},
    ]
    man = tmp_path / "pairs.jsonl"
    man.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "preds"
    assert (
        main(["predict", "--ckpt", str(model_dir), "--manifest", str(man), "--out-dir", str(out), "--device", "cpu"])
        == 1
    )
    err = capsys.readouterr().err
    assert "6 pairs failed" in err and '  "": the id is empty' in err and '"a\\u0000b"' in err
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["good.png", "good2.png"]
    failed = {f["id"]: f["reason"] for f in json.loads((out / "failed.json").read_text())}
    assert set(failed) == {"listtext", "", "a\u0000b", "n" * 300, "../../evil", "bomb"}
    assert "text must be a string" in failed["listtext"] and "empty" in failed[""]
    assert "control character" in failed["a\u0000b"] and "longer than" in failed["n" * 300]
    assert "cannot name a file" in failed["../../evil"] and "too large to open safely" in failed["bomb"]
    assert not (tmp_path / "evil.png").exists() and not (tmp_path.parent / "evil.png").exists()


def test_predictor_with_a_swin_encoder_whose_stem_is_a_tuple():
    from .test_models import SWIN, TINY_BERT
    from .test_models import _model as paper_like

    m = paper_like(*SWIN, *TINY_BERT, "image_size=64").eval()
    img = np.random.default_rng(3).integers(0, 256, (40, 50, 3)).astype(np.uint8)
    p = SegmenterPredictor(m, device="cpu")
    p.set_image(img)
    _, probs = p.predict(SENTENCES[:2])
    for t, pr in zip(SENTENCES[:2], probs):
        assert np.allclose(pr, m.segment(img, t)[1], atol=1e-5)


def test_manifest_paths_beside_the_manifest_or_in_the_working_directory(tmp_path, monkeypatch):
    import json

    from l2l.models.batch_predict import read_manifest

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.png").write_bytes(b"")
    (tmp_path / "b.png").write_bytes(b"")
    man = tmp_path / "m" / "pairs.jsonl"
    man.write_text(
        json.dumps({"image": "a.png", "text": "x"}) + "\n" + json.dumps({"image": "b.png", "text": "y"}) + "\n"
    )
    monkeypatch.chdir(tmp_path)
    a, b = read_manifest(man)
    assert a.image == str(tmp_path / "m" / "a.png") and b.image == "b.png"


def test_one_device_rule_for_every_command(monkeypatch):
    """`--device auto` means the same everywhere (eval, predict, priors generate): the GPU of this
    torchrun rank when one is visible, plain `cuda` outside torchrun, else the CPU; an explicit
    CUDA device without a GPU is refused."""
    from l2l.errors import UsageError
    from l2l.utils import devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert devices.best_device() == "cuda"
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert devices.best_device("auto") == "cuda:3"
    assert devices.best_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.best_device() == "cpu"
    with pytest.raises(UsageError, match="no GPU"):
        devices.best_device("cuda:1")
