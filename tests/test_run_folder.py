"""RunFolder: the one description of a run folder's layout (issue 35 step 6)."""

from __future__ import annotations

from pathlib import Path

from l2l.utils.run_folder import RunFolder


def _model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    return folder


def test_layout_find_and_saved_model(tmp_path):
    run = RunFolder(tmp_path / "run")
    assert run.eval_file("val").name == "eval_val.json"
    assert run.eval_file("testB", "prior", "train").name == "eval_testB_prior_train.json"
    assert RunFolder.eval_name("val", "none", "original") == "eval_val_none_original.json"
    assert (run.config.name, run.checkpoints.name, run.best.name, run.last.name) == (
        "config.yaml",
        "checkpoints",
        "best",
        "last",
    )
    assert RunFolder.find(run.root) is None and not run.is_run()
    run.root.mkdir()
    run.config.write_text("method: supervised\n")
    step = run.checkpoints / "step_4"
    step.mkdir(parents=True)
    assert RunFolder.find(step) == run and RunFolder.find(run.root / "best") == run
    assert RunFolder.find(step, levels=1) is None  # checkpoints/step_4 → checkpoints only
    assert RunFolder.saved_model(run.root) is None  # nothing saved yet
    _model(run.last)
    assert RunFolder.saved_model(run.root) == run.last
    _model(run.best)
    assert RunFolder.saved_model(run.root) == run.best  # best before last
    assert RunFolder.saved_model(run.best) == run.best  # a model folder is itself
    run.eval_file("val").write_text("{}")
    run.eval_file("val", "none", "original").write_text("{}")
    assert [p.name for p in run.eval_files()] == ["eval_val.json", "eval_val_none_original.json"]
