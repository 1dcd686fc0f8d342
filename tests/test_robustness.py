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
    return main(
        ["train", "--out", str(run), f"data.root={root}", *TINY, "batch_size=4", "data.eval_max_samples=4", *extra]
    )


def test_resume_under_another_config_is_refused_and_no_resume_starts_clean(synthref_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, synthref_dir, "total_steps=2") == 0
    (run / "eval_testB_none_original.json").write_text("{}")  # an evaluation of this model
    assert _train(run, synthref_dir, "total_steps=2", "optim.lr=0.5") == 2
    err = capsys.readouterr().err
    assert "another config" in err and "optim.lr" in err and "--no-resume" in err
    assert (
        main(
            [
                "train",
                "--out",
                str(run),
                "--no-resume",
                f"data.root={synthref_dir}",
                *TINY,
                "batch_size=4",
                "data.eval_max_samples=4",
                "total_steps=2",
                "optim.lr=0.5",
            ]
        )
        == 0
    )
    assert not (run / "eval_testB_none_original.json").exists()  # stale: made from the earlier model
    assert "lr: 0.5" in (run / "config.yaml").read_text()
    assert _train(run, synthref_dir, "total_steps=2", "optim.lr=0.5", "data.workers=0") == 0  # workers: same run
    # a named change is accepted on resume and recorded
    assert (
        main(
            [
                "train",
                "--out",
                str(run),
                "--allow-change",
                "optim",
                f"data.root={synthref_dir}",
                *TINY,
                "batch_size=4",
                "data.eval_max_samples=4",
                "total_steps=3",
                "optim.lr=0.1",
            ]
        )
        == 2
    )  # total_steps not allowed
    assert "total_steps" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--out",
                str(run),
                "--allow-change",
                "optim",
                f"data.root={synthref_dir}",
                *TINY,
                "batch_size=4",
                "data.eval_max_samples=4",
                "total_steps=2",
                "optim.lr=0.1",
            ]
        )
        == 0
    )
    assert json.loads((run / "env.json").read_text())["changes_on_resume"] == ["optim.lr: 0.5 ≠ 0.1"]


@pytest.mark.parametrize(
    "bad, says",
    [
        ("total_steps=-1", "total_steps must be ≥ 1"),
        ("batch_size=0", "batch_size must be ≥ 1"),
        ("batch_size=2.7", "expected an integer"),
        ("optim.lr=0", "optim.lr must be > 0"),
        ("data.eval_max_samples=0", "eval_max_samples must be ≥ 1"),
        ("semi.tau_fg=1.5", "semi.tau_fg must lie in"),
        ("data.scale_range=[1.2,0.8]", "data.scale_range must be"),
        ("model.sesm.prior_dropout=2", "prior_dropout"),
    ],
)
def test_nonsense_values_are_refused(synthref_dir, tmp_path, capsys, bad, says):
    assert _train(tmp_path / "r", synthref_dir, bad) == 2
    assert says in capsys.readouterr().err


def test_eval_files_never_overwrite_each_other(synthref_dir, tmp_path, capsys):
    from l2l.data.refer import ReferDataset

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
        assert len(list((models / name).glob("eval_val_none_original_synthref-*_n3.json"))) == 1
    assert not list(models.glob("*.json"))  # nothing in the shared parent
    assert main(["eval", "--ckpt", str(run), "--split", "val", "--data", str(synthref_dir)]) == 0
    fp = ReferDataset.synthref(synthref_dir).fingerprint()[:8]
    assert (run / f"eval_val_none_original_synthref-{fp}.json").exists()  # another --data: name + fingerprint
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
    assert (
        main(
            [
                "predict",
                "--ckpt",
                str(run / "best"),
                "--image",
                str(img),
                "--text",
                "x",
                "--out",
                str(tmp_path / "m.png"),
            ]
        )
        == 2
    )
    assert "cannot be read (truncated or damaged?" in capsys.readouterr().err
    (run / "last" / "config.json").write_text("{not json")
    assert main(["eval", "--ckpt", str(run / "last"), "--split", "val"]) == 2
    assert "config.json is not an l2l model config" in capsys.readouterr().err


def _gen(store_dir, ds, ids, provider=None):
    from l2l.priors.base import PriorInput
    from l2l.priors.simulated import SimulatedProvider
    from l2l.priors.store import PriorStore

    store = PriorStore(store_dir)
    res = store.generate(
        provider or SimulatedProvider(ds),
        ids,
        lambda s: PriorInput(s, ds.load_image(ds.sample(s).image_id), ds.sample(s).sentence),
        8,
        show_progress=False,
        dataset={"name": ds.name, "fingerprint": ds.fingerprint()},
    )
    return store, res


def test_prior_stores_know_their_dataset(synthref_dir, refer_root, tmp_path, capsys):
    from l2l.data.refer import ReferDataset

    syn = ReferDataset.synthref(synthref_dir)
    ref = ReferDataset.open(refer_root[0], "refcoco")
    store, _ = _gen(tmp_path / "p", syn, [r.sample_id for r in syn.samples("val")])
    store.check_dataset(syn)
    with pytest.raises(ValueError, match="holds priors of dataset 'synthref'"):
        store.check_dataset(ref)
    assert (
        main(["priors", "eval", "--data", str(refer_root[0]), "--dataset", "refcoco", "--priors", str(tmp_path / "p")])
        == 2
    )
    assert "holds priors of dataset" in capsys.readouterr().err
    with pytest.raises(KeyError, match="has no sample 987654"):
        syn.sample(987654)
    # a store covering none of the unlabeled training samples (made for val) is refused, not warned about
    run = tmp_path / "run"
    argv = [
        "train",
        "--out",
        str(run),
        f"data.root={synthref_dir}",
        *TINY,
        "method=prior-fusion",
        f"semi.priors={tmp_path / 'p'}",
        "total_steps=1",
        "data.label_fraction=20%",
    ]
    assert main(argv) == 2
    assert "holds no prior of any of the" in capsys.readouterr().err


def test_files_provider_notices_edited_sources_and_nan(synthref_dir, tmp_path):
    import numpy as np

    from l2l.data.refer import ReferDataset
    from l2l.priors.files import FilesProvider

    ds = ReferDataset.synthref(synthref_dir)
    recs = ds.samples("val")[:3]
    src = tmp_path / "src"
    src.mkdir()
    for r in recs:
        h, w = ds.mask(r.ann_id).shape
        np.save(src / f"{r.sample_id}.npy", np.full((h, w), 0.25, np.float32))
    ids = [r.sample_id for r in recs]
    store, res = _gen(tmp_path / "p", ds, ids, FilesProvider(src))
    assert res["generated"] == 3
    _, res = _gen(tmp_path / "p", ds, ids, FilesProvider(src))
    assert res["generated"] == 0
    h, w = ds.mask(recs[0].ann_id).shape
    np.save(src / f"{recs[0].sample_id}.npy", np.full((h, w), 0.75, np.float32))  # edited at the source
    store, res = _gen(tmp_path / "p", ds, ids, FilesProvider(src))
    assert res["generated"] == 1
    store.entries(refresh=True)
    assert abs(float(store.get(recs[0].sample_id).mean()) - 0.75) < 0.01
    bad = np.full((h, w), 0.3, np.float32)
    bad[0, 0] = np.nan
    np.save(src / f"{recs[1].sample_id}.npy", bad)
    with pytest.raises(ValueError, match="holds 1 NaN"):
        _gen(tmp_path / "p", ds, ids, FilesProvider(src))


def test_concurrent_generators_share_the_work(synthref_dir, tmp_path):
    import subprocess
    import sys

    from l2l.data.refer import ReferDataset

    ds = ReferDataset.synthref(synthref_dir)
    ids = [r.sample_id for r in ds.samples("val")[:4]]
    claims = tmp_path / "p" / "claims"
    claims.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # another live generator
    try:
        for sid in ids[:2]:
            (claims / str(sid)).write_text(str(other.pid))
        store, res = _gen(tmp_path / "p", ds, ids)
        assert res["generated"] == 2 and res["by_others"] == 2  # the claimed ones are left to the other process
        assert list((tmp_path / "p").glob("manifest.rank0.p*.jsonl"))  # its own manifest while others write
    finally:
        other.kill()
        other.wait()
    store, res = _gen(tmp_path / "p", ds, ids)  # the other process died: its claims are taken over
    assert res["generated"] == 2 and res["by_others"] == 0
    store.entries(refresh=True)
    assert all(store.has(s) for s in ids) and not list(claims.iterdir())


def test_options_and_long_sentences(capsys):
    from transformers import BertConfig

    from l2l.nets.text_encoders import HFTextEncoder

    with pytest.raises(SystemExit):
        main(["data", "split", "--data", "x", "--fraction", "abc"])
    err = capsys.readouterr().err
    assert "--fraction" in err and "not a number" in err
    enc = HFTextEncoder.from_config(
        BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
        max_length=8,
    )
    with pytest.warns(UserWarning, match="cut to model.text.max_length=8"):
        enc.encode(["the man " * 20])


def test_no_progress_silences_library_bars():
    import os
    import subprocess
    import sys

    code = "from l2l.nets.text_encoders import HFTextEncoder; HFTextEncoder.from_pretrained(None, 32)"
    env = {**os.environ, "L2L_NO_PROGRESS": "1"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Loading weights" not in r.stderr + r.stdout


def test_more_refusals_and_ctrl_c(synthref_dir, tmp_path, capsys, monkeypatch):
    import l2l.cli.priors as cli_priors

    run = tmp_path / "run"
    assert _train(run, synthref_dir, "total_steps=1", "model.sesm.enabled=false") == 0  # a model without SESM
    img = next((synthref_dir / "images").glob("*.png"))
    argv = ["predict", "--ckpt", str(run), "--image", str(img), "--text", "x", "--out", str(tmp_path / "m.png")]
    assert main([*argv, "--prior", str(run / "config.yaml")]) == 2  # not an image
    assert "not a readable image" in capsys.readouterr().err
    assert main(["eval", "--ckpt", str(run), "--split", "val", "--guidance", "self"]) == 2
    assert "needs a model with SESM" in capsys.readouterr().err

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_priors, "cmd_priors_generate", interrupted)
    assert main(["priors", "generate", "--data", str(synthref_dir), "--out", str(tmp_path / "p")]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err


def test_bars_only_on_a_terminal():
    """Redirected (a pipe, as in a log), no bar is drawn unless L2L_PROGRESS=1 asks for it."""
    import os
    import subprocess
    import sys

    code = "from l2l.utils.progress import progress\nfor _ in progress(range(50), desc='work'): pass"
    env = {k: v for k, v in os.environ.items() if k not in ("L2L_NO_PROGRESS", "L2L_PROGRESS")}
    quiet = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and "work" not in quiet.stderr
    forced = subprocess.run(
        [sys.executable, "-c", code], env={**env, "L2L_PROGRESS": "1"}, capture_output=True, text=True, timeout=120
    )
    assert "work: 100%" in forced.stderr


def test_weights_files_follow_the_umask(tmp_path):
    """model.safetensors is readable by the group like the run's other files (safetensors alone makes 0600)."""
    import os

    import torch

    from l2l.utils.io import atomic_write_text, save_safetensors

    old = os.umask(0o022)
    try:
        save_safetensors({"w": torch.zeros(2)}, tmp_path / "model.safetensors")
        atomic_write_text(tmp_path / "config.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "model.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == 0o644


# 9**9 values in ~560 bytes, under a key the schema accepts (a free-form mapping: model.text.hf_config)
BOMB = "model:\n  text:\n    hf_config:\n" + "".join(
    f"      {k}: &{k} [" + ",".join([f"*{p}" if p else '"x"' for _ in range(9)]) + "]\n"
    for p, k in zip(["", *"abcdefgh"], "abcdefghi")
)


@pytest.mark.parametrize(
    "argv, says",
    [
        (["train", "--config", "{bomb}"], "expands to more than 100,000 values (nested aliases?)"),  # F6
        (["train", "--config", "{list}"], "a config is a mapping"),  # F12
        (["train", "model=3"], "model: a section"),
        (["train", "data.size=[1,2]"], "data.size: expected int"),
        (["train", "compile=maybe"], "compile: expected true or false"),  # F7
        (["train", "batch_size=true"], "batch_size: expected an integer"),
        (["train", "data.scale_range=3"], "data.scale_range: expected a list"),
    ],
)
def test_bad_configs_and_overrides_are_one_line(tmp_path, capsys, argv, says):
    """F6, F7, F12: a YAML alias bomb stops at the limit (it drove `l2l train` to 5.5 GB); wrong types,
    sections given a value and top-level lists are one `l2l: error:` line, not a traceback."""
    (tmp_path / "bomb.yaml").write_text(BOMB)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    argv = [a.format(bomb=tmp_path / "bomb.yaml", list=tmp_path / "list.yaml") for a in argv]
    assert len(BOMB) < 700
    assert main([*argv[:1], "--out", str(tmp_path / "run"), *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("l2l: error:") and says in err and err.count("\n") == 1


def test_negative_seeds_and_unwritable_outputs_are_one_line(tmp_path, capsys, monkeypatch):
    """F18: `data synth --seed -1` and a full, read-only or misnamed output place ended in tracebacks."""
    import errno

    import l2l.data.synthref as synthref

    with pytest.raises(SystemExit) as e:
        main(["data", "synth", "--out", str(tmp_path / "d"), "--seed", "-1"])
    assert e.value.code == 2 and "a seed lies in [0, 2**32), got -1" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["data", "synth", "--out", str(tmp_path / "file" / "d"), "--num-images", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("l2l: error:") and str(tmp_path / "file") in err and err.count("\n") == 1

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "d" / "images" / "000001.png"))

    monkeypatch.setattr(synthref, "generate", full)
    assert main(["data", "synth", "--out", str(tmp_path / "d"), "--num-images", "4"]) == 2
    err = capsys.readouterr().err
    assert "000001.png: No space left on device" in err and err.count("\n") == 1 and "Traceback" not in err


def test_record_files_cut_a_torn_tail_and_name_a_bad_line(tmp_path):
    """The one JSONL reader/writer (utils/jsonl.py): what a crash leaves (a torn last line) is skipped and
    cut off before the next append — it used to be glued to the next record, losing both (F2–F4)."""
    from l2l.errors import DataError
    from l2l.utils.jsonl import append_records, keep_records, read_records

    f = tmp_path / "r.jsonl"
    f.write_text('{"i": 0}\n{"i": 1}\n{"i": 2, "x"')
    assert read_records(f) == [{"i": 0}, {"i": 1}]
    with append_records(f) as w:
        w.write({"i": 2})
    assert f.read_text() == '{"i": 0}\n{"i": 1}\n{"i": 2}\n' and read_records(f) == [{"i": k} for k in range(3)]
    assert keep_records(f, lambda r: r["i"] < 2) == 1 and read_records(f) == [{"i": 0}, {"i": 1}]
    f.write_text('{"i": 0}\n{"i": 1, "x\n{"i": 2}\n')
    with pytest.raises(DataError, match=r"r.jsonl, line 2: not a JSON record"):
        read_records(f)
    f.write_text("[1]\n")
    with pytest.raises(DataError, match="line 1: a JSON list, not a record"):
        read_records(f)
    assert read_records(tmp_path / "none.jsonl") == []


def test_folder_locks_are_stale_only_when_the_holder_is_gone(tmp_path):
    """F1, F15 (utils/lock.py): a live holder is respected, a dead one (or a reused pid) is taken over,
    an empty lock is named with the file to remove."""
    import os
    import socket
    import subprocess
    import sys
    import time

    from l2l.utils.lock import FolderLock, holder_alive, lock_problem, read_lock

    path = tmp_path / ".train.lock"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        a = FolderLock(path)
        assert a.acquire() and read_lock(path)["pid"] == os.getpid()
        again = FolderLock(path)
        assert again.acquire()  # this process's own lock (a new run object on the folder): taken over
        again.release()
        assert not path.exists()
        path.write_text(json.dumps({"host": socket.gethostname(), "pid": child.pid}))
        assert holder_alive(read_lock(path)) and not FolderLock(path).acquire()
        path.write_text(json.dumps({"host": socket.gethostname(), "pid": child.pid, "started": "1"}))
        assert not holder_alive(read_lock(path))  # the pid runs, but a process started at another time
        child.kill()
        child.wait()
        path.write_text(json.dumps({"host": socket.gethostname(), "pid": child.pid}))
        b = FolderLock(path)
        assert b.acquire() and read_lock(path)["pid"] == os.getpid()  # the dead holder's lock: taken over
        b.release()
        path.write_text(json.dumps({"host": "elsewhere", "pid": 1}))
        assert not FolderLock(path).acquire()  # another host's: never taken over
        path.write_text("")
        assert lock_problem(path) is None  # just created: being written
        old = time.time() - 60
        os.utime(path, (old, old))
        assert f"{path} is empty or unreadable" in lock_problem(path) and not FolderLock(path).acquire()
    finally:
        child.kill()


def test_a_second_trainer_on_a_live_run_folder_is_refused(synthref_dir, tmp_path, capsys):
    """F1: the trainer holds its run folder's lock; a second `l2l train` on it is one line naming the holder."""
    import socket
    import subprocess
    import sys

    run = tmp_path / "run"
    run.mkdir()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".train.lock").write_text(
            json.dumps({"host": socket.gethostname(), "pid": child.pid, "since": "now", "command": ["l2l", "train"]})
        )
        assert _train(run, synthref_dir, "total_steps=1") == 2
        err = capsys.readouterr().err
        assert f"is being written by pid {child.pid}" in err and ".train.lock" in err
    finally:
        child.kill()
        child.wait()
    assert _train(run, synthref_dir, "total_steps=1") == 0  # its holder gone: taken over
    assert not (run / ".train.lock").exists()


def test_a_run_from_before_a_new_key_resumes_only_under_its_old_behaviour(synthref_dir, tmp_path, capsys):
    """A config.yaml written before a key existed means the key's earlier behaviour (schema.LEGACY_DEFAULTS):
    resuming under the new default is refused with the key named; the old value resumes."""
    import yaml

    run = tmp_path / "old"
    assert _train(run, synthref_dir, "total_steps=2") == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["data"]["label_count"]  # as written before issue 33
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert _train(run, synthref_dir, "total_steps=2") == 2
    err = capsys.readouterr().err
    assert "data.label_count: 'round' ≠ 'floor'" in err
    assert _train(run, synthref_dir, "total_steps=2", "data.label_count=round") == 0


def test_legacy_values_apply_to_the_methods_they_change(tmp_path):
    """RPLE's new defaults read as the old ones only in an l2l (or selector rple) folder; a supervised
    folder written before them is not in conflict with today's grid."""
    import yaml

    from l2l.config import legacy_overrides, to_dict
    from l2l.schema import LEGACY_DEFAULTS, TrainConfig

    full = to_dict(TrainConfig())
    for k in ("next_state", "lr", "reward_scale"):
        del full["semi"]["rple"][k]
    del full["semi"]["band_regions"]
    del full["data"]["label_count"]
    rple = {"semi.rple.next_state=batch", "semi.rple.lr=null", "semi.rple.reward_scale=none"}
    every, band = {"data.label_count=round"}, {"semi.band_regions=foreground"}
    for method, expect in (("l2l", every | band | rple), ("static-threshold", every | band), ("supervised", every)):
        f = tmp_path / f"{method}.yaml"
        f.write_text(yaml.safe_dump({**full, "method": method}))
        assert set(legacy_overrides(f, LEGACY_DEFAULTS)) == expect, method
    f = tmp_path / "now.yaml"
    f.write_text(yaml.safe_dump({**to_dict(TrainConfig()), "method": "l2l"}))
    assert legacy_overrides(f, LEGACY_DEFAULTS) == []  # a folder written today has every key
