"""PPT: noun phrases, the curriculum plan, the object-centric sources, matching and gradients through
the frozen mask decoder, prepare → train → resume → eval on SynthRef (no training mask read), and
the real path (tiny random CLIP and SAM2 folders) on a RefCOCO-layout fixture."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from l2l.ppt.config import CurriculumConfig, PPTConfig
from l2l.ppt.curriculum import plan, select
from l2l.ppt.data import ObjectCentric, object_image
from l2l.ppt.phrases import noun_phrases


def test_noun_phrases():
    assert noun_phrases("the square right of the blue star") == ["square", "blue star"]
    assert noun_phrases("the plain one closest to the solid orange hoop") == ["plain one", "solid orange hoop"]
    assert noun_phrases("the 2nd heart from the bottom") == ["heart"]
    assert noun_phrases("the leftmost triangle") == ["triangle"]
    assert noun_phrases("hoop with spots") == ["hoop with spots"]  # "with" + texture stays in the phrase
    assert noun_phrases("man in red shirt on the left") == ["man", "red shirt"]
    assert noun_phrases("left") == ["left"]  # nothing nameable: the text itself


def test_curriculum_plan_follows_the_paper_and_its_ablations():
    full = plan(CurriculumConfig())
    assert [(p.name, p.epochs, p.sources, p.select) for p in full] == [
        ("semantic", 10, ("h_sem", "d_sem"), ""),
        ("ris_d", 10, ("h_sem", "d_sem", "d_ref"), ""),
        ("ris", 20, ("h_sem", "d_sem", "d_ref", "h_ref"), "start"),
        ("refine", 10, ("h_sem", "h_ref"), "epoch"),
    ]
    assert [p.name for p in plan(CurriculumConfig(last_stage=1))] == ["semantic"]
    assert [p.name for p in plan(CurriculumConfig(last_stage=2))] == ["semantic", "ris_d", "ris"]
    (joint,) = plan(CurriculumConfig(enabled=False))
    assert joint.epochs == 50 and joint.sources == ("h_sem", "d_sem", "d_ref", "h_ref") and joint.select == "epoch"
    no_img = plan(CurriculumConfig(use_d_sem=False, use_d_ref=False))
    assert all("d_sem" not in p.sources and "d_ref" not in p.sources for p in no_img)
    with pytest.raises(Exception, match="ris_split"):
        PPTConfig(curriculum=dict(ris_split=31))


def test_select_takes_the_candidate_closest_to_the_answer():
    a = torch.zeros(8, 8, dtype=torch.bool)
    a[:4, :4] = True
    c = torch.zeros(3, 8, 8, dtype=torch.bool)
    c[0, 4:, 4:] = True
    c[1, :4, :3] = True
    c[2, :2, :2] = True
    assert select([a], [c]) == [1]


def test_object_centric_images_and_composites():
    imgs, masks, shapes = [], [], []
    for i in range(6):
        img, gt, shape = object_image(5, i, 64, (2.6, 4.0))
        ys, xs = np.nonzero(gt)
        assert img.shape == (64, 64, 3) and gt.any()
        assert abs(xs.mean() - 32) < 10 and abs(ys.mean() - 32) < 10  # object-centric
        imgs.append(img), masks.append(gt), shapes.append(shape)
    oc = ObjectCentric(np.stack(imgs), np.stack(masks), shapes, 5, 10)
    p = oc.sem(0, np.random.default_rng(0))
    assert p.text.endswith("in the middle") and p.scores == [1.0]
    for j in range(10):
        q = oc.ref(j)
        assert len(q.masks) == len(q.scores) >= 2 and sum(q.scores) == 1.0
        ref = q.masks[q.scores.index(1.0)]
        assert ref.any() and q.image.shape == (64, 64, 3)
        if j % 2 == 1:  # fusion: the relation word matches the two objects' positions
            other = q.masks[q.scores.index(0.0)]
            (ry, rx), (oy, ox) = (np.argwhere(ref).mean(0), np.argwhere(other).mean(0))
            rel = {"left of": rx < ox, "right of": rx > ox, "above": ry < oy, "below": ry > oy}
            word = next(w for w in rel if f" {w} " in q.text)
            assert rel[word], q.text
        assert oc.ref(j).text == q.text  # a composite is fixed by its index


def _standin_model(image_size=64, **gen):
    from l2l.ppt.config import GeneratorConfig
    from l2l.ppt.encoders import FrozenDualEncoder, FrozenMaskDecoder
    from l2l.ppt.generator import PPTModel

    torch.manual_seed(0)
    enc = FrozenDualEncoder.load("builtin:synthpool-clip")
    dec = FrozenMaskDecoder.load("builtin:synthpool-sam", image_size)
    return PPTModel(GeneratorConfig(dim=32, heads=2, **gen), enc, dec)


def test_matching_and_the_mask_loss_reaches_the_point_head_through_the_frozen_decoder():
    from l2l.ppt.config import LossConfig
    from l2l.ppt.generator import Output
    from l2l.ppt.loss import Target, match, ppt_loss

    model = _standin_model(queries=4, points=3)
    pts = torch.rand(1, 4, 3, 2)
    target_pts = pts[0, 2, [2, 0, 1]].clone()  # query 2's points, in another order
    out = Output(pts, torch.zeros(1, 4, 3), torch.zeros(1, 4))
    t = Target(torch.zeros(1, 64, 64), target_pts[None], torch.ones(1, 3), torch.ones(1))
    ((rows, cols, perms),) = match(out, [t], LossConfig(score_bce=0, point_bce=0))
    assert list(cols) == [2] and list(perms[0]) == [2, 0, 1]  # target point m ↔ predicted point perm[m]
    # a real forward: the mask term alone must move the point head (gradients through the decoder)
    images = torch.rand(2, 3, 64, 64)
    o, state = model(images, ["the red circle", "a star"])
    m = torch.zeros(1, 64, 64)
    m[0, 10:30, 10:30] = 1
    targets = [Target(m, torch.rand(1, 3, 2), torch.ones(1, 3), torch.ones(1)) for _ in range(2)]
    cfg = LossConfig(point_l1=0, point_bce=0, score_bce=0)
    loss, logs = ppt_loss(model, state, o, targets, cfg)
    loss.backward()
    assert model.generator.point_head[-1].weight.grad.abs().sum() > 0
    assert logs["dice"] > 0 and all(p.grad is None for p in model.decoder.pred.model.parameters())


def _tiny_cfg(**extra) -> list[str]:
    return [
        "image_size=64",
        "generator.dim=32",
        "generator.heads=2",
        "generator.queries=4",
        "generator.points=4",
        "objects.images=6",
        "objects.composites=6",
        "proposal_grid=4",
        "object_grid=4",
        "curriculum.epochs=[1,2,1]",
        "curriculum.ris_split=1",
        "batch_size=4",
        "ckpt_every=3",
        "log_every=1",
        *[f"{k}={v}" for k, v in extra.items()],
    ]


@pytest.mark.slow
def test_prepare_train_resume_eval_on_synthref_without_reading_a_training_mask(
    synthref_dir, tmp_path, monkeypatch, capsys
):
    from safetensors.torch import load_file

    from l2l.cli import main
    from l2l.data.refer import ReferDataset

    real_mask = ReferDataset.mask

    def refuse(self, ann_id):
        raise AssertionError("PPT read a ground-truth mask")

    monkeypatch.setattr(ReferDataset, "mask", refuse)
    labels = tmp_path / "labels"
    data = ["--data", str(synthref_dir)]
    assert main(["ppt", "prepare", *data, "--out", str(labels), "--max-images", "3", "--quiet", *_tiny_cfg()]) == 0
    said = capsys.readouterr().out
    assert "D_sem 6" in said and "H_sem" in said
    summary = json.loads((labels / "summary.json").read_text())
    assert (
        summary["images"] == 3 and summary["h_sem"] + summary["h_ref"] + summary["no_candidate"] == summary["sentences"]
    )
    # F2: a torn last line (a crash, a full disk) in either record file is redone, never read as the end
    for name in ("objects.jsonl", "images.jsonl"):
        f = labels / name
        f.write_bytes(f.read_bytes()[:-40])
    assert main(["ppt", "prepare", *data, "--out", str(labels), "--max-images", "3", "--quiet", *_tiny_cfg()]) == 0
    capsys.readouterr()
    assert json.loads((labels / "summary.json").read_text()) == summary
    lines = (labels / "images.jsonl").read_text().splitlines()
    (labels / "images.jsonl").write_text("\n".join([lines[0], lines[1][:30], *lines[2:]]) + "\n")  # torn inside
    assert main(["ppt", "prepare", *data, "--out", str(labels), "--max-images", "3", "--quiet", *_tiny_cfg()]) == 2
    assert "images.jsonl, line 2: not a JSON record" in capsys.readouterr().err
    (labels / "images.jsonl").write_text("\n".join([lines[0], *lines[2:]]) + "\n")  # the line removed: redone
    assert main(["ppt", "prepare", *data, "--out", str(labels), "--max-images", "3", "--quiet", *_tiny_cfg()]) == 0
    assert json.loads((labels / "summary.json").read_text()) == summary
    assert (
        main(
            [
                "ppt",
                "prepare",
                *data,
                "--out",
                str(labels),
                "--max-images",
                "3",
                "--quiet",
                *_tiny_cfg(),
                "objects.pool_seed=6",
            ]
        )
        == 2
    )  # other settings: refused
    assert "other settings" in capsys.readouterr().err
    # uninterrupted run vs a run stopped after 5 steps and resumed
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["ppt", "train", *data, "--labels", str(labels), "--out", str(a), "--quiet", *_tiny_cfg()]) == 0
    assert "(done)" in capsys.readouterr().out
    assert (
        main(
            [
                "ppt",
                "train",
                *data,
                "--labels",
                str(labels),
                "--out",
                str(b),
                "--quiet",
                "--max-steps",
                "5",
                *_tiny_cfg(),
            ]
        )
        == 0
    )
    assert "resume" in capsys.readouterr().out
    # F5: what a killed run logged after its last checkpoint (step 5) is not kept beside the resumed steps
    with open(b / "log.jsonl", "a") as f:
        f.write(json.dumps({"step": 6, "phase": "semantic", "epoch": 0, "loss": 9.0}) + "\n" + '{"step": 7, "lo')
    assert main(["ppt", "train", *data, "--labels", str(labels), "--out", str(b), "--quiet", *_tiny_cfg()]) == 0
    steps_b = [r["step"] for r in map(json.loads, (b / "log.jsonl").read_text().splitlines()) if "loss" in r]
    assert len(steps_b) == len(set(steps_b)) and 9.0 not in {
        r.get("loss") for r in map(json.loads, (b / "log.jsonl").read_text().splitlines())
    }

    def losses(run):
        rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
        return {r["step"]: r["loss"] for r in rows if "loss" in r}, [r for r in rows if "select" in r]

    (la, sa), (lb, sb) = losses(a), losses(b)
    assert la == lb and len(la) > 5 and sa == sb and sa  # exact resume, selections included
    done = json.loads((a / "done.json").read_text())
    assert [p["name"] for p in done["phases"]] == ["semantic", "ris_d", "ris", "refine"]
    wa = load_file(str(sorted((a / "checkpoints").iterdir())[-1] / "model.safetensors"))
    wb = load_file(str(sorted((b / "checkpoints").iterdir())[-1] / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(k.startswith("generator.") for k in wa)  # frozen parts never saved
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert main(["ppt", "train", *data, "--labels", str(labels), "--out", str(a), "--quiet", *_tiny_cfg(seed=3)]) == 2
    # another CPU thread count is not another run
    assert (
        main(["ppt", "train", *data, "--labels", str(labels), "--out", str(a), "--quiet", *_tiny_cfg(threads=1)]) == 0
    )
    capsys.readouterr()
    # evaluation reads the val masks: allowed again
    monkeypatch.setattr(ReferDataset, "mask", real_mask)
    res = tmp_path / "eval.json"
    assert (
        main(
            [
                "ppt",
                "eval",
                *data,
                "--run",
                str(a),
                "--split",
                "val",
                "--max-samples",
                "6",
                "--size",
                "64",
                "--out",
                str(res),
                "--quiet",
            ]
        )
        == 0
    )
    r = json.loads(res.read_text())
    assert r["samples"] == 6 and 0 <= r["mIoU"] <= 1 and r["P@0.3"] >= r["P@0.5"] >= r["P@0.7"]
    q = tmp_path / "q.json"
    assert main(["ppt", "quality", *data, "--labels", str(labels), "--run", str(a), "--out", str(q)]) == 0
    qual = json.loads(q.read_text())
    assert qual["all"]["sentences"] == summary["sentences"] and 0 <= qual["all"]["referent_among_candidates"] <= 1
    png = tmp_path / "show.png"
    assert main(["ppt", "show", *data, "--run", str(a), "--samples", "2", "--out", str(png)]) == 0
    assert png.stat().st_size > 1000
    for kind in ("naive", "proposals"):
        out = tmp_path / f"{kind}.json"
        assert (
            main(
                [
                    "ppt",
                    "baseline",
                    "--kind",
                    kind,
                    *data,
                    "--split",
                    "val",
                    "--max-samples",
                    "4",
                    "--size",
                    "64",
                    "--out",
                    str(out),
                    "--quiet",
                ]
            )
            == 0
        )
        assert json.loads(out.read_text())["samples"] == 4


@pytest.mark.slow
def test_real_path_tiny_clip_and_sam2_on_a_refer_fixture(refer_root, tmp_path, capsys):
    from transformers import Sam2Config, Sam2Model
    from transformers.models.sam2.configuration_sam2 import (
        Sam2HieraDetConfig,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    from l2l.cli import main

    from .conftest import write_tiny_clip

    torch.manual_seed(0)
    clip = write_tiny_clip(tmp_path / "clip", text_layers=2, vision_layers=2)
    sam = tmp_path / "sam2"
    bb = Sam2HieraDetConfig(
        image_size=[256, 256],
        hidden_size=16,
        blocks_per_stage=[1, 1, 1, 1],
        embed_dim_per_stage=[16, 32, 64, 128],
        num_attention_heads_per_stage=[1, 1, 1, 1],
        global_attention_blocks=[],
        window_size_per_stage=[4, 4, 4, 4],
        window_positional_embedding_background_size=[4, 4],
    )
    vc = Sam2VisionConfig(
        backbone_config=bb,
        backbone_channel_list=[128, 64, 32, 16],
        backbone_feature_sizes=[[64, 64], [32, 32], [16, 16]],
    )
    Sam2Model(
        Sam2Config(vision_config=vc, prompt_encoder_config=Sam2PromptEncoderConfig(image_size=256))
    ).save_pretrained(sam)
    root, _ = refer_root
    data = ["--data", str(root), "--dataset", "refcoco"]
    cfg = [
        *_tiny_cfg(),
        f"dual_encoder={clip}",
        f"mask_model={sam}",
        "generator.stages=[0,1]",
        "proposal_grid=2",
        "object_grid=2",
        "objects.images=4",
        "objects.composites=4",
        "curriculum.epochs=[1,1,1]",
        "curriculum.ris_split=0",
    ]
    labels, run = tmp_path / "labels", tmp_path / "run"
    assert main(["ppt", "prepare", *data, "--out", str(labels), "--quiet", *cfg]) == 0
    assert main(["ppt", "train", *data, "--labels", str(labels), "--out", str(run), "--quiet", *cfg]) == 0
    assert "(done)" in capsys.readouterr().out
    # the paper's mask source on the real path: CLIP's patch tokens (encode_dense) → points → SAM2
    surg = tmp_path / "labels_surgery"
    assert (
        main(["ppt", "prepare", *data, "--out", str(surg), "--quiet", *cfg, "mask_source=surgery", "surgery.size=32"])
        == 0
    )
    assert json.loads((surg / "meta.json").read_text())["mask_source"] == "surgery"
    capsys.readouterr()
    res = tmp_path / "eval.json"
    assert (
        main(["ppt", "eval", *data, "--run", str(run), "--split", "val", "--size", "64", "--out", str(res), "--quiet"])
        == 0
    )
    assert json.loads(res.read_text())["samples"] > 0
    bad = [c for c in cfg if not c.startswith("generator.stages")] + ["generator.stages=[0,5]"]
    assert main(["ppt", "train", *data, "--labels", str(labels), "--out", str(tmp_path / "bad"), "--quiet", *bad]) == 2
    assert "stages" in capsys.readouterr().err


def test_table_means_over_seeds_and_keeps_the_paper_column(tmp_path, capsys):
    from l2l.cli import main

    for seed, v in ((0, 0.30), (1, 0.40)):
        (tmp_path / f"full_s{seed}_val.json").write_text(
            json.dumps({m: v for m in ("mIoU", "oIoU", "P@0.3", "P@0.5", "P@0.7")})
        )
    (tmp_path / "naive_val.json").write_text(
        json.dumps({"mIoU": 0.1, "oIoU": 0.1, "P@0.3": 0.1, "P@0.5": 0.1, "P@0.7": 0.1})
    )
    out = tmp_path / "t.md"
    assert main(["ppt", "table", "--results", str(tmp_path), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| 5 | 4 + domain refinement (full PPT) | 2 | 35.00 ± 7.07 (2/3)" in text and "46.76" in text
    assert "| 1 | dual encoder + mask model (naive prompting) | 1 | 10.00 |" in text
    assert "w/o curriculum" not in text  # rows without results are left out


def test_surgery_response_points_and_localizer_on_toys(synthref_dir, tmp_path, monkeypatch):
    """CLIP Surgery → SAM (ppt/localize.py): the response is the phrase's similarity minus the mean over the
    phrase and the redundant texts; its peak becomes a positive point and its trough a negative one, at
    the cells' centres in image pixels; the mask model's best hypothesis is the pseudo mask. ``ppt prepare``
    with ``mask_source=surgery`` writes labels without reading a ground-truth mask."""
    from l2l.errors import UsageError
    from l2l.ppt.localize import SurgeryConfig, SurgeryLocalizer, point_prompts, surgery_map

    dense = torch.zeros(2, 3, 2)
    dense[..., 1] = 1.0
    dense[1, 2] = torch.tensor([1.0, 0.0])  # one cell points at the phrase
    text, red = torch.tensor([1.0, 0.0]), torch.tensor([[0.0, 1.0]])
    resp = surgery_map(dense, text, red)
    assert torch.allclose(resp, torch.tensor([[-0.5, -0.5, -0.5], [-0.5, -0.5, 0.5]]))
    coords, labels = point_prompts(resp, (20, 30), positives=1, negatives=1)
    assert coords[0].tolist() == [25.0, 15.0] and labels.tolist() == [1, 0]

    class NoDense:
        def encode_text(self, texts):
            return torch.zeros(len(texts), 2)

    with pytest.raises(UsageError, match="encode_dense"):
        SurgeryLocalizer(None, NoDense())
    with pytest.raises(UsageError):
        SurgeryConfig(positives=0)

    from l2l.cli import main
    from l2l.data.refer import ReferDataset

    monkeypatch.setattr(ReferDataset, "mask", lambda self, a: (_ for _ in ()).throw(AssertionError("mask read")))
    labels = tmp_path / "labels"
    assert (
        main(
            [
                "ppt",
                "prepare",
                "--data",
                str(synthref_dir),
                "--out",
                str(labels),
                "--max-images",
                "2",
                "--quiet",
                *_tiny_cfg(),
                "mask_source=surgery",
                "surgery.size=64",
            ]
        )
        == 0
    )
    summary = json.loads((labels / "summary.json").read_text())
    assert summary["images"] == 2 and summary["sentences"] > 0
    assert (
        main(
            [
                "ppt",
                "prepare",
                "--data",
                str(synthref_dir),
                "--out",
                str(tmp_path / "x"),
                "--quiet",
                "--masks-from",
                str(labels),
                *_tiny_cfg(),
                "mask_source=surgery",
            ]
        )
        == 2
    )
