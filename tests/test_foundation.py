"""Foundation stand-ins (docs/foundation.md): the shifted dialect, the mask model (predictor reuse,
automatic mode, folders), the grounder, the dual encoder, the learned prior, the real models'
paths with tiny random configs, and the shipped folders."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import torch

from l2l.cli import main
from l2l.data.pool import COLOR_NAMES, SIZE_NAMES, PoolConfig, pool_scene, render_pool_scene
from l2l.errors import UsageError
from l2l.foundation import dual_encoder as de
from l2l.foundation import grounder as gr
from l2l.foundation import mask_model as mm
from l2l.foundation import object_grounder as oground
from l2l.foundation import region_context as rc
from l2l.foundation.grounding_parser import map_box, parse_boxes
from l2l.foundation.language import SYNTHREF_ONLY_WORDS, generic_caption, realise_shifted
from l2l.pretrain import dual_encoder as pde
from l2l.pretrain import grounder as pgr
from l2l.pretrain import mask_model as pmm
from l2l.priors.base import PriorInput
from l2l.priors.standin import StandInPriorProvider, answer_confidence
from l2l.priors.store import PriorStore
from l2l.utils.folders import BUILTIN, folder_digest
from l2l.utils.masks import mask_iou

TINY_CONV = (8, 8, 16, 16)


@pytest.fixture(scope="module")
def tiny_text():
    """A tiny random BERT with MiniLM's tokenizer (the real path, random weights), frozen and cached."""
    from transformers import BertConfig

    from l2l.nets.text_encoders import HFTextEncoder

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    return HFTextEncoder.from_config(cfg).freeze(cache=True)


# ----------------------------------------------------------------------------- language and pool
def test_shifted_dialect_avoids_synthref_only_words_and_means_the_program():
    from l2l.data.synthref_lang import build_program, resolve

    words = set(SYNTHREF_ONLY_WORDS)
    seen_kinds = set()
    for i in range(60):
        sc = render_pool_scene(PoolConfig(size=96), i)
        rng = np.random.default_rng(i)
        for t in range(len(sc.objects)):
            for kind in ("attribute", "attribute_only", "location", "relation", "ordinal"):
                prog = build_program(kind, t, sc.objects, 0.06 * 96, rng)
                if prog is None:
                    continue
                assert resolve(prog, sc.objects, 0.06 * 96) == [t]
                text = realise_shifted(prog, rng)
                assert not set(re.findall(r"[\w-]+", text)) & words, text
                seen_kinds.add(kind)
        for o in sc.objects:
            cap = generic_caption(o, rng)
            assert not set(re.findall(r"[\w-]+", cap)) & words, cap
    assert seen_kinds == {"attribute", "attribute_only", "location", "relation", "ordinal"}


def test_pool_scene_instances_agree_with_dense_targets():
    cfg = PoolConfig(size=96)
    for i in range(5):
        sc = render_pool_scene(cfg, i)
        img, targets = pool_scene(cfg, i)
        assert np.array_equal(img, sc.image)
        assert np.array_equal(targets["shape"] > 0, sc.ids > 0)
        for k, o in enumerate(sc.objects):
            m = sc.mask(k)
            if m.any():
                assert (targets["color"][m] == COLOR_NAMES.index(o.color) + 1).all()
                assert (targets["size"][m] == SIZE_NAMES.index(o.size) + 1).all()


# ----------------------------------------------------------------------------- mask model
def _tiny_mask_cfg(**kw):
    model = mm.MaskModelConfig(image_size=64, conv_channels=TINY_CONV, dim=8, hypotheses=3, init=None)
    return pmm.MaskTrainConfig(
        model=model,
        pool=PoolConfig(size=64),
        train_images=12,
        eval_images=3,
        steps=3,
        batch_images=4,
        prompts_per_image=2,
        workers=1,
        log_every=1,
        **kw,
    )


@pytest.fixture(scope="module")
def tiny_mask_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("mask")
    card = pmm.pretrain_mask_model(_tiny_mask_cfg(), out, show_progress=False)
    assert len(card["trajectory"]) == 3 and 0 <= card["metrics_eval_pool"]["pool_box_iou"] <= 1
    return out


def test_mask_predictor_reuses_the_embedding_and_answers_sam2_shapes(tiny_mask_folder):
    pred = mm.MaskPredictor.from_pretrained(tiny_mask_folder)
    img = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)  # not square
    pred.set_image(img)
    masks, iou = pred.predict(box=np.array([5, 5, 30, 40]))
    assert masks.shape == (3, 50, 70) and masks.dtype == bool and iou.shape == (3,)
    masks, iou = pred.predict(
        point_coords=np.array([[10, 12], [40, 30]]), point_labels=np.array([1, 0]), multimask_output=False
    )
    assert masks.shape == (1, 50, 70) and 0 <= iou[0] <= 1
    assert pred.embeddings_computed == 1  # two prompts, one image encoding
    with pytest.raises(UsageError, match="labels"):
        pred.predict(point_coords=np.array([[1, 1]]), point_labels=np.array([1, 1]))
    with pytest.raises(UsageError, match="point_coords or a box"):
        pred.predict()
    fresh = mm.MaskPredictor.from_pretrained(tiny_mask_folder)
    with pytest.raises(UsageError, match="set_image"):
        fresh.predict(box=np.array([1, 1, 5, 5]))
    # the box-segmenter interface of mllm-sam2: equal consecutive images are encoded once
    out = fresh([img, img.copy(), img[::-1].copy()], [[5, 5, 30, 40], [1, 1, 20, 20], [5, 5, 30, 40]])
    assert fresh.embeddings_computed == 2 and out[0][0].shape == (50, 70) and 0 <= out[0][0].min() <= 1


def test_mask_folder_round_trip_is_exact(tiny_mask_folder, tmp_path):
    a = mm.MaskPredictor.from_pretrained(tiny_mask_folder)
    b = mm.MaskPredictor.from_pretrained(tiny_mask_folder)
    img = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    a.set_image(img)
    b.set_image(img)
    la, _ = a.predict_logits([[3, 3, 40, 40]])
    lb, _ = b.predict_logits([[3, 3, 40, 40]])
    assert torch.equal(la, lb)
    card = json.loads((tiny_mask_folder / "card.json").read_text())
    assert card["stand_in_for"].startswith("SAM") and "no SynthRef image" in card["training_data"]["targets"]
    assert len(folder_digest(tiny_mask_folder)) == 16


def test_automatic_mode_keeps_distinct_masks(tiny_mask_folder):
    pred = mm.MaskPredictor.from_pretrained(tiny_mask_folder)
    img = np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    recs = mm.automatic_masks(
        pred, img, points_per_side=4, pred_iou_thresh=0.0, stability_thresh=0.0, nms_thresh=0.5, min_area=1
    )
    assert pred.embeddings_computed == 1
    for r in recs:
        assert set(r) >= {"segmentation", "area", "bbox", "predicted_iou", "stability_score", "point_coords"}
        assert r["area"] == int(r["segmentation"].sum()) > 0
    for i in range(len(recs)):
        for j in range(i):
            assert mask_iou(recs[i]["segmentation"], recs[j]["segmentation"]) < 0.5
    scores = [r["predicted_iou"] * r["stability_score"] for r in recs]
    assert scores == sorted(scores, reverse=True)


def test_automatic_mode_screens_points_by_predicted_iou_without_changing_the_masks(tiny_mask_folder):
    pred = mm.MaskPredictor.from_pretrained(tiny_mask_folder)
    img = np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    decoded: list[int] = []

    class NoScreening:  # the interface of a predictor without predict_iou (SAM2's)
        def set_image(self, image):
            pred.set_image(image)

        def predict_logits(self, boxes, points=(), labels=()):
            decoded.append(len(boxes))
            return pred.predict_logits(boxes, points, labels)

    pred.set_image(img)
    g = (np.arange(5) + 0.5) / 5 * 64
    grid = [np.array([[x, y]]) for y in g for x in g]
    best = pred.predict_iou([None] * 25, grid, [np.ones(1)] * 25).amax(1)
    thresh = float(best.median())  # about half the points have no hypothesis at or above it
    kw = dict(points_per_side=5, pred_iou_thresh=thresh, stability_thresh=0.0, nms_thresh=0.9, min_area=1)
    slow = mm.automatic_masks(NoScreening(), img, **kw)
    assert sum(decoded) == 25
    calls: list[int] = []
    original = pred.predict_logits
    pred.predict_logits = lambda b, p=(), q=(): calls.append(len(b)) or original(b, p, q)  # type: ignore[method-assign]
    fast = mm.automatic_masks(pred, img, **kw)
    assert 0 < sum(calls) == int((best >= thresh).sum()) < 25  # masks decoded only where a hypothesis passes
    assert len(fast) == len(slow) > 0
    for a, b in zip(fast, slow):
        assert np.array_equal(a["segmentation"], b["segmentation"]) and a["predicted_iou"] == pytest.approx(
            b["predicted_iou"]
        )


def test_prompt_convolution_split_per_image_gives_the_joint_result(tiny_mask_folder):
    pred = mm.MaskPredictor.from_pretrained(tiny_mask_folder)
    torch.nn.init.normal_(pred.model.prompt_in[0].weight)  # every channel matters, the embedding's included
    img = np.random.default_rng(4).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    prompts = (
        [[3, 3, 40, 30], None, None],
        [None, np.array([[10, 10]]), np.array([[50, 5], [20, 40]])],
        [None, np.ones(1), np.array([1, 0])],
    )
    out = {}
    for split in (False, True):
        pred.split_prompt_conv = split
        pred.set_image(img)
        assert (pred._base is not None) == split
        out[split] = (*pred.predict_logits(*prompts), pred.predict_iou(*prompts))
    for a, b in zip(out[False], out[True]):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    assert not torch.equal(out[True][0][0], out[True][0][1])  # the prompts still matter


def test_simulated_prompts_lie_on_the_instance():
    sc = render_pool_scene(PoolConfig(size=96), 3)
    rng = np.random.default_rng(0)
    m = sc.mask(int(np.argmax([sc.mask(k).sum() for k in range(len(sc.objects))])))
    for _ in range(50):
        box, pts, lab = pmm.sample_prompts(m, rng)
        assert box is not None or (lab == 1).any()
        for (x, y), lb in zip(pts, lab):
            assert m[int(y), int(x)] == bool(lb)


def test_real_sam2_behind_the_same_interface():
    from transformers import Sam2Config, Sam2Model

    torch.manual_seed(0)
    pred = mm.Sam2MaskPredictor(Sam2Model(Sam2Config()))  # the real architecture, random weights
    img = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    pred.set_image(img)
    masks, iou = pred.predict(box=np.array([10, 10, 50, 40]))
    assert masks.shape[1:] == (60, 80) and masks.shape[0] == iou.shape[0] == 3
    masks, iou = pred.predict(point_coords=np.array([[20, 20]]), point_labels=np.array([1]), multimask_output=False)
    assert masks.shape == (1, 60, 80)
    assert pred.embeddings_computed == 1


# ----------------------------------------------------------------------------- grounder
def _tiny_grounder_cfg(body: str = "film", freeze: bool = True, images_per_step: int = 0, relation: bool = False):
    model = gr.GrounderConfig(
        image_size=64,
        conv_channels=TINY_CONV,
        dim=16,
        layers=1,
        heads=2,
        text_dim=16,
        init=None,
        body=body,
        dilations=(1, 2),
        dense_dim=16,
        roi=2,
        relation_bias=relation,
    )
    return pgr.GrounderTrainConfig(
        freeze_encoder=freeze,
        model=model,
        pool=PoolConfig(size=64),
        train_images=10,
        eval_images=4,
        steps=3,
        batch_size=4,
        workers=1,
        log_every=1,
        images_per_step=images_per_step,
    )


@pytest.mark.parametrize(
    "body,freeze,per_step,relation",
    [
        ("film", True, 0, False),
        ("transformer", False, 3, False),
        ("objects", False, 0, False),
        ("objects", False, 3, True),
    ],
)
def test_grounder_trains_grounds_and_answers_in_qwen_format(tiny_text, body, freeze, per_step, relation):
    cfg = _tiny_grounder_cfg(body, freeze, per_step, relation)
    torch.manual_seed(cfg.seed)  # train_grounder builds the same initial weights
    before = {k: v.clone() for k, v in gr.build_grounder(cfg.model).encoder.state_dict().items()}
    net, traj, _ = pgr.train_grounder(cfg, tiny_text, show_progress=False)
    assert len(traj) == 3 and all(np.isfinite(t["loss"]) for t in traj)
    same = all(torch.equal(before[k], v) for k, v in net.encoder.state_dict().items())
    assert same == freeze  # a frozen vision tower is not trained
    pred = gr.GrounderPredictor(net, tiny_text)
    img = np.random.default_rng(0).integers(0, 255, (40, 90, 3), dtype=np.uint8)
    (box, conf), _ = pred.ground([img, img], ["the red star", "a ring"])
    x0, y0, x1, y1 = box
    assert 0 <= x0 <= x1 <= 90 and 0 <= y0 <= y1 <= 40 and 0 < conf <= 1
    ((answer, hw),) = pred([PriorInput(1, img, "the red star")])
    parsed = parse_boxes(answer)
    back = map_box(parsed.box, hw, img.shape[:2], parsed.frame)
    assert back == pytest.approx(box, abs=0.05) or (x1 - x0 < 1 or y1 - y0 < 1)
    assert answer_confidence(answer) == pytest.approx(conf, abs=1e-4)
    metrics = pgr.pool_accuracy(pred, cfg)
    assert 0 <= metrics["acc50"] <= 1
    assert ("detection_recall50" in metrics) == (body == "objects")


def test_grounder_targets_are_unique_references():
    cfg = _tiny_grounder_cfg()
    _, exprs, objs = pgr.grounding_pool(cfg, 0, 10)
    assert exprs and {e[1] for e in exprs} <= {"attribute", "attribute_only", "location", "relation", "ordinal"}
    for i, _, text, (x0, y0, x1, y1), k in exprs:
        assert text and 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
        boxes, attrs = objs[i]
        assert boxes[k].tolist() == [x0, y0, x1, y1] and len(attrs) == len(boxes)  # the referred one among the objects


def test_more_expressions_per_target_extend_the_same_pool_without_duplicates():
    one = dataclasses.replace(_tiny_grounder_cfg(), expressions_per_target=1)
    two = dataclasses.replace(one, expressions_per_target=2)
    _, e1, _ = pgr.grounding_pool(one, 0, 12)
    _, e2, _ = pgr.grounding_pool(two, 0, 12)
    assert len(e2) > len(e1)
    for i in range(12):
        first = [e for e in e1 if e[0] == i]
        both = [e for e in e2 if e[0] == i]
        assert both[: len(first)] == first  # the default's sentences come first, unchanged
        pairs = [(e[4], e[2]) for e in both]
        assert len(pairs) == len(set(pairs))  # no (object, sentence) twice


def test_object_grounder_detection_targets_decode_back_to_their_boxes():
    from l2l.foundation.object_grounder import centre_targets, decode_peaks, detection_loss

    boxes = torch.tensor([[[0.1, 0.1, 0.3, 0.35], [0.55, 0.6, 0.9, 0.8], [0, 0, 0, 0]]])
    valid = torch.tensor([[True, True, False]])
    _, centre, where, want = centre_targets(boxes, valid, 16)
    raw = torch.full((1, 5, 16, 16), -8.0)
    raw[0, 0][centre[0] > 0] = 8.0
    raw[where[0], 1:, where[1], where[2]] = want
    found, score, ok = decode_peaks(raw, 5, 0.5)
    assert ok[0].sum() == 2 and (score[0, :2] > 0.99).all()
    got = sorted(found[0, ok[0]].tolist())
    assert got == [pytest.approx(b, abs=1e-5) for b in boxes[0, :2].tolist()]
    focal, l1 = detection_loss(raw, boxes, valid)
    shifted = detection_loss(raw.roll(3, -1), boxes, valid)
    assert l1 < 1e-5 and focal < shifted[0] and shifted[1] > 0.1


def test_object_grounder_relation_bias_starts_neutral_and_reads_where_objects_are():
    cfg = _tiny_grounder_cfg("objects", freeze=False, relation=True).model
    torch.manual_seed(0)
    net = gr.build_grounder(cfg)
    plain = gr.build_grounder(dataclasses.replace(cfg, relation_bias=False))
    plain.load_state_dict(net.state_dict(), strict=False)  # everything but the pair MLP
    toks, words = torch.randn(2, 3, 16), torch.randn(2, 4, 16)
    valid = torch.tensor([[True, True, False], [True, True, True]])
    wmask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    boxes = torch.tensor([[0.1, 0.1, 0.3, 0.3], [0.6, 0.2, 0.8, 0.5], [0.4, 0.6, 0.5, 0.9]]).expand(2, 3, 4)
    net.eval(), plain.eval()
    with torch.no_grad():
        logits = net.choose(toks, valid, words, wmask, boxes)
        assert torch.allclose(logits, plain.choose(toks, valid, words, wmask), atol=1e-5)  # zero bias at init
        assert torch.isinf(logits[0, 2]) and torch.isfinite(logits[1]).all()
        torch.nn.init.normal_(net.pair[2].weight)
        moved = boxes.flip(1)  # the same tokens, the boxes swapped among them
        assert not torch.allclose(
            net.choose(toks, valid, words, wmask, boxes), net.choose(toks, valid, words, wmask, moved)
        )
    geo = oground.relative_geometry(boxes[:1])
    assert geo.shape == (1, 3, 3, 6) and torch.allclose(geo[0, :, :, :2], -geo[0, :, :, :2].transpose(0, 1))
    with pytest.raises(ValueError, match="boxes"):
        net.choose(toks, valid, words, wmask)


def test_object_grounder_refuses_a_frozen_encoder():
    with pytest.raises(UsageError, match="freeze_encoder"):
        _tiny_grounder_cfg("objects", freeze=True)


# ----------------------------------------------------------------------------- dual encoder
def test_dual_encoder_trains_and_encodes(tiny_text):
    model = de.DualEncoderConfig(crop_size=32, conv_channels=TINY_CONV, embed_dim=8, text_dim=16, init=None)
    cfg = pde.DualEncoderTrainConfig(
        model=model, pool=PoolConfig(size=64), train_images=12, steps=3, batch_size=16, workers=1, log_every=1
    )
    net, traj, _ = pde.train_dual_encoder(cfg, tiny_text, show_progress=False)
    assert len(traj) == 3
    enc = de.DualEncoder(net, tiny_text)
    img = enc.encode_image([np.zeros((20, 30, 3), np.uint8), np.full((50, 50, 3), 200, np.uint8)])
    txt = enc.encode_text(["a red star", "a photo of a ring"])
    assert img.shape == txt.shape == (2, 8)
    assert torch.allclose(img.norm(dim=-1), torch.ones(2), atol=1e-5) and enc.logit_scale > 1


def _tiny_region_cfg(**kw):
    model = de.DualEncoderConfig(
        crop_size=32,
        conv_channels=TINY_CONV,
        embed_dim=8,
        text_dim=16,
        init=None,
        regions=True,
        scene_size=64,
        context_dim=8,
        fuse_dim=16,
        text_queries=2,
    )
    args = dict(
        model=model, pool=PoolConfig(size=64), train_images=12, steps=3, scenes_per_step=4, workers=1, log_every=1
    )
    return pde.DualEncoderTrainConfig(**{**args, **kw})


def test_region_dual_encoder_trains_and_sees_the_scene(tiny_text, synthref):
    net, traj, _ = pde.train_dual_encoder(_tiny_region_cfg(), tiny_text, show_progress=False)
    assert len(traj) == 3 and all(np.isfinite(t["loss"]) for t in traj)
    enc = de.DualEncoder(net, tiny_text)
    img = np.random.default_rng(0).integers(0, 255, (80, 100, 3), dtype=np.uint8)
    boxes = [[5, 5, 30, 30], [60, 40, 95, 75]]
    reg = enc.encode_regions(img, boxes)
    assert reg.shape == (2, 8) and torch.allclose(reg.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert enc.encode_regions(img, []).shape == (0, 8)
    # the same box means something else in another scene: the embedding reads the context
    other = img.copy()
    other[:, 50:] = 0
    assert not torch.allclose(enc.encode_regions(other, boxes[:1]), reg[:1], atol=1e-4)
    assert enc.encode_image([img]).shape == (1, 8)  # encode_image is still a CLIP's
    res = pde.synthref_retrieval(enc, synthref, "val", limit=8, view="regions")
    assert 0 <= res["top1"] <= 1 and "image_to_text_top1" in res
    with pytest.raises(UsageError, match="view"):
        pde.synthref_retrieval(enc, synthref, "val", view="scene")


def test_encode_regions_of_a_crop_encoder_embeds_the_crops(tiny_text):
    model = de.DualEncoderConfig(crop_size=32, conv_channels=TINY_CONV, embed_dim=8, text_dim=16, init=None)
    enc = de.DualEncoder(de.DualEncoderNet(model), tiny_text)
    img = np.random.default_rng(1).integers(0, 255, (60, 60, 3), dtype=np.uint8)
    boxes = [[5, 5, 20, 25], [30, 30, 55, 50]]
    want = enc.encode_image([de.crop_box(img, b) for b in boxes])
    assert torch.allclose(enc.encode_regions(img, boxes), want)


def test_region_weights_split_the_grid_around_a_box():
    w = rc.region_weights(torch.tensor([[0.25, 0.5, 0.5, 0.75]]), 4)[0].view(7, 4, 4)
    inside, left, right, above, below, whole, near = w
    assert near[2, 1] == 0 and near[2, 0] > near[2, 3] > 0 and near[0, 1] < near[1, 1]  # zero inside, fading
    assert inside.sum() == pytest.approx(1.0) and inside[2, 1] == pytest.approx(1.0)
    assert left[:, 0].tolist() == [1.0] * 4 and left[:, 1:].sum() == 0  # column centres 0.125 < 0.25
    assert right[:, 2:].sum() == 8 and right[:, :2].sum() == 0
    assert above[:2].sum() == 8 and below[3].sum() == 4 and below[:3].sum() == 0 and whole.sum() == 16


def test_region_loss_prefers_the_right_region_of_the_scene():
    reg = torch.eye(3)
    owner = torch.tensor([0, 0, 1])
    target = torch.tensor([0, 2])
    good = rc.region_loss(reg, reg[[0, 2]], torch.tensor(2.0), target, owner, owner[target])
    bad = rc.region_loss(reg, reg[[1, 2]], torch.tensor(2.0), target, owner, owner[target])
    assert good < bad


def test_region_training_config_checks_its_sizes():
    with pytest.raises(UsageError, match="scene_size"):
        _tiny_region_cfg(pool=PoolConfig(size=96))
    with pytest.raises(UsageError, match="scenes_per_step"):
        _tiny_region_cfg(scenes_per_step=1)


def test_clip_loss_treats_equal_captions_as_positives():
    img = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0]]), dim=-1)
    caps = ["a star", "a star", "a ring"]
    good = pde.clip_loss(img, img, torch.tensor(2.0), caps)
    bad = pde.clip_loss(img, img.flip(0), torch.tensor(2.0), caps)
    assert good < bad


def test_crop_box_pads_outside_the_image():
    img = np.full((10, 10, 3), 255, np.uint8)
    c = de.crop_box(img, [0, 0, 4, 4], margin=0.5)
    assert c.shape == (8, 8, 3) and c[0, 0].sum() == 0 and c[-1, -1].sum() > 0


def test_real_clip_behind_the_same_interface(tmp_path):
    from .conftest import write_tiny_clip

    torch.manual_seed(0)
    write_tiny_clip(tmp_path, text_layers=1, vision_layers=1)
    enc = de.ClipDualEncoder.from_pretrained(tmp_path)
    img = enc.encode_image([np.zeros((20, 30, 3), np.uint8)])
    txt = enc.encode_text(["a red star", "a ring"])
    assert img.shape == (1, 8) and txt.shape == (2, 8) and enc.logit_scale > 1
    assert enc.encode_regions(np.zeros((40, 40, 3), np.uint8), [[0, 0, 10, 10], [5, 5, 30, 20]]).shape == (2, 8)
    assert enc.encode_regions(np.zeros((40, 40, 3), np.uint8), []).shape == (0, 8)
    with pytest.raises(FileNotFoundError, match="config.json"):
        de.ClipDualEncoder.from_pretrained(tmp_path / "nothing")
    # the one loader tells the real folder from a stand-in by config.json's fields, not by which files exist
    from l2l.foundation.loaders import load_dual_encoder, load_mask_model
    from l2l.utils.folders import is_real_folder

    assert is_real_folder(tmp_path) and isinstance(load_dual_encoder(tmp_path), de.ClipDualEncoder)
    assert not is_real_folder("builtin:synthpool-clip") and not is_real_folder(tmp_path / "nothing")
    assert isinstance(load_dual_encoder("builtin:synthpool-clip"), de.DualEncoder)
    (tmp_path / "card.json").write_text("{}")  # a card beside a real model does not make it a stand-in
    assert is_real_folder(tmp_path)
    from l2l.foundation.mask_model import MaskPredictor

    assert type(load_mask_model("builtin:synthpool-sam")) is MaskPredictor


def test_load_grounder_picks_qwen_or_the_stand_in_by_the_folder(tmp_path, monkeypatch, tiny_text):
    from l2l.foundation import qwen_grounder
    from l2l.foundation.loaders import load_grounder

    assert type(load_grounder("builtin:synthpool-grounder", text=tiny_text)) is gr.GrounderPredictor
    calls = []
    monkeypatch.setattr(
        qwen_grounder.QwenGrounder, "from_pretrained", classmethod(lambda cls, *a: calls.append(a) or "qwen")
    )
    (tmp_path / "config.json").write_text('{"model_type": "qwen2_5_vl"}')  # a Hugging Face folder
    assert load_grounder(tmp_path, "cpu", max_new_tokens=7) == "qwen" and calls == [(tmp_path, "cpu", 7)]


# ----------------------------------------------------------------------------- the learned prior
def test_standin_provider_fills_a_store_with_provenance(tiny_mask_folder, tiny_text, synthref, tmp_path):
    cfg = _tiny_grounder_cfg()
    net, _, _ = pgr.train_grounder(cfg, tiny_text, show_progress=False)
    prov = StandInPriorProvider(
        gr.GrounderPredictor(net, tiny_text), mm.MaskPredictor.from_pretrained(tiny_mask_folder)
    )
    ids = [r.sample_id for r in synthref.samples("train")[:6]]

    def load(sid):
        rec = synthref.sample(sid)
        return PriorInput(sid, synthref.load_image(rec.image_id), rec.sentence)

    st = PriorStore(tmp_path / "p")
    res = st.generate(prov, ids, load, batch_size=4, show_progress=False)
    assert res["generated"] == 6
    meta = st.meta
    assert meta["provider"] == "standin" and meta["config"]["stand_ins"] is True
    assert str(tiny_mask_folder) in meta["config"]["segmenter"]["mask_model"]
    for sid in ids:
        e = st.record(sid)
        assert 0 <= e["confidence"] <= 1
        if e["cue"]:
            assert "grounder_confidence" in e["provenance"] and "mask_iou" in e["provenance"]


def test_cli_pretrain_mask_model(tmp_path, capsys):
    out = tmp_path / "m"
    args = [
        "pretrain",
        "mask-model",
        "--out",
        str(out),
        "--steps",
        "2",
        "--quiet",
        "train_images=8",
        "eval_images=2",
        "batch_images=2",
        "workers=1",
        "pool.size=64",
        "model.image_size=64",
        "model.dim=8",
        "model.init=null",
        "model.conv_channels=[8,8,16,16]",
    ]
    assert main(args) == 0
    assert "SAM stand-in" in capsys.readouterr().out
    card = json.loads((out / "card.json").read_text())
    assert card["steps"] == 2 and "l2l pretrain mask-model" in card["command"]
    assert main(args) == 0 and "already holds" in capsys.readouterr().out


# ----------------------------------------------------------------------------- the shipped stand-ins
SHIPPED = (
    "synthpool-sam",
    "synthpool-grounder",
    "synthpool-clip",
    "synthpool-clip-regions",
    "synthpool-grounder-dense",
    "synthpool-grounder-objects-6k",
)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_folders_are_small_and_carded(name):
    root = BUILTIN[name]
    if not (root / "card.json").exists():
        pytest.skip(f"{root} not built (l2l pretrain …)")
    size = sum(f.stat().st_size for f in root.iterdir())
    assert size < 5_000_000
    card = json.loads((root / "card.json").read_text())
    assert card["wall_seconds"] <= 600 and card["metrics_eval_pool"] and card["command"].startswith("l2l pretrain")


def test_shipped_region_encoder_reads_the_scene(synthref):
    """On the fixture's val, the shipped region encoder picks the referred object among its scene's
    better than its own crops do (they cannot show where an object stands) and better than chance."""
    if not (BUILTIN["synthpool-clip-regions"] / "card.json").exists():
        pytest.skip("shipped region encoder not built")
    enc = de.DualEncoder.from_pretrained("builtin:synthpool-clip-regions")
    reg = pde.synthref_retrieval(enc, synthref, "val", view="regions")
    crop = pde.synthref_retrieval(enc, synthref, "val", view="crop")
    per_image = np.mean([len(synthref.image_anns(i)) for i in {r.image_id for r in synthref.samples("val")}])
    assert reg["top1"] > 1.5 / per_image and reg["top1"] > crop["top1"]


def test_shipped_learned_prior_grounds_synthref(synthref):
    if not all((BUILTIN[n] / "card.json").exists() for n in SHIPPED[:2]):
        pytest.skip("shipped stand-ins not built")
    from l2l.priors.standin import build

    prov = build()
    recs = synthref.samples("train")[:100]
    out = prov([PriorInput(r.sample_id, synthref.load_image(r.image_id), r.sentence) for r in recs])
    ious = []
    for r, p in zip(recs, out):
        gt = synthref.mask(r.ann_id) > 0
        ious.append(((p.prob >= 0.5) & gt).sum() / max(((p.prob >= 0.5) | gt).sum(), 1))
    assert np.mean(ious) > 0.3  # a model that grounds; the measured value on all of train is in docs/foundation.md


def test_shipped_mask_model_card_rebuilds():
    """The first 25 steps of the shipped mask model's own config give its card's first logged loss."""
    root = BUILTIN["synthpool-sam"]
    if not (root / "card.json").exists():
        pytest.skip("shipped mask model not built")
    card = json.loads((root / "card.json").read_text())
    cfg = pmm.MaskTrainConfig(**card["config"])
    _, traj, _ = pmm.train_mask_model(cfg, max_steps=cfg.log_every, show_progress=False)
    assert traj[0]["step"] == card["trajectory"][0]["step"]
    assert traj[0]["loss"] == pytest.approx(card["trajectory"][0]["loss"], rel=1e-3)


def test_pretrain_grounder_and_dual_encoder_write_loadable_folders(tmp_path):
    """The pretrain functions (real MiniLM-L6 text) write folders that load by path, with their cards."""
    g = pgr.GrounderTrainConfig(
        model=gr.GrounderConfig(image_size=64, conv_channels=TINY_CONV, dim=16, layers=1, heads=2, init=None),
        pool=PoolConfig(size=64),
        train_images=8,
        eval_images=3,
        steps=2,
        batch_size=4,
        workers=1,
        log_every=1,
    )
    card = pgr.pretrain_grounder(g, tmp_path / "g", show_progress=False)
    pred = gr.GrounderPredictor.from_pretrained(tmp_path / "g", text=None)
    img = np.zeros((40, 40, 3), np.uint8)
    ((box, conf),) = pred.ground([img], ["a red star"])
    assert len(box) == 4 and 0 < conf <= 1 and 0 <= card["metrics_eval_pool"]["acc50"] <= 1
    d = pde.DualEncoderTrainConfig(
        model=de.DualEncoderConfig(crop_size=32, conv_channels=TINY_CONV, embed_dim=8, init=None),
        pool=PoolConfig(size=64),
        train_images=10,
        steps=2,
        batch_size=16,
        workers=1,
        log_every=1,
    )
    card = pde.pretrain_dual_encoder(d, tmp_path / "d", show_progress=False)
    enc = de.DualEncoder.from_pretrained(tmp_path / "d", text=pred.text)
    assert enc.encode_text(["a ring"]).shape == (1, 8) and 0 <= card["metrics_eval_pool"]["pool_top1"] <= 1
    for f, what in ((tmp_path / "g", "grounder, an MLLM stand-in"), (tmp_path / "d", "CLIP stand-in")):
        readme = (f / "README.md").read_text()
        assert what in readme and "**stand-in**" in readme and "l2l pretrain" in readme
        card = json.loads((f / "card.json").read_text())
        assert card["steps"] == 2 and len(card["trajectory"]) == 2 and "text_encoder" in card
    with pytest.raises(UsageError, match="scene_share"):
        pde.DualEncoderTrainConfig(scene_share=1.0)
