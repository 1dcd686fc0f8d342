"""The pretraining world: pool disjointness, dense targets, the model folder (card, loading by
path), the shipped encoder against its card; frozen cached text; coordinate embedding."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from l2l.config import load_config
from l2l.data.pool import HEADS, POOL_DOMAIN, PoolConfig, check_disjoint_seed, make_pool, pool_scene
from l2l.models.segmenter import ModelConfig, Segmenter
from l2l.pretrain.visual import (
    VisualPretrainConfig,
    dense_metrics,
    eval_pool,
    load_dense_heads,
    load_visual_folder,
    pretrain_visual,
    rebuild_check,
)
from l2l.utils.folders import BUILTIN

TINY = dict(
    conv_channels=(8, 8, 16, 16),
    decoder_dim=8,
    train_images=24,
    eval_images=6,
    steps=6,
    batch_size=4,
    log_every=2,
    workers=1,
    pool=PoolConfig(size=32),
)


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_pool_is_disjoint_from_every_synthref_split(synthref_dir):
    """No SynthRef image (any split) appears in the pool: compared as raw, unshifted 128-px renders
    of the pool and as the pool's own images, and the seed domains differ."""
    from l2l.data.synthref import SynthRefConfig

    synth = {_digest(np.asarray(Image.open(p).convert("RGB"))) for p in sorted((synthref_dir / "images").glob("*.png"))}
    assert len(synth) == 80
    raw = PoolConfig(size=128, zoom=(1.0, 1.0), gamma=(1.0, 1.0), contrast=(1.0, 1.0), cast=0.0, seed=3)
    for cfg in (raw, PoolConfig(size=128, seed=3), PoolConfig(size=128, seed=0)):
        images, _ = make_pool(cfg, 0, 80)
        assert not synth & {_digest(im) for im in images}
    meta = json.loads((synthref_dir / "meta.json").read_text())
    assert meta["config"]["seed"] != POOL_DOMAIN
    with pytest.raises(ValueError, match="reserved"):
        check_disjoint_seed(POOL_DOMAIN)
    with pytest.raises(ValueError, match="reserved"):
        SynthRefConfig(seed=POOL_DOMAIN)


def test_pool_targets_are_consistent_and_deterministic():
    cfg = PoolConfig(size=64)
    img, tg = pool_scene(cfg, 5)
    img2, tg2 = pool_scene(cfg, 5)
    assert np.array_equal(img, img2) and all(np.array_equal(tg[k], tg2[k]) for k in HEADS)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    fg = tg["shape"] > 0
    assert fg.any() and (~fg).any()
    for k in ("color", "texture", "size"):
        assert np.array_equal(tg[k] > 0, fg), k  # every head labels the same foreground
        assert tg[k].max() < HEADS[k]
    assert set(np.unique(tg["boundary"])) <= {0, 1} and tg["boundary"][fg].any()
    assert not np.array_equal(pool_scene(cfg, 6)[0], img)


def test_pretrain_writes_a_card_and_the_folder_loads_by_path(tmp_path):
    cfg = VisualPretrainConfig(**TINY)
    card = pretrain_visual(cfg, tmp_path / "enc", show_progress=False, command="test")
    files = {p.name for p in (tmp_path / "enc").iterdir()}
    assert {"config.json", "model.safetensors", "card.json", "README.md", "heads.safetensors"} <= files
    saved = json.loads((tmp_path / "enc" / "card.json").read_text())
    assert saved == json.loads(json.dumps(card))
    assert saved["training_data"]["pool"]["seed"] == 0 and saved["steps"] == 6 and saved["wall_seconds"] > 0
    assert saved["training_data"]["referring_expressions"] is False
    assert [r["step"] for r in saved["trajectory"]] == [2, 4, 6]
    assert set(saved["metrics_eval_pool"]) == {
        "fg_iou",
        "shape_acc",
        "color_acc",
        "texture_acc",
        "size_acc",
        "boundary_f1",
    }
    assert "stand-in" in (tmp_path / "enc" / "README.md").read_text()

    # the card's metrics are those of the stored weights
    _, state = load_visual_folder(tmp_path / "enc")
    heads, _, _ = load_dense_heads(tmp_path / "enc")
    assert dense_metrics(heads, *eval_pool(cfg)) == saved["metrics_eval_pool"]

    # model.visual loads the folder by path, as a Swin folder would be; a saved segmenter no longer needs it
    mc = load_config(
        ModelConfig,
        None,
        [
            "visual.name=conv",
            f"visual.path={tmp_path / 'enc'}",
            "text.name=tiny",
            "text.tiny_dim=16",
            "decoder_dim=8",
            "sesm.enabled=false",
            "coords=true",
        ],
    )
    model = Segmenter(mc)
    assert model.visual.channels == (8, 8, 16, 16)
    for k, v in state.items():
        assert torch.equal(model.visual.state_dict()[k], v), k
    model.save_pretrained(tmp_path / "seg")
    shutil.rmtree(tmp_path / "enc")
    again = Segmenter.from_pretrained(tmp_path / "seg")
    assert json.loads((tmp_path / "seg" / "config.json").read_text())["model"]["visual"]["init_from"].endswith("enc")
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(model.eval().predict(x, ["a red ring"]), again.predict(x, ["a red ring"]), atol=1e-6)


def test_bad_visual_folders_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_visual_folder(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="config.json"):
        load_visual_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="unknown builtin"):
        load_visual_folder("builtin:nothing")


SHIPPED = BUILTIN["synthpool-conv"]


@pytest.mark.slow
@pytest.mark.skipif(not (SHIPPED / "card.json").exists(), reason="no shipped encoder")
def test_shipped_encoder_matches_its_card():
    """The shipped weights give the card's metrics on the card's held-out pool, and re-running the
    card's command reproduces the card's loss trajectory (its first 40 steps)."""
    heads, cfg, card = load_dense_heads("builtin:synthpool-conv")
    doc, _ = load_visual_folder("builtin:synthpool-conv")
    assert doc["conv_channels"] == list(cfg.conv_channels)
    got = dense_metrics(heads, *eval_pool(cfg))
    for k, v in card["metrics_eval_pool"].items():
        assert got[k] == pytest.approx(v, abs=1e-4), k
    assert sum(p.stat().st_size for p in SHIPPED.iterdir()) < 5_000_000
    res = rebuild_check("builtin:synthpool-conv", 40)
    assert len(res["compared"]) == 40 // cfg.log_every and res["max_rel_diff"] < 1e-3, res


def test_frozen_text_encoder_caches_per_sentence_features():
    mc = load_config(ModelConfig, None, ["text.name=minilm", "text.freeze=true"])
    from l2l.models.segmenter import build_text_encoder

    enc = build_text_encoder(mc.text)
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.model.training  # no dropout while the segmenter trains
    a, ma = enc.encode(["the red ball", "the second small star from the left"])
    b, mb = enc.encode(["the second small star from the left"])
    assert torch.equal(a[1, : mb.shape[1]], b[0]) and torch.equal(ma[1, : mb.shape[1]], mb[0])
    assert len(enc._cache) == 2 and not a.requires_grad
    # the cached features are the encoder's own (same as an uncached pass of the sentence alone)
    enc.use_cache = False
    c, _ = enc.encode(["the red ball"])
    assert torch.allclose(a[0, : c.shape[1]], c[0], atol=1e-5)
    with pytest.raises(ValueError, match="freeze"):
        build_text_encoder(load_config(ModelConfig, None, ["text.name=tiny", "text.freeze=true"]).text)


def test_coordinate_embedding_starts_at_zero_and_learns_position():
    mc = load_config(
        ModelConfig,
        None,
        [
            "visual.name=conv",
            "visual.conv_channels=[8,8,16,16]",
            "text.name=tiny",
            "text.tiny_dim=16",
            "decoder_dim=8",
            "sesm.enabled=false",
        ],
    )
    torch.manual_seed(0)
    plain = Segmenter(mc).eval()
    mc.coords = True
    torch.manual_seed(0)
    withc = Segmenter(mc).eval()
    x = torch.rand(2, 3, 32, 32)
    withc.load_state_dict(plain.state_dict(), strict=False)
    assert torch.equal(plain(x, ["a", "b"]), withc(x, ["a", "b"]))  # zero-initialised: same function
    withc.train()
    withc(x, ["a", "b"])[:, 1].mean().backward()
    assert withc.coords[0].weight.grad.abs().sum() > 0


def test_malformed_shapes_are_refused_in_one_line():
    """A conv encoder needs four stage widths and the pool's ranges are pairs: anything else is a
    UsageError naming the key, not an unpacking error deep inside."""
    from l2l.data.pool import PoolConfig
    from l2l.errors import UsageError
    from l2l.nets.backbones import VisualConfig, build_visual_encoder

    with pytest.raises(UsageError, match="conv_channels needs 4"):
        build_visual_encoder(VisualConfig(name="conv", conv_channels=[8, 16, 32]))
    with pytest.raises(UsageError, match="pool zoom must be a pair"):
        PoolConfig(zoom=(0.7, 0.8, 0.9))
    assert PoolConfig(zoom=[0.7, 1.0]).zoom == (0.7, 1.0)
