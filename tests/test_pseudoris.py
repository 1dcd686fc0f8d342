"""Pseudo-RIS: Eq. 2 (distinctive sampling) on a captioner with known distributions, the decoders,
Eqs. 4–6 on a dual encoder with known embeddings, the noun-phrase extractor, the captioner
stand-in and the real (BLIP) path with tiny random configs, and the pipeline: generate (resumable,
statuses counted) → a REFER dataset the loader opens → train → eval."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from l2l.errors import UsageError
from l2l.pseudoris import sampling
from l2l.pseudoris.config import PseudoRISConfig
from l2l.pseudoris.filtering import distinctiveness, noun_phrase

VOCAB = ["<pad>", "<bos>", "<eos>", "<unk>", "ring", "red", "blue"]


class ToyCaptioner:
    """Patch k is a colour (0 red, 1 blue): first word ring 0.6, own colour 0.3, other colour 0.1; then eos."""

    bos, eos, vocab_size, max_words, forbidden = 1, 2, len(VOCAB), 3, (0, 1, 3)

    def embed(self, patches, scales):
        colour = torch.tensor([int(p[0, 0, 2] > p[0, 0, 0]) for p in patches])
        return torch.ones(len(patches), 2) / 2**0.5, colour  # identical embeddings: s_ij = 1

    def start(self, context, index):
        return context[index], torch.zeros(len(index), dtype=torch.long)

    def step(self, state, tokens):
        colour, t = state
        p = torch.full((len(colour), len(VOCAB)), 1e-9)
        first = t == 0
        p[first, 4] = 0.6
        p[first, 5] = torch.where(colour[first] == 0, 0.3, 0.1)
        p[first, 6] = torch.where(colour[first] == 0, 0.1, 0.3)
        p[~first, 2] = 1.0
        return p.log(), (colour, t + 1)

    def reorder(self, state, index):
        return state[0][index], state[1][index]

    def decode(self, ids):
        out = []
        for i in ids:
            if i == self.eos:
                break
            out.append(VOCAB[i])
        return " ".join(out)

    def config(self):
        return {"captioner": "toy"}


def _patches():
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((8, 8, 3), np.uint8)
    blue[..., 2] = 255
    return [red, blue], [0.5, 0.5]


def test_distinctive_sampling_prefers_the_word_that_tells_the_patches_apart():
    patches, scales = _patches()
    cap = ToyCaptioner()
    plain = sampling.sample_captions(cap, patches, scales, top_k=[1], top_p=[], distinctive=False, beams=2)
    dist = sampling.sample_captions(cap, patches, scales, top_k=[1], top_p=[], distinctive=True, beams=2)
    assert [c.text for c in plain[0]] == ["ring", "ring"]  # beam and naive top-1: the generic word
    assert [c.text for c in dist[0]] == ["ring", "red"] and [c.text for c in dist[1]] == ["ring", "blue"]
    assert dist[0][1].decoder == "top_k=1" and dist[0][0].decoder == "beam"
    assert dist[0][1].log_prob == pytest.approx(np.log(0.3), abs=1e-4)  # Eq. 1 under the target alone
    # Eq. 2 by hand: z = P_i − 1/n Σ s_ij P_j, softmax(z / T)
    p = torch.tensor([[0.6, 0.3, 0.1], [0.6, 0.1, 0.3]])
    got = sampling.calibrated(p, 0, torch.tensor([1.0, 1.0]), 0.1)
    want = torch.softmax(torch.tensor([0.0, 0.2, -0.2]) / 0.1, -1)
    assert torch.allclose(got, want)
    rows = sampling.calibrated_rows(p[None].expand(2, -1, -1), torch.tensor([0, 1]), torch.eye(2) * 0 + 1, 0.1)
    assert torch.allclose(rows[0], want) and torch.allclose(rows[1], sampling.calibrated(p, 1, torch.ones(2), 0.1))


def test_weighted_sum_aggregation_by_hand():
    """Table 14's variant (App. H): z = P_i − Σ_{j≠i} w_ij P_j, w_ij = s_ij / Σ_{j≠i} s_ij; the average (Eq. 2)
    divides by n instead. Two other patches with similarities 0.75 and 0.25."""
    p = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    sims = torch.tensor([[1.0, 0.75, 0.25], [0.75, 1.0, 0.5], [0.25, 0.5, 1.0]])
    got = sampling.calibrated_rows(p[None], torch.tensor([0]), sims, 0.1, "weighted_sum")[0]
    want = torch.softmax((p[0] - 0.75 * p[1] - 0.25 * p[2]) / 0.1, -1)
    assert torch.allclose(got, want)
    avg = sampling.calibrated_rows(p[None], torch.tensor([0]), sims, 0.1, "average")[0]
    assert torch.allclose(avg, torch.softmax((p[0] - (0.75 * p[1] + 0.25 * p[2]) / 2) / 0.1, -1))
    assert not torch.allclose(avg, got)
    neg = sampling.calibrated_rows(p[None], torch.tensor([0]), -sims, 0.1, "weighted_sum")[0]  # all floored: uniform
    assert torch.allclose(neg, torch.softmax((p[0] - 0.5 * p[1] - 0.5 * p[2]) / 0.1, -1))
    patches, scales = _patches()
    a = sampling.sample_captions(ToyCaptioner(), patches, scales, seed=3, aggregation="weighted_sum")
    assert len(a[0]) == 11


def test_caption_counts_and_thresholds_that_keep_as_many_as_dos(tmp_path):
    """Tables 10 and 13: vocabulary and mean DoS of a generation's records; Table 12: the UoS / CoS
    thresholds that keep as many captions as DoS ≥ τ."""
    from l2l.pseudoris.quality import caption_counts, thresholds_matching

    caps = [
        {"text": "a red ring", "dos": 2.0, "uos": 1.5, "cos": 30.0, "kept": True},
        {"text": "a blue star", "dos": 1.0, "uos": 2.5, "cos": 20.0, "kept": False},
        {"text": "the red disc", "dos": "inf", "uos": "inf", "cos": 25.0, "kept": True},
    ]
    rec = {"image_id": 1, "status": "ok", "masks": [{"captions": caps}]}
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "part-0.jsonl").write_text(json.dumps(rec) + "\n")
    c = caption_counts(tmp_path, ["the red ring", "a green heart"], tau=1.3)
    assert (c["candidates"], c["kept"], c["vocabulary_kept"], c["vocabulary_candidates"]) == (3, 2, 5, 7)
    assert c["vocabulary_dataset"] == 6 and c["mean_dos"] == 1.5 and c["dos_finite"] == 2
    assert c["thresholds_matching_dos"] == {"tau": 1.3, "dos": 2.0, "uos": 2.5, "cos": 25.0}
    assert thresholds_matching({"dos": [1.0], "cos": [5.0]}, "dos", 1.3) == {"dos": None, "cos": None}
    # the correctness-only filter is a switch of the config and of a refiltering
    from l2l.pseudoris.generate import refilter

    cfg = PseudoRISConfig(filter={"score": "cos", "tau": 25.0})
    kept = [c["kept"] for c in refilter(rec, cfg)["masks"][0]["captions"]]
    assert kept == [True, False, True]


def test_cut_and_determinism():
    d = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    assert torch.allclose(sampling.cut(d, top_k=2), torch.tensor([[0.625, 0.375, 0, 0]]))
    assert torch.allclose(sampling.cut(d, top_p=0.4), torch.tensor([[1.0, 0, 0, 0]]))  # at least one word
    assert torch.allclose(sampling.cut(d, top_p=0.7), torch.tensor([[0.625, 0.375, 0, 0]]))
    patches, scales = _patches()
    a = sampling.sample_captions(ToyCaptioner(), patches, scales, seed=3)
    b = sampling.sample_captions(ToyCaptioner(), patches, scales, seed=3)
    assert a == b and len(a[0]) == 11  # beam + 5 top-k + 5 top-p, the paper's 11 per crop


def test_caption_attributes_read_the_shifted_dialect():
    from l2l.pseudoris.quality import caption_attributes

    assert caption_attributes("a photo of a giant cyan unpatterned triangle") == {
        "size": {"large"},
        "color": {"cyan"},
        "texture": {"solid"},
        "shape": {"triangle"},
    }
    assert caption_attributes("a circle with a hole on a background") == {"shape": {"ring"}}  # longest synonym first
    assert caption_attributes("scarlet lemon disc")["color"] == {"red", "yellow"}  # contradictory
    from l2l.pseudoris.quality import names_a_place

    assert names_a_place("the red ring left of the star") and names_a_place("counting from the top, the second disc")
    assert not names_a_place("a photo of a small red striped ring on a background")


def test_noun_phrase():
    assert noun_phrase("a photo of a small red striped ring") == "a small red striped ring"
    assert noun_phrase("the red ring to the left of the blue star") == "the red ring"
    assert noun_phrase("An image of a disc on a background") == "a disc"
    assert noun_phrase("man wearing a red tie") == "man"


class ToyDual:
    """Images: the colour of pixel (0, 0) one-hot; texts: a colour word one-hot (cosines 1 or 0)."""

    logit_scale = 10.0

    def encode_image(self, images):
        return torch.tensor([[float(im[0, 0, 0] > 127), float(im[0, 0, 2] > 127)] for im in images])

    def encode_text(self, texts):
        return torch.tensor([[float("red" in t), float("blue" in t)] for t in texts]) + 1e-9


def test_uniqueness_correctness_distinctiveness_by_hand():
    (red, blue), _ = _patches()
    caps = [(0, "a red ring"), (0, "a blue ring"), (1, "a blue ring"), (0, "a ring")]
    s = distinctiveness(ToyDual(), [red, blue], [red, blue], caps)
    floor = 1e-3 * 10
    assert s["uos"][0] == pytest.approx(10 / floor) and s["uos"][1] == pytest.approx(floor / 10)
    assert s["uos"][2] == pytest.approx(10 / floor) and s["uos"][3] == pytest.approx(1.0)  # ties with the other mask
    assert s["dos"][0] == pytest.approx(s["cos"][0] * 10 / (floor * floor))
    single = distinctiveness(ToyDual(), [red], [red], [(0, "a ring")])
    assert np.isinf(single["dos"][0])  # one mask: nothing to be confused with


def test_config_validation():
    assert PseudoRISConfig().candidates_per_mask == 44  # the paper's 4 crops × 11
    for bad in (
        {"masks": {"source": "x"}},
        {"captions": {"margins": [1.5]}},
        {"captions": {"top_p": [0]}},
        {"filter": {"score": "np"}},
        {"captions": {"temperature": 0}},
        {"captions": {"aggregation": "max"}},
    ):
        with pytest.raises(UsageError):
            PseudoRISConfig(**bad)


# ----------------------------------------------------------------------------- stand-in and real captioner
def _tiny_captioner():
    from l2l.foundation.captioner import SPECIALS, Captioner, CaptionerConfig, CaptionerNet

    torch.manual_seed(0)
    cfg = CaptionerConfig(
        conv_channels=(8, 8, 8, 8),
        embed_dim=16,
        word_dim=8,
        hidden=16,
        max_words=5,
        init=None,
        vocab=list(SPECIALS) + ["a", "red", "blue", "ring", "star", "photo", "of"],
    )
    return Captioner(CaptionerNet(cfg))


def test_captioner_stand_in_steps_match_teacher_forcing_and_beam1_is_greedy():
    from l2l.foundation.captioner import greedy_captions

    cap = _tiny_captioner()
    rng = np.random.default_rng(0)
    patches = [rng.integers(0, 255, (20, 30, 3)).astype(np.uint8) for _ in range(3)]
    _, ctx = cap.embed(patches, [0.2, 0.5, 1.0])
    tok = torch.tensor([[1, 4, 6, 7], [1, 5, 5, 8], [1, 9, 4, 6]])
    full = cap.net.logits(ctx, tok)
    state = cap.start(ctx, torch.arange(3))
    for t in range(4):
        lg, state = cap.step(state, tok[:, t])
        assert torch.allclose(lg, full[:, t], atol=1e-5)
    texts, _ = sampling.beam_search(cap, patches, [0.2, 0.5, 1.0], beams=1)
    assert texts == greedy_captions(cap, patches, [0.2, 0.5, 1.0])
    assert cap.decode(cap.encode("A photo of a red zebra")[1:]) == "a photo of a red"  # unknown words dropped


def test_real_captioner_path_with_a_tiny_random_blip():
    from transformers import AutoTokenizer, BlipConfig, BlipForConditionalGeneration

    from l2l.data.text_augment import default_text_model_path
    from l2l.foundation.captioner import HFCaptioner

    tok = AutoTokenizer.from_pretrained(str(default_text_model_path()), local_files_only=True)
    cfg = BlipConfig(
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        text_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "vocab_size": tok.vocab_size,
            "encoder_hidden_size": 16,
            "bos_token_id": tok.cls_token_id,
            "sep_token_id": tok.sep_token_id,
            "pad_token_id": tok.pad_token_id,
        },
    )
    torch.manual_seed(0)
    cap = HFCaptioner(BlipForConditionalGeneration(cfg), tok, max_words=4)
    rng = np.random.default_rng(1)
    patches = [rng.integers(0, 255, (40, 40, 3)).astype(np.uint8) for _ in range(2)]
    out = sampling.sample_captions(cap, patches, [0.3, 0.6], top_k=[5], top_p=[0.5], beams=2)
    assert [len(o) for o in out] == [3, 3] and all(isinstance(c.text, str) for o in out for c in o)


# ----------------------------------------------------------------------------- the pipeline
@pytest.fixture(scope="module")
def captioner_folder(tmp_path_factory):
    from l2l.data.pool import PoolConfig
    from l2l.foundation.captioner import CaptionerConfig
    from l2l.pretrain.captioner import CaptionerTrainConfig, pretrain_captioner

    out = tmp_path_factory.mktemp("captioner")
    cfg = CaptionerTrainConfig(
        model=CaptionerConfig(conv_channels=(8, 8, 8, 8), embed_dim=16, word_dim=8, hidden=16, init=None),
        pool=PoolConfig(size=64),
        train_images=10,
        steps=3,
        batch_size=8,
        workers=1,
        log_every=1,
    )
    card = pretrain_captioner(cfg, out, show_progress=False)
    assert len(card["trajectory"]) == 3 and card["metrics_eval_pool"]["perplexity"] > 1
    return out


@pytest.mark.slow
def test_generate_build_train_eval(synthref_dir, captioner_folder, tmp_path, capsys, monkeypatch):
    from l2l.cli import main
    from l2l.data.refer import ReferDataset

    from .test_trainer import TINY

    real_mask = ReferDataset.mask

    def refuse(self, ann_id):
        raise AssertionError("zero-shot Pseudo-RIS read a ground-truth mask")

    monkeypatch.setattr(ReferDataset, "mask", refuse)  # generation and refiltering: no human label read
    out = tmp_path / "pseudo"
    argv = [
        "pseudo-ris",
        "generate",
        "--data",
        str(synthref_dir),
        "--out",
        str(out),
        "--captioner",
        str(captioner_folder),
        "--max-images",
        "3",
        "--device",
        "cpu",
        "--quiet",
        "masks.points_per_side=6",
        "filter.tau=1.0",
    ]
    assert main(argv) == 0
    assert main([*argv[:5], str(tmp_path / "refiltered"), *argv[6:], "--records-from", str(out)]) == 0
    monkeypatch.setattr(ReferDataset, "mask", real_mask)
    said = capsys.readouterr().out
    assert "44 candidates per mask" in said and "pseudo refs" in said
    ds = ReferDataset.open(out)
    src = ReferDataset.open(synthref_dir)
    train = ds.samples("train")
    assert train and all(r.kind == "pseudo" for r in train) and ds.name.startswith("pseudo-ris")
    assert len(ds.samples("val")) == len(src.samples("val"))  # the evaluation splits are the source's
    assert {r.image_id for r in train} <= set(src.image_ids("train")[:3])
    recs = [json.loads(x) for x in (out / "records" / "part-0.jsonl").read_text().splitlines()]
    assert len(recs) == 3 and all(
        "uos" in c and "sources" in c for r in recs for m in r["masks"] for c in m["captions"]
    )
    assert main(argv) == 0 and "skipped 3" in capsys.readouterr().out  # resumable: nothing done twice
    bad = argv[:]
    bad[bad.index("filter.tau=1.0")] = "filter.tau=2.0"
    assert main(bad) == 2 and "another config" in capsys.readouterr().err
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--out",
                str(run),
                f"data.root={out}",
                *TINY,
                "data.label_fraction=100%",
                "epochs=1",
                "batch_size=4",
                "total_steps=2",
            ]
        )
        == 0
    )
    assert main(["eval", "--ckpt", str(run), "--split", "val", "--max-samples", "4"]) == 0
    # the paper's semi-supervised protocol: the pseudo-supervised model fine-tuned on the labeled images
    from l2l.config import load_config
    from l2l.engine.trainer import Trainer
    from l2l.models.segmenter import Segmenter
    from l2l.schema import TrainConfig

    cfg = load_config(
        TrainConfig, None, [f"data.root={synthref_dir}", *TINY, "data.label_fraction=20%", f"init_from={run}"]
    )
    tr = Trainer(cfg, tmp_path / "finetune")
    tr.prepare()
    start = Segmenter.from_pretrained(run).state_dict()
    assert all(torch.equal(v, start[k]) for k, v in tr.model.state_dict().items())
    zs = tmp_path / "zs.json"
    assert (
        main(
            [
                "pseudo-ris",
                "baseline",
                "--data",
                str(synthref_dir),
                "--split",
                "val",
                "--max-samples",
                "4",
                "--points-per-side",
                "4",
                "--size",
                "64",
                "--out",
                str(zs),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    res = json.loads(zs.read_text())
    assert res["samples"] == 4 and 0 <= res["oIoU"] <= 1 and "no_proposal" in res
    q = tmp_path / "q.json"
    assert main(["pseudo-ris", "quality", str(out), "--data", str(synthref_dir), "--out", str(q)]) == 0
    qual = json.loads(q.read_text())
    assert qual["masks"] > 0 and 0 <= qual["kept"]["picks_out"] <= qual["kept"]["correct"] <= 1
    png = tmp_path / "show.png"
    assert main(["pseudo-ris", "show", str(out), "--out", str(png), "--images", "2"]) == 0 and png.stat().st_size > 1000


def test_images_without_masks_are_counted_and_ground_truth_masks_and_semi(synthref_dir, captioner_folder, tmp_path):
    from l2l.data.refer import ReferDataset
    from l2l.data.splits import make_split
    from l2l.foundation.captioner import Captioner
    from l2l.foundation.dual_encoder import DualEncoder
    from l2l.foundation.mask_model import MaskPredictor
    from l2l.pseudoris.generate import Models, build_dataset, generate

    src = ReferDataset.open(synthref_dir)
    models = Models(
        MaskPredictor.from_pretrained("builtin:synthpool-sam"),
        Captioner.from_pretrained(captioner_folder),
        DualEncoder.from_pretrained("builtin:synthpool-clip"),
    )
    cfg = PseudoRISConfig(masks={"pred_iou_thresh": 1.01, "points_per_side": 4})  # nothing passes
    counts = generate(src, tmp_path / "none", models, cfg, max_images=2, show_progress=False)
    assert counts == {"skipped": 0, "no_masks": 2}
    with pytest.raises(UsageError, match="no labelled image|needs the labeled"):
        build_dataset(src, tmp_path / "none", "semi")
    gt = PseudoRISConfig(masks={"source": "gt"}, captions={"margins": [0.1], "top_k": [5], "top_p": []})
    counts = generate(src, tmp_path / "gt", models, gt, max_images=3, show_progress=False)
    assert counts.get("no_masks", 0) == 0
    rec = json.loads((tmp_path / "gt" / "records" / "part-0.jsonl").read_text().splitlines()[0])
    assert all("ann_id" in m for m in rec["masks"]) and all(len(m["captions"]) <= 2 for m in rec["masks"])
    # F3: a rerun after a torn last line labels that image again, never appends onto the fragment
    part = tmp_path / "gt" / "records" / "part-0.jsonl"
    whole = part.read_bytes()
    part.write_bytes(whole[: whole.rstrip(b"\n").rfind(b"\n") + 1 + 25])
    counts = generate(src, tmp_path / "gt", models, gt, max_images=3, show_progress=False)
    assert counts["skipped"] == 2 and sum(counts.values()) == 3
    assert [json.loads(x)["image_id"] for x in part.read_text().splitlines()] == [
        json.loads(x)["image_id"] for x in whole.decode().splitlines()
    ]
    again_cfg = dataclasses.replace(gt, captions=gt.captions, seed=1)
    again = generate(
        src, tmp_path / "again", models, again_cfg, max_images=3, show_progress=False, masks_from=tmp_path / "gt"
    )
    assert again.get("ok", 0) + again.get("none_kept", 0) == 3
    rec2 = json.loads((tmp_path / "again" / "records" / "part-0.jsonl").read_text().splitlines()[0])
    assert [m["rle"] for m in rec2["masks"]] == [m["rle"] for m in rec["masks"]]  # the same masks, reused
    with pytest.raises(UsageError, match="other mask settings"):
        generate(
            src,
            tmp_path / "x",
            models,
            PseudoRISConfig(),
            max_images=1,
            show_progress=False,
            masks_from=tmp_path / "gt",
        )
    # the filter ablation: the same scored candidates, refiltered (no captioning again)
    off = dataclasses.replace(gt, filter=dataclasses.replace(gt.filter, enabled=False))
    generate(src, tmp_path / "off", None, off, max_images=3, show_progress=False, records_from=tmp_path / "gt")
    caps = [
        [c for m in json.loads(line)["masks"] for c in m["captions"]]
        for line in (tmp_path / "gt" / "records" / "part-0.jsonl").read_text().splitlines()
    ]
    caps_off = [
        [c for m in json.loads(line)["masks"] for c in m["captions"]]
        for line in (tmp_path / "off" / "records" / "part-0.jsonl").read_text().splitlines()
    ]
    assert [[c["text"] for c in x] for x in caps] == [[c["text"] for c in x] for x in caps_off]
    assert all(c["kept"] for x in caps_off for c in x) and not all(c["kept"] for x in caps for c in x)
    same = generate(src, tmp_path / "same", None, gt, max_images=3, show_progress=False, records_from=tmp_path / "gt")
    assert (tmp_path / "same" / "records" / "part-0.jsonl").read_text() == (
        tmp_path / "gt" / "records" / "part-0.jsonl"
    ).read_text() and sum(same.values()) == 3
    with pytest.raises(UsageError, match="settings other than the filter"):
        generate(src, tmp_path / "y", None, again_cfg, max_images=1, show_progress=False, records_from=tmp_path / "gt")
    labeled = sorted(make_split(src.name, src.image_ids("train"), "10%", 22).labeled)
    meta = build_dataset(src, tmp_path / "gt", "semi", labeled)
    ds = ReferDataset.open(tmp_path / "gt")
    kinds = {r.kind for r in ds.samples("train")}
    assert meta["labeled_images"] == len(labeled) and "pseudo" in kinds and kinds - {"pseudo"}  # both kinds present
    assert Path(meta["image_dir"]).exists()


def test_zero_shot_predictor_picks_the_proposal_the_dual_encoder_prefers():
    from l2l.pseudoris.zero_shot import ZeroShotPredictor

    img = np.zeros((32, 32, 3), np.uint8)
    img[2:12, 2:12, 0] = 255  # a red square
    img[20:30, 20:30, 2] = 255  # a blue square
    red, blue = np.zeros((32, 32), bool), np.zeros((32, 32), bool)
    red[2:12, 2:12] = True
    blue[20:30, 20:30] = True

    class Masks:  # automatic mode of a mask model that finds both squares
        def set_image(self, image):
            pass

    import l2l.pseudoris.zero_shot as zs

    recs = [
        {"segmentation": m, "area": int(m.sum()), "predicted_iou": 0.9, "stability_score": 0.9, "bbox": [0, 0, 1, 1]}
        for m in (red, blue)
    ]
    orig = zs.extract_masks
    zs.extract_masks = lambda predictor, image, cfg: recs
    try:
        p = ZeroShotPredictor(Masks(), ToyDual())
        x = torch.from_numpy(img).permute(2, 0, 1).float()[None].repeat(2, 1, 1, 1) / 255
        out = p.predict(x, ["the blue one", "a red square"])
        # scoring="regions": each proposal's box in its scene (a toy region encoder that knows left from right)
        where = ZeroShotPredictor(Masks(), ToyRegionDual(), scoring="regions").predict(
            x, ["the right one", "the left one"]
        )
    finally:
        zs.extract_masks = orig
    assert torch.equal(out[0].bool(), torch.from_numpy(blue)) and torch.equal(out[1].bool(), torch.from_numpy(red))
    assert torch.equal(where[0].bool(), torch.from_numpy(blue)) and torch.equal(where[1].bool(), torch.from_numpy(red))
    with pytest.raises(UsageError, match="scoring"):
        ZeroShotPredictor(Masks(), ToyDual(), scoring="crop")


class ToyRegionDual:
    """Regions: is the box's left edge in the left or the right half of the image (one-hot); texts: left/right."""

    def encode_regions(self, image, boxes):
        half = image.shape[1] / 2
        return torch.tensor([[float(b[0] < half), float(b[0] >= half)] for b in boxes])

    def encode_text(self, texts):
        return torch.tensor([[float("left" in t), float("right" in t)] for t in texts]) + 1e-9


@pytest.mark.slow
def test_a_refer_dataset_goes_through_generate_and_train(refer_root, captioner_folder, tmp_path, capsys):
    """RefCOCO's layout (pickled refs, COCO images): ground-truth masks here (the fixture's images are noise)."""
    from l2l.cli import main
    from l2l.data.refer import ReferDataset

    from .test_trainer import TINY

    root, _ = refer_root
    out = tmp_path / "pseudo"
    assert (
        main(
            [
                "pseudo-ris",
                "generate",
                "--data",
                str(root),
                "--dataset",
                "refcoco",
                "--out",
                str(out),
                "--captioner",
                str(captioner_folder),
                "--device",
                "cpu",
                "--quiet",
                "masks.source=gt",
                "filter.enabled=false",
            ]
        )
        == 0
    )
    assert "ground truth (an upper bound" in capsys.readouterr().out
    ds = ReferDataset.open(out)
    src = ReferDataset.open(root, "refcoco")
    assert ds.samples("train") and {r.kind for r in ds.samples("train")} == {"pseudo"}
    assert [r.sentence for r in ds.samples("val")] == [r.sentence for r in src.samples("val")]
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--out",
                str(run),
                f"data.root={out}",
                *TINY,
                "data.label_fraction=100%",
                "epochs=1",
                "batch_size=2",
                "total_steps=2",
                "data.eval_split=val",
            ]
        )
        == 0
    )


def test_table_puts_the_zero_label_rows_beside_l2l_and_the_ablations(tmp_path, capsys):
    from l2l.cli import main

    keys = ("oIoU", "mIoU", "P@0.5", "P@0.7", "P@0.9")
    for name, v in (
        ("full_s22", 0.20),
        ("full_s23", 0.24),
        ("zero_shot_baseline", 0.25),
        ("naive_s22", 0.1),
        ("l2l_1pct_s22", 0.17),
        ("cos800_s22", 0.3),
        ("tau1.5_s22", 0.31),
        ("cris_full_s22", 0.28),
    ):
        (tmp_path / f"{name}_val.json").write_text(json.dumps({m: v for m in keys}))
    out = tmp_path / "t.md"
    assert main(["pseudo-ris", "table", "--results", str(tmp_path), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| Pseudo-RIS → segmenter, all training images (no label) | 2 | 22.00 ± 2.83 (2/3) |" in text
    assert "(no label) | 1 | 25.00 |" in text and "| naive captions, no filter (first 800 images) | 1 | 10.00 |" in text
    assert "(1/3)" in text.split("L2L, 1 %")[1].splitlines()[0]  # seeds missing are said
    assert "ground-truth masks" not in text  # rows without results are left out
    assert (
        "| PR T12 | filter by correctness (CoS) alone" in text
        and "| PR F9 | filter threshold τ = 1.5 (800) | 1 | 31.00 |" in text
    )
    assert text.index("zero-shot baseline") < text.index("Pseudo-RIS → segmenter") < text.index("naive captions")
    cris = next(line for line in text.splitlines() if "Pseudo-RIS → CRIS" in line)  # the target model's row
    assert "| 1 | 28.00 (1/3) |" in cris and text.index("→ segmenter") < text.index("→ CRIS") < text.index("naive")


def test_normalised_cuts_find_two_objects_and_the_overlap_selection_takes_the_best_proposal():
    """App. F with our CutLER substitute: MaskCut-style cuts on a feature map with two distinct blobs find
    them one after the other; for each found mask the automatic mask of highest IoU is kept, each once."""
    from l2l.pseudoris.config import MaskConfig
    from l2l.pseudoris.masks import extract_masks, select_by_overlap
    from l2l.pseudoris.ncut import discover

    torch.manual_seed(0)
    f = torch.randn(8, 16, 16) * 0.3
    f[0] += 1.0
    f[1, 3:7, 3:7] += 3.0
    f[2, 10:14, 9:13] += 3.0
    a = torch.zeros(16, 16, dtype=torch.bool)
    a[3:7, 3:7] = True
    b = torch.zeros(16, 16, dtype=torch.bool)
    b[10:14, 9:13] = True
    found = discover(f, masks=2, tau=0.3)
    iou = lambda x, y: float((x & y).sum()) / float((x | y).sum())  # noqa: E731
    assert len(found) == 2 and {max(range(2), key=lambda k: iou(m, (a, b)[k])) for m in found} == {0, 1}
    assert all(max(iou(m, a), iou(m, b)) >= 0.6 for m in found)

    def rec(m, score):
        return {"segmentation": m.numpy(), "area": int(m.sum()), "predicted_iou": score, "stability_score": 1.0}

    big = torch.zeros(16, 16, dtype=torch.bool)
    big[:, :12] = True
    recs = [rec(big, 0.99), rec(a, 0.5), rec(b, 0.4)]
    cfg = MaskConfig(select="ncut", max_masks=5, min_area_frac=0.01, max_area_frac=0.9)
    picked = select_by_overlap(recs, [m.numpy() for m in found], 256, cfg)
    assert {int(r["predicted_iou"] * 10) for r in picked} == {5, 4}  # the blobs, not the best-scored big mask
    with pytest.raises(UsageError, match="ncut needs"):
        extract_masks(None, np.zeros((16, 16, 3), np.uint8), cfg)


def test_a_generation_made_before_a_switch_existed_reads_as_made_with_its_default():
    from l2l.pseudoris.generate import _config_of

    old = PseudoRISConfig().to_dict()
    del old["captions"]["aggregation"], old["masks"]["select"], old["masks"]["ncut_tau"]
    assert _config_of({"config": old}) == PseudoRISConfig().to_dict()
    assert _config_of({"config": {"masks": {"select": "ncut"}}})["masks"]["select"] == "ncut"
