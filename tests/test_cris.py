"""CRIS, Pseudo-RIS's target model (models/cris.py): built on the dual-encoder interface (the stand-in and a
tiny random real CLIP), trained by the trainer, saved and loaded, refused where it has no place."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from l2l.config import from_dict, load_config
from l2l.errors import UsageError
from l2l.models.cris import CRIS, CRISStem
from l2l.models.segmenter import ModelConfig, Segmenter, build_segmenter

from .conftest import write_tiny_clip

TOWERS = {"conv_channels": [8, 16, 16, 24], "embed_dim": 16, "text_dim": 16, "crop_size": 32}
SMALL = {"neck_dim": 16, "dim": 16, "layers": 1, "heads": 2, "ffn": 32, "proj_dim": 8}


def _tiny(**cris) -> ModelConfig:
    return from_dict(
        ModelConfig,
        {
            "arch": "cris",
            "image_size": 64,
            "sesm": {"enabled": False},
            "text": {"name": "tiny", "tiny_dim": 16, "tiny_layers": 1},
            "cris": {"pretrained": False, "towers": {"kind": "stand-in", "config": TOWERS}, **SMALL, **cris},
        },
        "model",
    )


def test_cris_builds_the_paper_parts_and_reads_the_sentence():
    torch.manual_seed(0)
    model = build_segmenter(_tiny())
    assert isinstance(model, CRIS) and isinstance(model, Segmenter) and not model.uses_guidance
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert {"visual", "text", "sentence_proj", "neck", "vl_decoder", "projector"} <= names
    x = torch.rand(2, 3, 64, 64)
    stem = model.stem(x)
    assert isinstance(stem, CRISStem) and [m.shape[-1] for m in stem.maps] == [8, 4, 2]  # strides 8, 16, 32
    logits = model(x, ["the red ball on the left", "the second blue square"])
    assert logits.shape == (2, 2, 64, 64) and torch.all(logits[:, 0] == 0)  # [0, score]: softmax = σ(score)
    model.eval()
    with torch.no_grad():
        a = model(x, ["the red ball", "the red ball"])
        b = model(x, ["a green star at the top", "the red ball"])
    assert not torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1], atol=1e-6)
    at8 = build_segmenter(_tiny(fuse_stride=8))  # [ours] the neck and decoder at stride 8: other tokens, same output
    assert at8(x, ["a", "b"]).shape == (2, 2, 64, 64)
    model.train()
    model(x, ["a", "b"])[:, 1].mean().backward()
    for part in ("visual", "neck", "vl_decoder", "projector", "sentence_proj"):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(part + ".")]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), part


def test_cris_is_saved_and_loaded_as_a_segmenter(tmp_path):
    torch.manual_seed(1)
    model = build_segmenter(_tiny()).eval()
    model.save_pretrained(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "config.json").read_text())["model"]
    assert doc["arch"] == "cris" and doc["cris"]["towers"]["kind"] == "stand-in"
    back = Segmenter.from_pretrained(tmp_path / "m")
    assert isinstance(back, CRIS)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x, ["the red ball"]), back(x, ["the red ball"]))
    from l2l.serve.card import model_card

    card = model_card(tmp_path / "m", back)
    assert card.visual.startswith("CRIS on the stand-in CLIP") and not card.guidance
    mask, prob = back.segment(np.zeros((40, 50, 3), np.uint8), "the red ball", domain_check=False)
    assert mask.shape == prob.shape == (40, 50)
    with pytest.raises(UsageError, match="no guidance"):
        back.segment(np.zeros((40, 50, 3), np.uint8), "the red ball", prior=np.zeros((40, 50)))
    with pytest.raises(UsageError, match="no guidance"):
        back(x, ["a"], torch.zeros(1, 1, 64, 64))


def test_cris_starts_from_the_shipped_stand_in_clip():
    from l2l.foundation.dual_encoder import DualEncoder

    cfg = from_dict(
        ModelConfig,
        {"arch": "cris", "sesm": {"enabled": False}, "text": {"name": "minilm", "freeze": True}, "cris": SMALL},
        "model",
    )
    model = build_segmenter(cfg)
    ref = DualEncoder.from_pretrained("builtin:synthpool-clip", text=model.text).net
    for name, value in ref.encoder.state_dict().items():
        assert torch.equal(model.visual.state_dict()[name], value), name
    for name, value in ref.text_proj.state_dict().items():
        assert torch.equal(model.sentence_proj.state_dict()[name], value), name
    bad = {"arch": "cris", "sesm": {"enabled": False}, "text": {"name": "tiny"}, "cris": SMALL}
    with pytest.raises(UsageError, match="MiniLM"):
        build_segmenter(from_dict(ModelConfig, bad, "model"))


def test_cris_on_a_real_clip_folder(tmp_path):
    torch.manual_seed(0)
    write_tiny_clip(tmp_path / "clip", text_layers=2, vision_layers=4)
    cfg = from_dict(
        ModelConfig,
        {
            "arch": "cris",
            "image_size": 64,
            "sesm": {"enabled": False},
            "cris": {"clip": str(tmp_path / "clip"), **SMALL},
        },
        "model",
    )
    model = build_segmenter(cfg)
    assert model.kind == "clip" and model.visual.ranges == [(0, 1), (1, 2), (2, 3), (3, 4)]
    x = torch.rand(2, 3, 64, 64)  # not CLIP's 32 px: the position embeddings are interpolated
    assert [m.shape[-1] for m in model.stem(x).maps] == [16, 8, 4]  # the 8-px patch grid, resampled ×2 / ×½
    model(x, ["the red ball", "a star"])[:, 1].mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.text.parameters())
    model.eval().save_pretrained(tmp_path / "saved")
    back = Segmenter.from_pretrained(tmp_path / "saved")  # no CLIP folder needed: the towers are recorded
    with torch.no_grad():
        assert torch.allclose(model(x, ["the red ball", "a"]), back(x, ["the red ball", "a"]), atol=1e-5)


def test_cris_refuses_the_lavt_parts():
    with pytest.raises(UsageError, match="model.objects.enabled"):
        from_dict(ModelConfig, {"arch": "cris", "sesm": {"enabled": False}, "objects": {"enabled": True}}, "model")
    with pytest.raises(UsageError, match="model.sesm.enabled"):
        from_dict(ModelConfig, {"arch": "cris"}, "model")
    with pytest.raises(UsageError, match="model.arch"):
        from_dict(ModelConfig, {"arch": "unet"}, "model")
    with pytest.raises(UsageError, match="fuse_stride"):
        from_dict(ModelConfig, {"arch": "cris", "sesm": {"enabled": False}, "cris": {"fuse_stride": 4}}, "model")
    with pytest.raises(UsageError, match="odd"):
        from_dict(ModelConfig, {"arch": "cris", "sesm": {"enabled": False}, "cris": {"kernel": 2}}, "model")
    with pytest.raises(UsageError, match="build_segmenter"):
        Segmenter(from_dict(ModelConfig, {"arch": "cris", "sesm": {"enabled": False}}, "model"))


def test_the_trainer_trains_cris_and_resumes(synthref_dir, tmp_path):
    from safetensors.torch import load_file

    from l2l.engine.trainer import TrainConfig, Trainer

    overrides = [
        f"data.root={synthref_dir}",
        "model.arch=cris",
        "model.image_size=64",
        "model.sesm.enabled=false",
        "model.text.name=tiny",
        "model.text.freeze=false",
        "model.text.tiny_dim=16",
        "model.text.tiny_layers=1",
        "model.cris.pretrained=false",
        "model.cris.towers=" + json.dumps({"kind": "stand-in", "config": TOWERS}),
        *[f"model.cris.{k}={v}" for k, v in SMALL.items()],
        "data.size=64",
        "data.workers=0",
        "data.eval_max_samples=8",
        "batch_size=4",
        "epochs=1",
        "ckpt_every=1000",
        "log_every=1",
        "device=cpu",
    ]
    Trainer(load_config(TrainConfig, None, [*overrides, "max_steps=4"]), tmp_path / "ref", show_progress=False).fit()
    Trainer(load_config(TrainConfig, None, [*overrides, "max_steps=2"]), tmp_path / "cut", show_progress=False).fit()
    Trainer(load_config(TrainConfig, None, [*overrides, "max_steps=4"]), tmp_path / "cut", show_progress=False).fit()
    a, b = (
        load_file(str(tmp_path / "ref" / "last" / "model.safetensors")),
        load_file(str(tmp_path / "cut" / "last" / "model.safetensors")),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logged = [json.loads(x) for x in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == [1, 2, 3, 4]
    assert isinstance(Segmenter.from_pretrained(tmp_path / "ref"), CRIS)
