"""Nothing silently wrong (issue 17): results are not overwritten or mixed, bad values are refused,
damaged files are named, and a damaged last checkpoint falls back to the one before it."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest

from l2l.cli import main

from .test_trainer import TINY


def _train(run, root, *extra):
    return main(["train", "--out", str(run), f"data.root={root}", *TINY, "batch_size=4", "data.eval_max_samples=4",
                 *extra])  # fmt: skip


def test_resume_under_another_config_is_refused_and_no_resume_starts_clean(synthref_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, synthref_dir, "total_steps=2") == 0
    (run / "eval_testB_none_original.json").write_text("{}")  # an evaluation of this model
    assert _train(run, synthref_dir, "total_steps=2", "optim.lr=0.5") == 2
    err = capsys.readouterr().err
    assert "another config" in err and "optim.lr" in err and "--no-resume" in err
    assert main(["train", "--out", str(run), "--no-resume", f"data.root={synthref_dir}", *TINY, "batch_size=4",
                 "data.eval_max_samples=4", "total_steps=2", "optim.lr=0.5"]) == 0  # fmt: skip
    assert not (run / "eval_testB_none_original.json").exists()  # stale: made from the earlier model
    assert "lr: 0.5" in (run / "config.yaml").read_text()
    assert _train(run, synthref_dir, "total_steps=2", "optim.lr=0.5", "data.workers=0") == 0  # workers: same run


@pytest.mark.parametrize(
    "bad, says",
    [("total_steps=-1", "total_steps must be ≥ 1"), ("batch_size=0", "batch_size must be ≥ 1"),
     ("batch_size=2.7", "expected an integer"), ("optim.lr=0", "optim.lr must be > 0"),
     ("data.eval_max_samples=0", "eval_max_samples must be ≥ 1")],
)  # fmt: skip
def test_nonsense_values_are_refused(synthref_dir, tmp_path, capsys, bad, says):
    assert _train(tmp_path / "r", synthref_dir, bad) == 2
    assert says in capsys.readouterr().err


def test_eval_files_never_overwrite_each_other(synthref_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, synthref_dir, "total_steps=1") == 0
    models = tmp_path / "models"
    for name in ("a", "b"):  # two standalone model folders side by side
        shutil.copytree(run / "best", models / name)
        argv = [
            "eval",
            "--ckpt",
            str(models / name),
            "--split",
            "val",
            "--max-samples",
            "3",
            "--data",
            str(synthref_dir),
        ]
        assert main(argv) == 0
        assert (models / name / "eval_val_none_original_synthref_n3.json").exists()
    assert not list(models.glob("*.json"))  # nothing in the shared parent
    assert main(["eval", "--ckpt", str(run), "--split", "val", "--data", str(synthref_dir)]) == 0
    assert (run / "eval_val_none_original_synthref.json").exists()  # another --data is named as such
    assert (
        main(["eval", "--ckpt", str(run), "--split", "val", "--max-samples", "2", "--out", str(tmp_path / "x.json")])
        == 0
    )
    assert json.loads((tmp_path / "x.json").read_text())["max_samples"] == 2
    with pytest.raises(SystemExit):
        main(["eval", "--ckpt", str(run), "--max-samples", "0"])
    assert "must be ≥ 1" in capsys.readouterr().err


def test_damaged_files_are_named_and_resume_falls_back(synthref_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, synthref_dir, "total_steps=4", "max_steps=2", "ckpt_every=1", "keep_last=3") == 0
    last = run / "checkpoints" / "step_000000002" / "model.safetensors"
    last.write_bytes(last.read_bytes()[:100])  # a crash while writing
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert _train(run, synthref_dir, "total_steps=4", "ckpt_every=1", "keep_last=3") == 0
    assert any("step_000000002" in str(x.message) and "previous" in str(x.message) for x in w)
    env = json.loads((run / "env.json").read_text())
    assert env["resumed_from"].endswith("step_000000001")
    best = run / "best" / "model.safetensors"
    best.write_bytes(best.read_bytes()[:100])
    img = next((synthref_dir / "images").glob("*.png"))
    assert main(["predict", "--ckpt", str(run / "best"), "--image", str(img), "--text", "x", "--out",
                 str(tmp_path / "m.png")]) == 2  # fmt: skip
    assert "cannot be read (truncated or damaged?" in capsys.readouterr().err
    (run / "last" / "config.json").write_text("{not json")
    assert main(["eval", "--ckpt", str(run / "last"), "--split", "val"]) == 2
    assert "config.json is not an l2l model config" in capsys.readouterr().err
