"""Segmenter: shapes for every encoder / text / SESM variant, the zero-init property, guidance, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from l2l.config import load_config
from l2l.models.segmenter import ModelConfig, Segmenter
from l2l.models.sesm import SESMConfig, StageFusion
from l2l.nets.backbones import ConvEncoder

SWIN = ["visual.name=swin", "visual.pretrained=false"]
TINY_BERT = ["text.name=hf-config"]
TEXTS = ["the red ball on the left", "second star from the top"]


def _model(*overrides) -> Segmenter:
    cfg = load_config(ModelConfig, None, ["decoder_dim=16", "sesm.heads=2", *overrides])
    if cfg.visual.name == "swin":
        cfg.visual.swin = dict(
            image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 2], window_size=2
        )
    if cfg.text.name == "hf-config":
        cfg.text.hf_config = dict(
            vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
        )
    torch.manual_seed(0)
    return Segmenter(cfg)


@pytest.mark.parametrize(
    "visual", [["visual.name=conv", "visual.conv_channels=[8,16,16,32]"], ["visual.name=efficientnet_lite0"], SWIN]
)
@pytest.mark.parametrize("text", [["text.name=tiny", "text.tiny_dim=16"], TINY_BERT, ["text.name=minilm"]])
def test_every_encoder_pair_gives_logits_and_gradients(visual, text):
    m = _model(*visual, *text)
    x = torch.rand(2, 3, 64, 64)
    y = m(x, TEXTS, torch.rand(2, 1, 64, 64))
    assert y.shape == (2, 2, 64, 64) and torch.isfinite(y).all()
    y[:, 1].mean().backward()
    assert m.decoder.head.weight.grad is not None and m.fusions[0].out.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "sesm",
    [
        ["sesm.enabled=false"],
        ["sesm.streams=semantic"],
        ["sesm.streams=structural"],
        ["sesm.gating=fixed"],
        ["sesm.stage_modes=[global,global,local,local]"],
        ["sesm.stage_modes=[local,local,local,local]"],
    ],
)
def test_sesm_variants(sesm):
    m = _model("visual.name=conv", "visual.conv_channels=[8,16,16,32]", "text.name=tiny", "text.tiny_dim=16", *sesm)
    y = m(torch.rand(2, 3, 64, 64), TEXTS, torch.rand(2, 1, 64, 64))
    assert y.shape == (2, 2, 64, 64)
    cfg = m.cfg.sesm
    assert m.uses_guidance == cfg.uses_guidance
    w = m.fusions[0].stream_weights()
    expected = {"semantic": (1.0, 0.0), "structural": (0.0, 1.0)}.get(cfg.streams, (0.5, 0.5))
    assert w == pytest.approx(expected)
    assert [f.sesm.structural.mode for f in m.fusions if f.sesm is not None and hasattr(f.sesm, "structural")] == (
        [] if cfg.streams == "semantic" else list(cfg.stage_modes)
    )
    assert all(hasattr(f, "semantic") and hasattr(f, "sem_mm") for f in m.fusions)  # LAVT's fusion in every variant
    assert all((f.sesm is None) == (not cfg.enabled) for f in m.fusions)


SESM_VARIANTS = {
    "no SESM": ["sesm.enabled=false"],
    "semantic only": ["sesm.streams=semantic"],
    "structural only": ["sesm.streams=structural"],
    "fixed 0.5/0.5": ["sesm.gating=fixed"],
    "full": [],
}


def test_table4_variants_are_five_models_that_all_read_the_sentence():
    """Issue 33: SESM adds its fields on top of the segmenter's own language fusion, so Table 4's
    variants and the model without SESM have five different parameter sets, and every one of them
    answers another sentence with another prediction (the structural-only model too)."""
    keys = {}
    for name, over in SESM_VARIANTS.items():
        m = _model(*CONV_TINY, *over).eval()
        keys[name] = frozenset(k for k, _ in m.named_parameters())
        with torch.no_grad():
            for f in m.fusions:
                for lin in (f.out, *([f.sesm.out] if f.sesm is not None else [])):
                    torch.nn.init.normal_(lin.weight, std=0.5)
            x, g = torch.rand(2, 3, 64, 64), torch.rand(2, 1, 64, 64)
            a = m(x, TEXTS, g if m.uses_guidance else None)
            b = m(x, TEXTS[::-1], g if m.uses_guidance else None)
        assert not torch.allclose(a, b, atol=1e-5), name
    assert len(set(keys.values())) == 5
    # the earlier layout stays a switch: there "semantic only" is the model without SESM
    old = _model(*CONV_TINY, "sesm.base_fusion=false", "sesm.streams=semantic")
    assert frozenset(k for k, _ in old.named_parameters()) == keys["no SESM"]
    old_struct = _model(*CONV_TINY, "sesm.base_fusion=false", "sesm.streams=structural")
    assert not any(".semantic." in k for k, _ in old_struct.named_parameters())  # the text-blind model of before


def test_zero_init_equals_the_plain_encoder():
    """At initialisation the fused encoder's stage outputs equal the plain visual encoder's,
    whatever the text and the guidance (Eq. 3 with W_o = 0)."""
    m = _model("visual.name=efficientnet_lite0", "text.name=tiny", "text.tiny_dim=16").eval()
    x = torch.rand(2, 3, 64, 64)
    from l2l.data.augment import normalize

    plain = m.visual(normalize(x))
    tokens, tmask = m.text.encode(TEXTS)
    h = m.visual.stem(normalize(x))
    g = torch.rand(2, 1, 64, 64)
    for i in range(4):
        f = m.fusions[i](m.visual.stage(i, h), tokens, tmask, g)
        assert torch.equal(f, plain[i]), i
        h = m.visual.to_next(i, f)
    # and after a training step the fusion is no longer the identity
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=1.0)
    m(x, TEXTS, g)[:, 1].mean().backward()
    opt.step()
    f = m.fusions[0](m.visual.stage(0, m.visual.stem(normalize(x))), tokens, tmask, g)
    assert not torch.equal(f, m.visual(normalize(x))[0])


def test_guidance_none_uses_the_learned_null_map_and_prior_dropout():
    m = _model(
        "visual.name=conv",
        "visual.conv_channels=[8,16,16,32]",
        "text.name=tiny",
        "text.tiny_dim=16",
        "sesm.prior_dropout=1.0",
    ).eval()
    x, prior = torch.rand(2, 3, 64, 64), torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.nn.init.normal_(m.fusions[2].sesm.out.weight)  # make guidance matter (SESM on top of the fusion)
        none = m(x, TEXTS)
        with_prior = m(x, TEXTS, prior)
        no_flag = m(x, TEXTS, prior, torch.tensor([False, False]))
        assert not torch.allclose(none, with_prior) and torch.allclose(none, no_flag)
        m.train()  # prior dropout 1.0: every prior replaced by the null map in training
        assert torch.allclose(m(x, TEXTS, prior), none, atol=1e-6)
    m.eval()
    for mode in ("none", "prior", "self"):
        p = m.predict(x, TEXTS, mode, prior)
        assert p.shape == (2, 64, 64) and ((0 <= p) & (p <= 1)).all()
    with pytest.raises(ValueError, match="needs a prior"):
        m.predict(x, TEXTS, "prior")
    base = _model("visual.name=conv", "visual.conv_channels=[8,16,16,32]", "text.name=tiny", "sesm.enabled=false")
    assert not base.uses_guidance and base.null_map is None


def test_save_and_from_pretrained_round_trip(tmp_path):
    m = _model(*SWIN, *TINY_BERT).eval()
    x = torch.rand(1, 3, 64, 64)
    m.save_pretrained(tmp_path / "model")
    m2 = Segmenter.from_pretrained(tmp_path / "model")
    assert torch.allclose(m.predict(x, TEXTS[:1]), m2.predict(x, TEXTS[:1]), atol=1e-6)
    mask, prob = m2.segment(np.zeros((50, 70, 3), np.uint8), "a thing")
    assert mask.shape == (50, 70) and mask.dtype == bool and prob.shape == (50, 70)
    masks, probs = m2.segment([np.zeros((20, 30, 3), np.uint8)] * 2, ["a", "b"])
    assert len(masks) == 2
    with pytest.raises(ValueError, match="empty"):
        m2.segment(np.zeros((20, 30, 3), np.uint8), " ")
    with pytest.raises(FileNotFoundError):
        Segmenter.from_pretrained(tmp_path / "nothing")


def test_stage_fusion_config_validation():
    with pytest.raises(ValueError):
        SESMConfig(streams="both-ish")
    with pytest.raises(ValueError):
        SESMConfig(stage_modes=("local", "local"))
    assert SESMConfig(enabled=False).streams == "semantic" and not SESMConfig(enabled=False).uses_guidance
    f = StageFusion(16, 8, "global", SESMConfig())
    with pytest.raises(ValueError, match="guidance"):
        f(torch.rand(1, 16, 4, 4), torch.rand(1, 3, 8), torch.ones(1, 3, dtype=torch.bool), None)
    assert ConvEncoder().channels == (32, 64, 128, 256)


def test_swin_and_bert_load_from_local_folders(tmp_path):
    """The real-weights path: folders in Hugging Face format, loaded with local_files_only."""
    from transformers import AutoTokenizer, BertConfig, BertModel, SwinConfig, SwinModel

    from l2l.data.text_augment import default_text_model_path

    swin_dir, bert_dir = tmp_path / "swin", tmp_path / "bert"
    torch.manual_seed(0)
    swin = SwinModel(
        SwinConfig(
            image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 2], window_size=2
        ),
        add_pooling_layer=False,
    )
    swin.save_pretrained(swin_dir)
    bert = BertModel(
        BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    )
    bert.save_pretrained(bert_dir)
    AutoTokenizer.from_pretrained(str(default_text_model_path()), local_files_only=True).save_pretrained(bert_dir)
    m = _model(
        "visual.name=swin",
        "visual.pretrained=true",
        f"visual.path={swin_dir}",
        "text.name=bert",
        f"text.path={bert_dir}",
    )
    k = "embeddings.patch_embeddings.projection.weight"
    assert torch.equal(m.visual.swin.state_dict()[k], swin.state_dict()[k])
    assert torch.equal(m.text.model.embeddings.word_embeddings.weight, bert.embeddings.word_embeddings.weight)
    assert m(torch.rand(1, 3, 64, 64), TEXTS[:1]).shape == (1, 2, 64, 64)
    with pytest.raises(FileNotFoundError, match="config.json"):
        _model("visual.name=swin", "visual.pretrained=true", f"visual.path={tmp_path / 'none'}")
    with pytest.raises(FileNotFoundError, match="text.path"):
        _model("visual.name=conv", "text.name=bert")


def test_predict_uses_the_null_map_where_no_prior_exists():
    m = _model("visual.name=conv", "visual.conv_channels=[8,16,16,32]", "text.name=tiny", "text.tiny_dim=16").eval()
    with torch.no_grad():
        torch.nn.init.normal_(m.fusions[2].sesm.out.weight)  # make guidance matter (SESM on top of the fusion)
    x, prior = torch.rand(2, 3, 64, 64), torch.rand(2, 1, 64, 64)
    mixed = m.predict(x, TEXTS, "prior", prior, torch.tensor([True, False]))
    assert torch.allclose(mixed[1], m.predict(x, TEXTS, "none")[1], atol=1e-6)
    assert torch.allclose(mixed[0], m.predict(x, TEXTS, "prior", prior)[0], atol=1e-6)


CONV_TINY = ["visual.name=conv", "visual.conv_channels=[8,16,16,32]", "text.name=tiny", "text.tiny_dim=16"]
SCENE = ["scene.enabled=true", "scene.dim=16", "scene.heads=2", "scene.ffn=32", "scene.layers=1"]


@pytest.mark.parametrize(
    "where", ["scene.stage=1", "scene.stage=2", "scene.stage=3", "scene.stage=4", "scene.position=decoder"]
)
def test_scene_block_starts_as_the_model_without_it_and_then_learns(where):
    """With W_o = 0 the scene block is the identity (the model equals the one without it, weight for
    weight); after one step its output depends on the other cells and on the words."""
    plain = _model(*CONV_TINY)
    m = _model(*CONV_TINY, *SCENE, where)
    missing, unexpected = m.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("scene.") for k in missing)
    x = torch.rand(2, 3, 64, 64)
    plain.eval(), m.eval()
    assert torch.equal(m(x, TEXTS), plain(x, TEXTS))
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=1.0)
    m(x, TEXTS)[:, 1].mean().backward()
    assert m.scene is not None and m.scene.out.weight.grad.abs().sum() > 0
    opt.step()
    m.eval()
    assert not torch.equal(m(x, TEXTS), plain(x, TEXTS))


def test_scene_block_reads_the_whole_grid_and_masks_padding():
    from l2l.models.scene import SceneConfig, SceneReasoner

    torch.manual_seed(0)
    blk = SceneReasoner(8, 12, SceneConfig(enabled=True, dim=16, heads=2, ffn=32, layers=1))
    torch.nn.init.normal_(blk.out.weight)
    v, t = torch.rand(1, 8, 4, 4), torch.rand(1, 5, 12)
    mask = torch.tensor([[True, True, True, False, False]])
    base = blk(v, t, mask)
    v2 = v.clone()
    v2[..., 3, 3] += 1.0  # one far cell changes: the first cell's output changes too (global attention)
    assert not torch.allclose(blk(v2, t, mask)[..., 0, 0], base[..., 0, 0])
    t2 = t.clone()
    t2[:, 3:] = torch.rand(1, 2, 12)  # padding tokens change: nothing changes
    assert torch.allclose(blk(v, t2, mask), base, atol=1e-6)


@pytest.mark.parametrize(
    "bad", ["scene.stage=0", "scene.stage=5", "scene.dim=10", "scene.layers=0", "scene.position=middle"]
)
def test_scene_config_refuses_bad_values(bad):
    from l2l.errors import UsageError

    with pytest.raises(UsageError, match="model.scene"):
        load_config(ModelConfig, None, ["scene.enabled=true", bad])


QUERY = ["query.enabled=true", "query.dim=16", "query.heads=2", "query.ffn=32", "query.layers=1", "query.queries=4"]


def test_query_head_mixes_query_masks_by_their_scores_and_learns():
    """The query head's foreground probability is Σ_q softmax(s)_q σ(M_q) (its 2-class logits are
    [0, logit p]); equal scores give the mean of the query masks; padding words change nothing;
    gradients reach the queries and the scores."""
    from l2l.models.query_head import QueryConfig, QueryHead

    torch.manual_seed(0)
    head = QueryHead(8, 12, QueryConfig(enabled=True, dim=16, heads=2, ffn=32, layers=1, queries=3))
    x8, x4, t = torch.rand(2, 8, 4, 4), torch.rand(2, 8, 8, 8), torch.rand(2, 5, 12)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    logits = head(x8, x4, t, mask, (8, 8))
    p = logits.softmax(1)[:, 1]
    assert logits.shape == (2, 2, 8, 8) and torch.allclose(logits[:, 0], torch.zeros(2, 8, 8))
    assert ((p > 0) & (p < 1)).all()
    with torch.no_grad():  # a dominant score: p is that query's own mask
        head.score.weight.zero_()
        head.score.bias.fill_(0.0)
    captured = {}
    head.mask_mlp.register_forward_hook(lambda m, i, o: captured.setdefault("emb", o))
    p_uniform = head(x8, x4, t, mask, (8, 8)).softmax(1)[:, 1]
    masks = torch.einsum("bqd,bdhw->bqhw", captured["emb"], head.pix_in(x4)) / 16**0.5
    assert torch.allclose(p_uniform, masks.sigmoid().mean(1), atol=1e-5)
    t2 = t.clone()
    t2[1, 3:] = torch.rand(2, 12)  # padding words change: nothing changes
    assert torch.allclose(head(x8, x4, t2, mask, (8, 8)), head(x8, x4, t, mask, (8, 8)), atol=1e-5)
    m = _model(*CONV_TINY, *QUERY)
    m(torch.rand(2, 3, 64, 64), TEXTS)[:, 1].mean().backward()
    assert m.query is not None and m.query.queries.grad.abs().sum() > 0 and m.query.score.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("bad", ["query.queries=0", "query.dim=10", "query.layers=0"])
def test_query_config_refuses_bad_values(bad):
    from l2l.errors import UsageError

    with pytest.raises(UsageError, match="model.query"):
        load_config(ModelConfig, None, ["query.enabled=true", bad])


SENTENCE = ["sentence.enabled=true", "sentence.dim=8"]


def test_sentence_paths_start_as_the_plain_model_and_learn():
    """FiLM layers start at the identity and the match's text side at zero: at initialisation the model
    with model.sentence equals the one without it (same weights otherwise); one step later the match
    score depends on the sentence, padding words excluded from the pooled sentence."""
    from l2l.models.sentence_paths import pooled

    plain = _model(*CONV_TINY).eval()
    with_paths = _model(*CONV_TINY, *SENTENCE).eval()
    missing, unexpected = with_paths.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("sentence.") for k in missing)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(with_paths(x, TEXTS), plain(x, TEXTS), atol=1e-6)
    with_paths.train()
    opt = torch.optim.SGD(with_paths.parameters(), lr=1.0)
    with_paths(x, TEXTS)[:, 1].mean().backward()
    assert with_paths.sentence is not None and with_paths.sentence.match is not None
    assert with_paths.sentence.match.txt.weight.grad.abs().sum() > 0
    assert with_paths.sentence.films is not None and with_paths.sentence.films[0].gamma.weight.grad.abs().sum() > 0
    opt.step()
    with torch.no_grad():
        assert not torch.allclose(with_paths.eval()(x, TEXTS), plain(x, TEXTS), atol=1e-4)
    t = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert torch.equal(pooled(t, torch.tensor([[True, True, False]])), torch.tensor([[2.0, 3.0]]))


def test_sentence_paths_survive_save_and_load(tmp_path):
    m = _model(*CONV_TINY, *SENTENCE).eval()
    with torch.no_grad():
        for p in m.sentence.parameters():
            p.normal_(std=0.3)
    m.save_pretrained(tmp_path)
    back = Segmenter.from_pretrained(tmp_path).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert back.cfg.sentence.enabled and torch.allclose(back(x, TEXTS[:1]), m(x, TEXTS[:1]), atol=1e-6)


def test_sentence_match_and_query_head_are_not_both_heads():
    from l2l.errors import UsageError

    with pytest.raises(UsageError, match="enable one of them"):
        load_config(ModelConfig, None, [*SENTENCE, "query.enabled=true"])
    load_config(ModelConfig, None, [*SENTENCE, "sentence.match=false", "query.enabled=true"])  # FiLM + queries


def test_a_model_saved_before_sesm_was_added_on_top_loads_in_its_own_layout(tmp_path):
    old = _model(*CONV_TINY, "sesm.base_fusion=false")
    old.save_pretrained(tmp_path)
    import json

    doc = json.loads((tmp_path / "config.json").read_text())
    del doc["model"]["sesm"]["base_fusion"]  # what a config.json of before 2026-12-07 holds
    (tmp_path / "config.json").write_text(json.dumps(doc))
    back = Segmenter.from_pretrained(tmp_path)
    assert back.cfg.sesm.base_fusion is False
    assert all(torch.equal(v, old.state_dict()[k]) for k, v in back.state_dict().items())


TINY_GROUNDER = (
    "objects.grounder={image_size: 64, conv_channels: [8, 8, 8, 8], dim: 16, heads: 2, layers: 1, text_dim: 16, "
    "dense_dim: 8, roi: 2, max_objects: 4, det_thresh: 0.0}"
)
OBJECTS = ["objects.enabled=true", "objects.path=null", TINY_GROUNDER]


def test_object_choice_map_is_the_choice_over_the_boxes():
    from l2l.models.object_choice import box_maps

    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.25, 0.5, 1.0, 1.0]]])
    maps = box_maps(boxes, (4, 4))
    assert maps.shape == (1, 2, 4, 4)
    assert maps[0, 0].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert maps[0, 1].tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 1, 1]]
    m = _model(*CONV_TINY, *OBJECTS).eval()
    assert m.objects is not None
    stem = m.stem(torch.rand(2, 3, 64, 64))
    prob = m.objects.choice(stem, *m.text.encode(TEXTS))
    assert prob.shape == stem.valid.shape and torch.allclose(prob.sum(-1), torch.ones(2))
    o = m.objects.choice_map(stem, prob, (16, 16))
    want = (prob[:, :, None, None] * box_maps(stem.boxes, (16, 16))).sum(1, keepdim=True)
    assert torch.allclose(o, want) and float(o.detach().max()) <= 1 + 1e-6


def test_object_branch_starts_as_the_plain_model_when_silent_and_trains_its_choice_not_its_detector():
    """With α = 0 (and its stage inputs zero-initialised) the branch adds nothing: the model equals the
    plain one with the same weights. With the default α the mask loss reaches the choice network, the
    stage inputs and α, never the frozen detector."""
    plain = _model(*CONV_TINY).eval()
    silent = _model(*CONV_TINY, *OBJECTS, "objects.alpha=0.0").eval()
    missing, unexpected = silent.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("objects.") for k in missing)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(silent(x, TEXTS), plain(x, TEXTS), atol=1e-6)
    m = _model(*CONV_TINY, *OBJECTS).train()
    assert m.objects is not None and not m.objects.net.encoder.training  # the frozen part stays in eval mode
    m(x, TEXTS)[:, 1].mean().backward()
    net = m.objects.net
    assert m.objects.alpha.grad is not None and net.score[1].weight.grad.abs().sum() > 0
    assert m.objects.stage_in is not None and m.objects.stage_in[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in net.det.parameters())
    assert all(p.grad is None for p in net.encoder.parameters())


def test_object_branch_survives_save_load_and_the_predictor(tmp_path):
    from l2l.models.predictor import SegmenterPredictor

    m = _model(*CONV_TINY, *OBJECTS, "image_size=64").eval()
    m.save_pretrained(tmp_path)
    back = Segmenter.from_pretrained(tmp_path).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert back.cfg.objects.enabled and torch.allclose(back(x, TEXTS[:1]), m(x, TEXTS[:1]), atol=1e-6)
    img = np.random.default_rng(4).integers(0, 256, (48, 56, 3)).astype(np.uint8)
    p = SegmenterPredictor(m, device="cpu")
    p.set_image(img)
    _, probs = p.predict(TEXTS)
    for t, pr in zip(TEXTS, probs):
        assert np.allclose(pr, m.segment(img, t, domain_check=False)[1], atol=1e-5)


def test_object_branch_refuses_a_text_encoder_of_another_width():
    from l2l.errors import UsageError

    with pytest.raises(UsageError, match="16-d word features"):
        _model(*CONV_TINY[:2], "text.name=tiny", "text.tiny_dim=32", *OBJECTS)
    with pytest.raises(UsageError, match="model.objects.grounder"):
        load_config(ModelConfig, None, ["objects.enabled=true", "objects.path=null"])


def test_shipped_object_branch_chooses_what_the_shipped_grounder_chooses():
    """``builtin:synthpool-grounder`` inside the student, before any training, answers each sentence with
    the box the stand-in grounder itself answers (the same network, weights and words)."""
    from l2l.data.pool import PoolConfig, render_pool_scene
    from l2l.foundation.grounder import GrounderPredictor

    scene = render_pool_scene(PoolConfig(size=96), 3)
    m = _model("visual.name=conv", "visual.conv_channels=[8,16,16,32]", "text.name=minilm", "objects.enabled=true")
    m.eval()
    assert m.objects is not None
    g = GrounderPredictor.from_pretrained("builtin:synthpool-grounder", text=m.text)
    texts = ["the red one", "the leftmost shape", "the second object from the top"]
    img = scene.image
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float().div(255).expand(3, -1, -1, -1)
    with torch.no_grad():
        stem = m.stem(x)
        prob = m.objects.choice(stem, *m.text.encode(texts))
    chosen = stem.boxes[torch.arange(3), prob.argmax(-1)] * 96
    want = torch.tensor([b for b, _ in g.ground([img] * 3, texts)])
    assert torch.allclose(chosen, want, atol=1e-3)


def test_choice_loss_names_the_detection_that_boxes_the_mask():
    from l2l.models.object_choice import choice_loss_per_sample
    from l2l.utils.masks import label_map_boxes

    masks = torch.zeros(2, 8, 8, dtype=torch.long)
    masks[0, 2:4, 1:5] = 1
    masks[0, 0, 0] = 255  # ignored pixels are not the object
    boxes, has = label_map_boxes(masks)
    assert has.tolist() == [True, False]
    assert boxes[0].tolist() == [1 / 8, 2 / 8, 5 / 8, 4 / 8]
    m = _model(*CONV_TINY, *OBJECTS, "objects.choice_loss=2.0")
    assert choice_loss_per_sample(m, masks) is None  # no pass yet
    m(torch.rand(2, 3, 64, 64), TEXTS)
    assert m.objects is not None and m.objects.last is not None
    prob, det, valid = m.objects.last
    det = det.detach().clone()
    det[0, 1] = torch.tensor([1 / 8, 2 / 8, 5 / 8, 4 / 8])  # detection 1 boxes sample 0's mask exactly
    valid = valid.clone()
    valid[0, 1] = True
    m.objects.last = (prob, det, valid)
    loss = choice_loss_per_sample(m, masks)
    assert loss is not None and loss.shape == (2,)
    assert torch.allclose(loss[0], -2.0 * prob[0, 1].log()) and float(loss[1].detach()) == 0.0  # empty mask: nothing
    loss.sum().backward()
    assert m.objects.net.score[1].weight.grad.abs().sum() > 0
    off = _model(*CONV_TINY, *OBJECTS)
    off(torch.rand(1, 3, 64, 64), TEXTS[:1])
    assert choice_loss_per_sample(off, masks[:1]) is None  # weight 0: no term


def test_object_choice_as_sesm_guidance_where_no_prior_is_given():
    from l2l.errors import UsageError

    with pytest.raises(UsageError, match="needs model.sesm.enabled"):
        _model(*CONV_TINY, *OBJECTS, "objects.guide=true", "sesm.enabled=false")
    m = _model(*CONV_TINY, *OBJECTS, "objects.guide=true", "sesm.enabled=true").eval()
    seen = []
    m.fusions[0].register_forward_hook(lambda mod, args, out: seen.append(args[3].clone()))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        m(x, TEXTS)
        stem = m.stem(x)
        own = m.objects.choice_map(stem, m.objects.choice(stem, *m.text.encode(TEXTS)), (64, 64))
        assert torch.allclose(seen[-1], own)  # no prior: the guidance is the choice map
        prior = torch.rand(2, 1, 64, 64)
        m(x, TEXTS, prior, torch.tensor([True, False]))
    assert torch.allclose(seen[-1][0], prior[0]) and torch.allclose(seen[-1][1], own[1])


def test_relation_bias_joins_the_shipped_choice_neutrally():
    """``model.objects.relation_bias`` adds the pairwise-geometry bias (zero-initialised) to the shipped
    grounder, whose folder has no weights for it: the choice starts exactly as without it."""
    from l2l.models.object_choice import ObjectChoice, ObjectsConfig

    plain = ObjectChoice(ObjectsConfig(enabled=True), (8, 8, 8, 8)).eval()
    biased = ObjectChoice(ObjectsConfig(enabled=True, relation_bias=True), (8, 8, 8, 8)).eval()
    assert biased.net.pair is not None and plain.net.pair is None
    x = torch.rand(2, 3, 96, 96)
    words, mask = torch.randn(2, 5, 384), torch.ones(2, 5, dtype=torch.bool)
    from l2l.models.object_choice import ObjectStem

    with torch.no_grad():
        stem = ObjectStem(None, *plain.detect(x))
        assert torch.allclose(plain.choice(stem, words, mask), biased.choice(stem, words, mask), atol=1e-5)


def test_prefit_with_mirrored_images_trains_the_choice(synthref):
    from l2l.models.object_choice import prefit_choice

    m = _model(*CONV_TINY, *OBJECTS, "objects.prefit_flip=true", "objects.match_iou=0.0", "objects.prefit_batch=8")
    before = m.objects.net.score[1].weight.detach().clone()
    recs = synthref.samples("train")[:12]
    losses = prefit_choice(m, synthref, recs, 64, seed=0, epochs=2)
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert not torch.equal(before, m.objects.net.score[1].weight) and m.objects.last is None
    frozen = _model(*CONV_TINY, *OBJECTS, "objects.train_choice=false", "objects.match_iou=0.0")
    assert frozen.objects is not None and not any(p.requires_grad for p in frozen.objects.choice_parameters())
    before = frozen.objects.net.score[1].weight.detach().clone()
    prefit_choice(frozen, synthref, recs, 64, seed=0, epochs=1)  # the pre-fit trains it all the same …
    assert not torch.equal(before, frozen.objects.net.score[1].weight)
    assert not any(p.requires_grad for p in frozen.objects.choice_parameters())  # … and leaves it frozen
    assert frozen.objects.alpha.requires_grad and all(p.requires_grad for p in frozen.objects.stage_in.parameters())


def test_prefit_mixes_extra_sentences_into_every_epoch(synthref):
    """ExtraChoiceItems (choice_fit --pool): the extra sentences are trained on — two pre-fits from the
    same weights and seed differ only by them — and their float16 maps are read as float32."""
    from l2l.models.object_choice import ExtraChoiceItems, prefit_choice

    recs = synthref.samples("train")[:8]
    runs = []
    for use_extra in (False, True):
        torch.manual_seed(0)
        m = _model(*CONV_TINY, *OBJECTS, "objects.match_iou=0.0", "objects.prefit_batch=4")
        extra = None
        if use_extra:
            with torch.no_grad():
                dmap, boxes, valid = m.objects.detect(torch.rand(2, 3, 64, 64))
            objects = {("extra", k): (dmap[k].half(), boxes[k], valid[k]) for k in range(2)}
            items = [(("extra", k), "the red circle", (0.1, 0.1, 0.6, 0.6)) for k in range(2)] * 3
            extra = ExtraChoiceItems(objects, items, per_epoch=4)
        losses = prefit_choice(m, synthref, recs, 64, seed=0, epochs=2, extra=extra)
        assert len(losses) == 2 and all(np.isfinite(losses))
        runs.append(m.objects.net.score[1].weight.detach().clone())
    assert not torch.equal(runs[0], runs[1])
