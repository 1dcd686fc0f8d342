"""The l2l command: synth + split + stats on SynthRef and on the REFER fixture, and clear errors."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from l2l.cli import main
from l2l.data.refer import ReferDataset


def test_synth_split_stats_preview(tmp_path, capsys):
    d = tmp_path / "sr"
    assert main(["data", "synth", "--out", str(d), "--images", "30", "--seed", "1", "--workers", "1"]) == 0
    assert main(["data", "split", "--data", str(d), "--label-fraction", "10%", "--split-seed", "22"]) == 0
    out = capsys.readouterr().out
    assert "labeled" in out and (d / "splits" / "label_split_10pct_seed22.json").exists()
    first = (d / "splits" / "label_split_10pct_seed22.json").read_bytes()
    assert main(["data", "split", "--data", str(d), "--fraction", "10%", "--seed", "22"]) == 0  # the old spellings
    assert (d / "splits" / "label_split_10pct_seed22.json").read_bytes() == first
    capsys.readouterr()
    assert main(["data", "stats", str(d), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert set(stats["splits"]) == {"train", "val", "testA", "testB"}
    assert sum(stats["splits"]["train"]["length_buckets"].values()) == stats["splits"]["train"]["sentences"]
    assert main(["data", "preview", str(d), "--out", str(tmp_path / "p.png"), "--n", "2"]) == 0
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_same_code_reads_the_refer_fixture(refer_root, capsys):
    root, _ = refer_root
    assert main(["data", "stats", str(root), "--dataset", "refcoco"]) == 0
    out = capsys.readouterr().out
    assert "refcoco(unc)" in out and "testB" in out
    assert (
        main(
            [
                "data",
                "split",
                "--data",
                str(root),
                "--dataset",
                "refcoco",
                "--fraction",
                "0.1%",
                "--out",
                str(root / "s.json"),
            ]
        )
        == 0
    )
    assert json.loads((root / "s.json").read_text())["n_labeled"] == 1


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["data", "stats", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("l2l: error:") and "nope" in err
    assert main(["data", "split", "--data", str(tmp_path), "--dataset", "refcoco"]) == 2
    assert "instances file not found" in capsys.readouterr().err


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "l2l.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "l2l" in r.stdout


def test_train_eval_predict(synthref_dir, tmp_path, capsys):
    from PIL import Image

    from .test_trainer import TINY

    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--out",
                str(run),
                f"data.root={synthref_dir}",
                *TINY,
                "epochs=1",
                "batch_size=8",
                "total_steps=3",
            ]
        )
        == 0
    )
    assert "oIoU" in capsys.readouterr().out
    assert main(["eval", "--ckpt", str(run), "--split", "testB", "--max-samples", "5", "--resolution", "train"]) == 0
    res = json.loads((run / "eval_testB_none_train_n5.json").read_text())  # a subset is named as one
    assert res["samples"] == 5 and res["resolution"] == "train" and res["split"] == "testB"
    # --guidance prior needs priors; with a store it uses them and says how many samples had one
    assert main(["eval", "--ckpt", str(run), "--split", "val", "--max-samples", "5", "--guidance", "prior"]) == 2
    assert "needs priors" in capsys.readouterr().err
    store = tmp_path / "val_priors"
    assert (
        main(
            [
                "priors",
                "generate",
                "--data",
                str(synthref_dir),
                "--split",
                "val",
                "--subset",
                "all",
                "--out",
                str(store),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "eval",
                "--ckpt",
                str(run),
                "--split",
                "val",
                "--max-samples",
                "5",
                "--guidance",
                "prior",
                "--priors",
                str(store),
            ]
        )
        == 0
    )
    with_prior = json.loads((run / "eval_val_prior_original_n5.json").read_text())
    assert with_prior["samples_with_prior"] == 5 and with_prior["guidance"] == "prior"
    assert main(["eval", "--ckpt", str(run / "best"), "--split", "val", "--max-samples", "5"]) == 0  # RUN/best -> RUN
    none = json.loads((run / "eval_val_none_original_n5.json").read_text())
    assert none["samples_with_prior"] == 0
    img = next((synthref_dir / "images").glob("*.png"))
    assert (
        main(
            [
                "predict",
                "--ckpt",
                str(run),
                "--image",
                str(img),
                "--text",
                "the red ball",
                "--out",
                str(tmp_path / "m.png"),
                "--overlay",
                str(tmp_path / "o.png"),
            ]
        )
        == 0
    )
    m = Image.open(tmp_path / "m.png")
    assert m.size == Image.open(img).size and set(np.unique(np.asarray(m)).tolist()) <= {0, 255}
    # errors: a non-image file, an empty sentence, a missing checkpoint
    assert (
        main(["predict", "--ckpt", str(run), "--image", str(run / "config.yaml"), "--text", "x", "--out", "m.png"]) == 2
    )
    assert main(["predict", "--ckpt", str(run), "--image", str(img), "--text", " ", "--out", "m.png"]) == 2
    assert (
        main(["predict", "--ckpt", str(tmp_path / "none"), "--image", str(img), "--text", "x", "--out", "m.png"]) == 2
    )
    assert main(["train", "--out", str(run), "optim.nope=1"]) == 2
    err = capsys.readouterr().err
    assert "not a readable image" in err and "empty" in err and "no l2l checkpoint" in err and "optim.nope" in err


def test_priors_generate_and_eval(synthref_dir, tmp_path, capsys):
    out = tmp_path / "priors"
    args = [
        "priors",
        "generate",
        "--data",
        str(synthref_dir),
        "--subset",
        "unlabeled",
        "--label-fraction",
        "10%",
        "--provider",
        "simulated",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "SIMULATION" in first and "0 already present" in first
    assert main(args) == 0  # nothing left to do
    assert " 0 generated" in capsys.readouterr().out
    assert main(["priors", "eval", "--data", str(synthref_dir), "--priors", str(out)]) == 0
    assert "SIMULATED" in capsys.readouterr().out
    res = json.loads((out / "eval.json").read_text())
    assert res["missing"] == 0 and 0.3 < res["mean_IoU"] < 0.95
    assert main(["priors", "generate", "--data", str(synthref_dir), "--provider", "mllm-sam2", "--out", str(out)]) == 2
    assert "--mllm" in capsys.readouterr().err
    # the provider's config takes KEY=VALUE overrides (its dataclass's fields), as training does
    exact = tmp_path / "exact"
    clean = ["miss=0", "drift=0", "partial=0", "bloat=0", "box=0", "noise=0", "confident_wrong=0"]
    assert main([*args[: args.index("--out")], "--out", str(exact), *clean]) == 0
    capsys.readouterr()
    assert json.loads((exact / "store.json").read_text())["config"]["noise"] == 0
    assert main(["priors", "eval", "--data", str(synthref_dir), "--priors", str(exact)]) == 0
    capsys.readouterr()
    assert json.loads((exact / "eval.json").read_text())["mean_IoU"] > res["mean_IoU"]
    bad = [*args[: args.index("--out")], "--out", str(tmp_path / "bad"), "nosie=0"]
    assert main(bad) == 2
    assert "--provider simulated: unknown config key(s) nosie; SimulatedConfig has" in capsys.readouterr().err
    # --shard i/n: processes side by side fill one store; together they make what one process makes
    sharded = tmp_path / "sharded"
    base = args[: args.index("--out")]
    for i in (1, 0):
        assert main([*base, "--out", str(sharded), "--shard", f"{i}/2"]) == 0
        assert f"rank {i}/2" in capsys.readouterr().out
    from l2l.priors.store import PriorStore

    one, two = PriorStore(out), PriorStore(sharded)
    assert sorted(one.sample_ids()) == sorted(two.sample_ids())
    assert all(np.array_equal(one.get(i), two.get(i)) for i in one.sample_ids())


def test_priors_default_provider_is_the_learned_prior_on_synthref(synthref_dir, tmp_path, capsys):
    from l2l.utils.folders import BUILTIN

    if not (BUILTIN["synthpool-grounder"] / "card.json").exists():
        pytest.skip("shipped grounder not built")
    out = tmp_path / "p"
    args = ["priors", "generate", "--data", str(synthref_dir), "--subset", "labeled", "--label-fraction", "5%"]
    assert main([*args, "--out", str(out)]) == 0
    assert "standin" in capsys.readouterr().out
    meta = json.loads((out / "store.json").read_text())
    assert meta["provider"] == "standin" and meta["config"]["stand_ins"] is True
    assert meta["config"]["grounder"]["grounder"].startswith("builtin:synthpool-grounder (")


def test_the_demo_makes_its_priors_by_two_processes(tmp_path, capsys):
    """``l2l demo``'s learned priors: shard 0/2 here, 1/2 in an ``l2l priors generate`` beside it, one store,
    the maps of one process alone."""
    from l2l.cli.priors import _generate_priors, _generate_priors_beside
    from l2l.data.refer import ReferDataset
    from l2l.data.synthref import SynthRefConfig, generate
    from l2l.priors.standin import build
    from l2l.priors.store import PriorStore

    data = tmp_path / "data"  # small: the second process makes priors for every training sample
    generate(SynthRefConfig(images=16, seed=5), data, workers=1, show_progress=False)
    ds = ReferDataset.synthref(data)
    ids = [r.sample_id for r in ds.samples("train")]
    provider = build()
    _generate_priors_beside(ds, provider, ids, tmp_path / "two", data)
    assert "failed" not in capsys.readouterr().out
    assert [p.name for p in sorted((tmp_path / "two").glob("manifest.rank1*.jsonl"))]  # the helper did its share
    two = PriorStore(tmp_path / "two")
    assert sorted(two.sample_ids()) == sorted(ids)
    half = ids[::7]  # one process alone, on a sample of them
    _generate_priors(ds, provider, half, tmp_path / "one", batch_size=32)
    one = PriorStore(tmp_path / "one")
    assert all(np.array_equal(one.get(i), two.get(i)) for i in half)


def test_demo_main_job_end_to_end(tmp_path, capsys, monkeypatch):
    from .test_trainer import OBJECTS_TINY, TINY

    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the demo's default config path is repo-relative
    work = tmp_path / "demo"
    args = [
        "demo",
        "--workdir",
        str(work),
        "--images",
        "60",
        "--workers",
        "1",
        *[o for o in TINY if not o.startswith("data.workers")],
        *OBJECTS_TINY,  # the shipped config's object branch, with a tiny random grounder (the tiny text encoder)
        "total_steps=2",
        "data.eval_max_samples=5",
        "semi.unlabeled_batch_size=2",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "[7/7]" in out
    # the last step: the first six testB sentences (never chosen), their IoU in %, one figure
    six = [r.sentence for r in ReferDataset.synthref(work / "synthref").samples("testB")[:6]]
    step7 = out[out.index("[7/7]") :]
    assert all(f'"{s}"' in step7 for s in six) and "at IoU ≥ 50 %" in step7
    assert re.search(r"val: oIoU \d+\.\d %", out)
    # the EDA pools were built beside the priors (a thread), before the training started
    assert "building EDA pools" in out and out.index("building EDA pools") < out.index("[5/7]")
    assert "failed" not in out  # the second prior process did its share
    for f in (
        "synthref/meta.json",
        "stats.json",
        "preview.png",
        "prediction_overlay.png",
        "testB_first6.png",
        "priors/store.json",
        "l2l_5pct/eval_val.json",
        "l2l_5pct/best/model.safetensors",
        "l2l_5pct/curves.png",
        "l2l_5pct/bank/bank.u8",
    ):
        assert (work / f).exists(), f
    assert main(args) == 0  # resumable: a second run finds everything done


def test_run_folder_is_movable(synthref_dir, tmp_path, monkeypatch):
    """A run trained with relative paths is evaluated from another directory (paths.json: absolute) and
    after its project folder was moved (paths.json: relative to the run folder); the model card and the
    domain check find its data too."""
    import shutil

    from l2l.models.domain import reference_images
    from l2l.utils.run_paths import load_run_dict

    from .test_trainer import TINY

    proj = tmp_path / "proj"
    shutil.copytree(synthref_dir, proj / "data")
    (proj / "val").mkdir()  # a folder named like a non-path value (data.eval_split: val) is not taken for it
    monkeypatch.chdir(proj)
    assert main(["train", "--out", "runs/r", "data.root=data", *TINY, "total_steps=2", "batch_size=4"]) == 0
    recorded = json.loads((proj / "runs/r/paths.json").read_text())["paths"]
    assert set(recorded) == {"data.root"}
    rec = recorded["data.root"]
    assert rec["given"] == "data" and rec["from_run"] == "../../data"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["eval", "--ckpt", str(proj / "runs/r"), "--split", "val", "--max-samples", "3"]) == 0
    moved = tmp_path / "moved"
    proj.rename(moved)  # the absolute path is gone: found relative to the run folder
    assert main(["eval", "--ckpt", str(moved / "runs/r/best"), "--split", "val", "--max-samples", "3"]) == 0
    assert load_run_dict(moved / "runs/r/best")["data"]["root"] == str(moved / "runs/r/../../data")
    refs, source = reference_images(moved / "runs/r/best", n=8)
    assert len(refs) == 8 and "training images" in source
    # a config value changed by hand since is taken as it is, not replaced by the record
    cfg = (moved / "runs/r/config.yaml").read_text().replace("root: data", "root: nowhere")
    (moved / "runs/r/config.yaml").write_text(cfg)
    assert load_run_dict(moved / "runs/r")["data"]["root"] == "nowhere"


def test_one_domain_check_for_every_entry_point(synthref_dir, tmp_path, capsys):
    """The predictor, segment() and l2l predict measure images against the training domain with the same
    check, saved beside the weights (domain.json), so a model folder moved without its data keeps it;
    results.json is read by COCO.loadRes."""
    import shutil
    import warnings

    import numpy as np
    from PIL import Image
    from pycocotools.coco import COCO

    from l2l.models.domain import OutOfDomainWarning
    from l2l.models.predictor import SegmenterPredictor
    from l2l.models.segmenter import Segmenter

    from .test_trainer import TINY

    run = tmp_path / "run"
    assert main(["train", "--out", str(run), f"data.root={synthref_dir}", *TINY, "total_steps=2", "batch_size=4"]) == 0
    p = SegmenterPredictor.from_pretrained(run, "cpu")
    assert p.domain is not None and "training images of" in p.domain_note and (run / "best" / "domain.json").exists()
    alone = tmp_path / "alone"
    shutil.copytree(run / "best", alone)  # no config.yaml, no data beside it
    p = SegmenterPredictor.from_pretrained(alone, "cpu")
    assert (
        p.domain is not None and p.domain.to_json() == SegmenterPredictor.from_pretrained(run, "cpu").domain.to_json()
    )
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    ds_image = next((synthref_dir / "images").glob("*.png"))
    p.set_image(ds_image)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutOfDomainWarning)
        p.predict("the red circle")  # an image of its own domain: no warning
    assert p.image_domain["far"] is False
    p.set_image(noise)
    with pytest.warns(OutOfDomainWarning, match="FAR FROM THE TRAINING DOMAIN"):
        p.predict(["the red circle", "the blue one"])
    assert p.image_domain["far"] is True and p.image_domain["distance"] > 1
    with pytest.warns(OutOfDomainWarning):
        Segmenter.from_pretrained(alone).segment(noise, "the red circle")
    # l2l predict: one line per image in results.jsonl says it, the summary counts it
    Image.fromarray(noise).save(tmp_path / "noise.png")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"image": str(ds_image), "text": "the red circle", "image_id": 7})
        + "\n"
        + json.dumps({"image": str(tmp_path / "noise.png"), "text": "the dog"})
        + "\n"
    )
    capsys.readouterr()
    assert main(["predict", "--ckpt", str(alone), "--manifest", str(manifest), "--out-dir", str(tmp_path / "out")]) == 0
    assert "domain: 1 of 2 images far from the training domain" in capsys.readouterr().out
    lines = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["domain"]["far"] for r in lines] == [False, True]
    assert (
        main(
            [
                "predict",
                "--ckpt",
                str(alone),
                "--image",
                str(tmp_path / "noise.png"),
                "--text",
                "the dog",
                "--out",
                str(tmp_path / "one.png"),
            ]
        )
        == 0
    )
    assert "warning: FAR FROM THE TRAINING DOMAIN" in capsys.readouterr().err
    # COCO results: image_id from the manifest or numbered by image, category_id 1
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [(r["image_id"], r["category_id"]) for r in res] == [(7, 1), (2, 1)]
    gt = COCO()
    gt.dataset = {
        "images": [{"id": 7, "height": 64, "width": 64}, {"id": 2, "height": 64, "width": 64}],
        "annotations": [],
        "categories": [{"id": 1, "name": "referred object"}],
    }
    gt.createIndex()
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(str(tmp_path / "out" / "results.json"))
    assert len(dt.anns) == 2 and dt.anns[1]["image_id"] == 7


def test_one_name_per_concept_with_the_old_spellings_still_read(synthref_dir, tmp_path, capsys):
    """A trained run is --ckpt (segmenters) or --run (PPT), each command reading the other name too; an image
    count is --num-images (synth, demo, pseudo-ris show), a folder of images --images (predict)."""
    from .test_trainer import TINY

    run = tmp_path / "run"
    assert main(["train", "--out", str(run), f"data.root={synthref_dir}", *TINY, "total_steps=1", "batch_size=4"]) == 0
    for name in ("--ckpt", "--run"):
        assert main(["eval", name, str(run), "--split", "val", "--max-samples", "2"]) == 0
    with pytest.raises(SystemExit):  # one of them, not both (argparse's usage error)
        main(["eval", "--ckpt", str(run), "--run", str(run)])
    assert "not allowed with" in capsys.readouterr().err
    for name in ("--num-images", "--images"):
        d = tmp_path / name.strip("-")
        assert main(["data", "synth", "--out", str(d), name, "12", "--workers", "1"]) == 0
        assert json.loads((d / "meta.json").read_text())["config"]["images"] == 12
