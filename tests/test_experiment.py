"""Experiment grids and reports: a 2-cell miniature grid end to end (interruption, resume, skip,
missing evaluation, conflicts, locks), grid validation, the shipped grids' dry runs (RefCOCO/+/g
on the REFER fixture), and ``l2l report``."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import yaml

from l2l.cli import main
from l2l.experiment.grid import Grid, GridError
from l2l.experiment.runner import LOCK, cell_state

from .conftest import build_refer_fixture

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "method": "supervised",
    "total_steps": 4,
    "ckpt_every": 2,
    "log_every": 1,
    "batch_size": 2,
    "eval_every": 0,
    "model": {
        "image_size": 32,
        "visual": {"name": "conv", "conv_channels": [8, 16, 16, 32]},
        "text": {"name": "tiny", "tiny_dim": 16, "tiny_layers": 1},
        "sesm": {"enabled": False},
        "decoder_dim": 16,
    },
    "data": {"size": 32, "workers": 0, "eval_max_samples": 8, "strong_text": False},
    "optim": {"lr": 1e-3},
    "semi": {"unlabeled_batch_size": 2},
}


@pytest.fixture()
def grid_file(tmp_path, synthref_dir):
    cfg_dir = tmp_path / "configs"
    cfg_dir.mkdir()
    (cfg_dir / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    grid = {
        "name": "mini",
        "out": str(tmp_path / "grid"),
        "budgets": ["25%"],
        "seeds": [5],
        "datasets": {"synthref": {"overrides": [f"data.root={synthref_dir}"], "splits": ["val", "testB"]}},
        "sections": [
            {
                "id": "table1",
                "kind": "main",
                "title": "mini",
                "rows": [
                    {"id": "sup", "label": "Supervised", "config": "tiny.yaml", "method": "supervised"},
                    {"id": "fm", "label": "FixMatch", "config": "tiny.yaml", "method": "fixmatch"},
                ],
            }
        ],
    }
    f = cfg_dir / "mini.yaml"
    f.write_text(yaml.safe_dump(grid, sort_keys=False))
    return f


def _states(grid_file) -> dict[str, str]:
    return {n: cell_state(c) for n, c in Grid(grid_file).cells.items()}


@pytest.mark.slow
def test_mini_grid_interrupt_resume_skip_and_report(grid_file, tmp_path, synthref_dir, capsys):
    g = Grid(grid_file)
    assert list(g.cells) == ["synthref/sup_25_s5", "synthref/fm_25_s5"]
    assert main(["experiment", "run", str(grid_file), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 runs" in out and out.count("new ") == 2 and "every config resolves" in out

    # 1. interrupted: a session budget stops both runs after 2 of 4 steps (a checkpoint, no evaluation)
    assert main(["experiment", "run", str(grid_file), "--set", "max_steps=2"]) == 0
    assert set(_states(grid_file).values()) == {"partial"}
    sup = g.cells["synthref/sup_25_s5"].run_dir
    assert (sup / "checkpoints" / "step_000000002").exists() and not (sup / "eval_val.json").exists()
    assert not (sup / "eval_testB_none_original.json").exists()  # no evaluation of an unfinished model

    # 2. resumed from the checkpoint, finished and evaluated on both splits
    assert main(["experiment", "run", str(grid_file)]) == 0
    assert set(_states(grid_file).values()) == {"done"}
    env = json.loads((sup / "env.json").read_text())
    assert env["resumed_from"] and env["resumed_from"].endswith("step_000000002")
    for c in g.cells.values():
        assert (c.run_dir / "eval_val.json").exists() and (c.run_dir / "eval_testB_none_original.json").exists()
        assert json.loads((c.run_dir / "cell.json").read_text())["sections"] == ["table1"]
    # the resumed cell equals a run that was never interrupted
    straight = tmp_path / "straight"
    assert (
        main(
            [
                "train",
                "--config",
                str(grid_file.parent / "tiny.yaml"),
                "--out",
                str(straight),
                *g.cells["synthref/sup_25_s5"].overrides,
            ]
        )
        == 0
    )
    assert (
        json.loads((straight / "eval_val.json").read_text())["oIoU"]
        == json.loads((sup / "eval_val.json").read_text())["oIoU"]
    )

    # 3. a missing evaluation is redone alone (training is not repeated); finished cells are skipped
    fm = g.cells["synthref/fm_25_s5"].run_dir
    before = (fm / "eval_testB_none_original.json").read_text()
    (fm / "eval_testB_none_original.json").unlink()
    metrics = (fm / "metrics.jsonl").read_text()
    sup_log = (sup / "experiment.log").read_text()
    assert _states(grid_file)["synthref/fm_25_s5"] == "trained"
    assert main(["experiment", "run", str(grid_file)]) == 0
    assert (fm / "eval_testB_none_original.json").read_text() == before
    assert (fm / "metrics.jsonl").read_text() == metrics
    assert (sup / "experiment.log").read_text() == sup_log  # nothing ran for the finished cell
    t = (sup / "eval_testB_none_original.json").stat().st_mtime
    os.utime(sup / "eval_val.json", (t + 10, t + 10))  # an evaluation older than the training's: stale
    assert _states(grid_file)["synthref/sup_25_s5"] == "trained"
    os.utime(sup / "eval_val.json", (t - 10, t - 10))

    # 4. a folder made with another config is refused, with the difference named
    cfg = yaml.safe_load((sup / "config.yaml").read_text())
    cfg["optim"]["lr"] = 0.5
    (sup / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert _states(grid_file)["synthref/sup_25_s5"] == "conflict"
    assert main(["experiment", "run", str(grid_file)]) == 1
    assert "optim.lr: 0.5 ≠ 0.001" in capsys.readouterr().err
    cfg["optim"]["lr"] = 1e-3
    (sup / "config.yaml").write_text(yaml.safe_dump(cfg))

    # 5. locks: another host's lock is respected; a dead process's lock on this host is taken over
    (sup / LOCK).write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    assert _states(grid_file)["synthref/sup_25_s5"] == "locked"
    (sup / LOCK).write_text(json.dumps({"host": socket.gethostname(), "pid": 2**22 + 12345}))
    assert _states(grid_file)["synthref/sup_25_s5"] == "done"
    (sup / LOCK).unlink()

    # 6. the report: tables with the runs' numbers, figures, a self-contained HTML page
    assert main(["report", str(g.out), "--qualitative", "2"]) == 0
    rep = g.out / "report"
    md = (rep / "report.md").read_text()
    v = json.loads((sup / "eval_val.json").read_text())
    assert f"| Supervised | {100 * v['oIoU']:.2f} |" in md
    assert "2 of 2 runs finished" in md and "Table 10" in md
    html = (rep / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(list(rep.glob("*.png"))) >= 3
    assert (rep / "synthref_qualitative.png").stat().st_size > 5_000


def test_grid_shards_and_only(grid_file):
    g = Grid(grid_file)
    assert [c.name for c in g.select(shard=(0, 2))] == ["synthref/sup_25_s5"]
    assert [c.name for c in g.select(shard=(1, 2))] == ["synthref/fm_25_s5"]
    assert [c.name for c in g.select(["*/fm_*"])] == ["synthref/fm_25_s5"]


def test_grid_errors_name_the_entry(grid_file):
    raw = yaml.safe_load(grid_file.read_text())

    def bad(mutate, match):
        d = json.loads(json.dumps(raw))
        mutate(d)
        grid_file.write_text(yaml.safe_dump(d))
        with pytest.raises(GridError, match=match):
            Grid(grid_file)

    bad(lambda d: d.update(sectoins=[]), r"unknown key\(s\) \['sectoins'\]")
    bad(lambda d: d["sections"][0]["rows"][0].update(config="nope.yaml"), "row sup: config file not found")
    bad(lambda d: d["sections"][0]["rows"][0].update(overrides=["optim.lrr=1"]), r"row sup .*optim.lrr")
    bad(lambda d: d["sections"][0]["rows"][1].update(method="fixmatch2"), "unknown method|fixmatch2")
    bad(lambda d: d["sections"][0].update(datasets=["refcoco"]), "dataset 'refcoco' is not defined")
    bad(lambda d: d["sections"][0].update(budgets=["150%"]), "budget '150%'")
    bad(lambda d: d["sections"][0].update(kind="sweep"), "a sweep needs x")
    bad(lambda d: d["datasets"]["synthref"].update(prepare=[["train", "--config", "x"]]), "prepare")

    def twice(d):  # the same run id in two sections with different settings
        d["sections"].append(
            {
                "id": "t3",
                "rows": [{"id": "sup", "config": "tiny.yaml", "method": "supervised", "overrides": ["optim.lr=0.1"]}],
            }
        )

    bad(twice, "row sup of section t3 resolves to another config")


def test_shipped_synthref_grid_resolves():
    g = Grid(REPO / "configs" / "synthref_table1.yaml")
    assert (
        len(g.cells) == 91
    )  # + Baseline (w/o MLLM) at 1 % and 5 % (6) + the thresholds section (20 per seed, 2 seeds)
    assert "synthref/priorfusion_t70_5_s23" in g.cells and "synthref/priorfusion_t70_5_s24" not in g.cells
    assert g.cells["synthref/baseline_nomllm_5_s22"].cfg.model.sesm.enabled is True
    assert g.cells["synthref/fixmatch_5_s22"].cfg.model.sesm.enabled is False
    pf = g.cells["synthref/priorfusion_t70_5_s22"].cfg.semi
    assert (pf.tau_fg, pf.tau_bg) == (0.70, 0.30)
    l2l = g.cells["synthref/l2l_5_s22"]
    assert l2l.sections == ["table1", "table3", "fig5", "ours_guidance"]
    assert g.cells["synthref/l2l_10_s22"].cfg.data.label_fraction == "10%"
    assert g.cells["synthref/abl_nosesm_5_s22"].cfg.model.sesm.enabled is False
    assert [e.filename for e in l2l.evals] == [
        "eval_val.json",
        "eval_testB_none_original.json",
        "eval_val_prior_original.json",
        "eval_testB_prior_original.json",
    ]
    assert l2l.cfg.semi.priors == "runs/data/synthref_priors" and l2l.cfg.data.label_fraction == "5%"
    # the pretrained regime: shipped pool-pretrained encoder, frozen MiniLM, coordinates, 96 px
    m = l2l.cfg.model
    assert (m.visual.path, m.text.name, m.text.freeze, m.coords, m.image_size) == (
        "builtin:synthpool-conv",
        "minilm",
        True,
        True,
        96,
    )
    assert g.cells["synthref/sup_full_100_s22"].cfg.data.label_fraction == "100%"
    # the scratch regime's grid (the committed scratch report) still resolves, with random encoders
    old = Grid(REPO / "configs" / "synthref_table1_scratch.yaml")
    assert len(old.cells) == 60
    m = old.cells["synthref/l2l_5_s22"].cfg.model
    assert (m.visual.path, m.text.name, m.image_size) == (None, "tiny", 64)


def test_refcoco_grid_dry_run_on_the_refer_fixture(tmp_path, capsys):
    """The paper's grid: every config resolves, the three datasets open from a REFER root with the
    expected splits; only the model folders and prior stores are missing here."""
    build_refer_fixture(tmp_path, "refcoco", "unc")
    build_refer_fixture(tmp_path, "refcoco+", "unc")
    build_refer_fixture(tmp_path, "refcocog", "umd", ("train", "train", "train", "val", "test", "test"))
    grid = REPO / "configs" / "refcoco_table1.yaml"
    out = tmp_path / "grid"
    assert (
        main(
            [
                "experiment",
                "run",
                str(grid),
                "--dry-run",
                "--commands",
                "--out",
                str(out),
                "--set",
                f"data.root={tmp_path}",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    g = Grid(grid, out, [f"data.root={tmp_path}"])
    assert len(g.cells) == 86 and "every config resolves (86 runs)" in text
    assert sum(c.sections[0] == "table1" for c in g.cells.values()) == 3 * 4 * 5  # datasets × budgets × methods
    assert "data root" not in text and "has no split" not in text and "cannot open" not in text
    assert "model.visual.path /path/to/swin-base-patch4-window12-384 not found" in text
    l2l = g.cells["refcoco/l2l_5_s22"]
    assert (l2l.cfg.optim.lr, l2l.cfg.epochs, l2l.cfg.batch_size, l2l.cfg.data.size, l2l.cfg.seed) == (
        5e-5,
        40,
        4,
        480,
        22,
    )
    assert l2l.cfg.model.visual.name == "swin" and l2l.cfg.model.text.name == "bert"
    # per-epoch evaluation (eval_every 1): every split, val included, is evaluated from best/
    assert [e.filename for e in g.cells["refcocog/l2l_0.1_s22"].evals] == [
        "eval_val.json",
        "eval_val_none_original.json",
        "eval_test_none_original.json",
    ]
    assert g.cells["refcoco+/sup_10_s22"].cfg.data.dataset == "refcoco+"
    # the prior stores by override, one per dataset (DATASET:key=value), never by editing the grid file
    g = Grid(grid, out, [f"data.root={tmp_path}", "refcoco:semi.priors=/p/rc", "refcocog:semi.priors=/p/rcg"])
    assert g.cells["refcoco/l2l_5_s22"].cfg.semi.priors == "/p/rc"
    assert g.cells["refcocog/l2l_5_s22"].cfg.semi.priors == "/p/rcg"
    assert g.cells["refcoco+/l2l_5_s22"].cfg.semi.priors == "/path/to/priors/refcoco+_unc"
    with pytest.raises(GridError, match="no dataset 'coco'"):
        assert Grid(grid, out, ["coco:semi.priors=/p"]).cells
    assert "l2l train --config" in text and "--split testB" in text
    assert not out.exists()  # a dry run writes nothing


def test_paper_numbers():
    from l2l.experiment.paper import paper_value

    assert paper_value("table1", "refcoco", "Ours", "5%", "val") == 67.30
    assert paper_value("table1", "refcocog", "Ours", "0.1%", "test") == 52.80
    assert paper_value("table1", "refcoco", "SemiRES", "0.1%", "val") is None  # "-" in the paper
    assert paper_value("table3", "refcoco", "+SPM", "5%", "testB") == 61.03
    assert paper_value("table3", "refcoco+", "+SPM", "5%", "testB") is None
    assert paper_value("table1", None, "Ours", "5%", "val") is None


def test_report_prints_the_papers_numbers_beside_ours(tmp_path):
    """On a RefCOCO grid the report puts the paper's rows (labelled) under ours; our cells come
    from the run folders' eval files (written here by hand: no RefCOCO training on CPU)."""
    from l2l.report.build import build_report

    build_refer_fixture(tmp_path, "refcoco", "unc")
    g = Grid(REPO / "configs" / "refcoco_table1.yaml", tmp_path / "grid", [f"data.root={tmp_path}"])
    g.out.mkdir()
    (g.out / "grid.json").write_text(json.dumps(g.manifest()))
    cell = g.cells["refcoco/l2l_5_s22"]
    cell.run_dir.mkdir(parents=True)
    values = {
        "eval_val.json": 0.58,
        "eval_val_none_original.json": 0.61,
        "eval_testA_none_original.json": 0.66,
        "eval_testB_none_original.json": 0.55,
    }  # the last epoch's val (0.58) is not best/'s (0.61)
    for e in cell.evals:
        v = values[e.filename]
        (cell.run_dir / e.filename).write_text(
            json.dumps({"oIoU": v, "mIoU": v - 0.01, "P@0.5": 0.5, "P@0.7": 0.3, "P@0.9": 0.1})
        )
    md = (build_report(g.out, qualitative=0) / "report.md").read_text()
    table1 = md[md.index("**oIoU**") : md.index("**mIoU**")]
    ours = next(ln for ln in table1.splitlines() if ln.startswith("| L2L |"))
    paper = next(ln for ln in table1.splitlines() if ln.startswith("| *paper: Ours* |"))
    assert ours.split(" | ")[7:10] == ["61.00", "66.00", "55.00"]  # 5 % val, testA, testB
    assert paper.split(" | ")[7:10] == ["*67.30*", "*71.46*", "*62.60*"]
    assert "**the paper's numbers**" in md and "1 of 86 runs finished" in md
    t3 = md[md.index("Table 3: components") :]
    assert "| *paper: +SPM* | *65.73* | *69.66* | *61.03* |" in t3


def test_device_groups_one_per_concurrent_cell(grid_file, monkeypatch):
    """--devices: each cell's train and eval processes see one GPU group; groups are not shared."""
    import subprocess
    import threading

    from l2l.experiment import runner as R

    seen: dict[str, set] = {}
    busy, peak, lock = set(), [0], threading.Lock()

    class Done:
        returncode = 0

    def fake_run(cmd, stdout=None, stderr=None, env=None):  # stands in for `l2l train` / `l2l eval`
        run = Path(cmd[cmd.index("--out") + 1] if "--out" in cmd else cmd[cmd.index("--ckpt") + 1])
        dev = env["CUDA_VISIBLE_DEVICES"]
        with lock:
            assert dev not in busy or seen.get(run.name) == {dev}
            busy.add(dev)
            peak[0] = max(peak[0], len(busy))
            seen.setdefault(run.name, set()).add(dev)
        name = "eval_val.json" if "train" in cmd else f"eval_{cmd[cmd.index('--split') + 1]}_none_original.json"
        (run / name).write_text(json.dumps({"oIoU": 0.5}))
        with lock:
            busy.discard(dev)
        return Done()

    monkeypatch.setattr(subprocess, "run", fake_run)
    g = Grid(grid_file)
    r = R.Runner(g, devices=["0,1", "2,3"], echo=lambda m: None)
    assert r.jobs == 2
    res = r.run(list(g.cells.values()))
    assert {x.after for x in res} == {"done"}
    assert all(len(v) == 1 for v in seen.values()) and set().union(*seen.values()) <= {"0,1", "2,3"}
    with pytest.raises(ValueError, match="--jobs 3 needs"):
        R.Runner(g, jobs=3, devices=["0", "1"])


@pytest.mark.slow
def test_killed_grid_resumes(grid_file, tmp_path):
    """SIGKILL the whole `l2l experiment run` (runner and training) mid-run: the cell's lock is
    left behind by a dead process and its newest checkpoint is mid-way; the next run takes the
    lock over, resumes training from that checkpoint and finishes."""
    import signal
    import subprocess
    import sys
    import time

    raw = yaml.safe_load(grid_file.read_text())
    raw["sections"][0]["rows"] = raw["sections"][0]["rows"][:1]
    grid_file.write_text(yaml.safe_dump(raw))
    cfg = yaml.safe_load((grid_file.parent / "tiny.yaml").read_text())
    cfg.update(total_steps=60, ckpt_every=2)
    (grid_file.parent / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    run = Grid(grid_file).cells["synthref/sup_25_s5"].run_dir
    p = subprocess.Popen(
        [sys.executable, "-m", "l2l.cli", "experiment", "run", str(grid_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list((run / "checkpoints").glob("step_*")):
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    steps = sorted(int(c.name.split("_")[1]) for c in (run / "checkpoints").glob("step_*"))
    assert steps and steps[-1] < 60, "the run was not interrupted"
    assert (run / LOCK).exists() and not (run / "eval_val.json").exists()
    assert _states(grid_file)["synthref/sup_25_s5"] == "partial"  # the dead runner's lock is stale
    assert main(["experiment", "run", str(grid_file)]) == 0
    assert _states(grid_file)["synthref/sup_25_s5"] == "done" and not (run / LOCK).exists()
    env = json.loads((run / "env.json").read_text())
    assert env["resumed_from"] and int(env["resumed_from"].rsplit("_", 1)[1]) >= steps[-1]


def test_failed_cell_is_reported_and_others_go_on(grid_file, capsys):
    """A cell whose training fails (here: its prior store does not exist) is named with its log;
    the other cell still runs; the command exits 1."""
    raw = yaml.safe_load(grid_file.read_text())
    raw["sections"][0]["rows"][1] = {
        "id": "pf",
        "label": "fusion",
        "config": "tiny.yaml",
        "method": "prior-fusion",
        "overrides": ["semi.priors=/nonexistent/priors"],
    }
    grid_file.write_text(yaml.safe_dump(raw))
    assert main(["experiment", "run", str(grid_file)]) == 1
    err = capsys.readouterr().err
    assert "failed: synthref/pf_25_s5: l2l train exited with 2" in err and "experiment.log" in err
    states = _states(grid_file)
    assert states == {"synthref/sup_25_s5": "done", "synthref/pf_25_s5": "new"}
    log = (Grid(grid_file).cells["synthref/pf_25_s5"].run_dir / "experiment.log").read_text()
    assert "/nonexistent/priors" in log


@pytest.mark.slow
def test_ctrl_c_with_two_jobs_starts_nothing_new(grid_file):
    """Ctrl-C (SIGINT to the process group) while two cells train: both stop, the third cell is
    never started, no lock is left, exit 130; the next run resumes."""
    import signal
    import subprocess
    import sys
    import time

    raw = yaml.safe_load(grid_file.read_text())
    raw["sections"][0]["rows"].append(
        {"id": "sup2", "config": "tiny.yaml", "method": "supervised", "overrides": ["optim.lr=2e-3"]}
    )
    grid_file.write_text(yaml.safe_dump(raw))
    cfg = yaml.safe_load((grid_file.parent / "tiny.yaml").read_text())
    cfg.update(total_steps=60, ckpt_every=2)
    (grid_file.parent / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    cells = list(Grid(grid_file).cells.values())
    p = subprocess.Popen(
        [sys.executable, "-m", "l2l.cli", "experiment", "run", str(grid_file), "--jobs", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while time.time() < deadline and not all(list((c.run_dir / "checkpoints").glob("step_*")) for c in cells[:2]):
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGINT)
    assert p.wait(timeout=60) == 130
    states = _states(grid_file)
    assert [states[c.name] for c in cells] == ["partial", "partial", "new"] and not cells[2].run_dir.exists()
    assert not any((c.run_dir / LOCK).exists() for c in cells[:2])


def test_killed_runner_takes_its_trainer_with_it(grid_file):
    """F1: kill -9 of the runner alone (not its process group) used to leave `l2l train` writing the cell;
    a rerun then started a second trainer on the same folder. Now the child dies with the runner, and a
    trainer that is still alive holds the folder's own lock (.train.lock), which the rerun respects."""
    import signal
    import subprocess
    import sys
    import time

    from l2l.utils.lock import TRAIN_LOCK, holder_alive, read_lock

    raw = yaml.safe_load(grid_file.read_text())
    raw["sections"][0]["rows"] = raw["sections"][0]["rows"][:1]
    grid_file.write_text(yaml.safe_dump(raw))
    cfg = yaml.safe_load((grid_file.parent / "tiny.yaml").read_text())
    cfg.update(total_steps=400, ckpt_every=2)
    (grid_file.parent / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    run = Grid(grid_file).cells["synthref/sup_25_s5"].run_dir
    p = subprocess.Popen(
        [sys.executable, "-m", "l2l.cli", "experiment", "run", str(grid_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list((run / "checkpoints").glob("step_*")):
        time.sleep(0.05)
    trainer = read_lock(run / TRAIN_LOCK)
    assert trainer is not None and trainer["pid"] != p.pid and holder_alive(trainer)
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.time() + 30
    while time.time() < deadline and holder_alive(trainer):
        time.sleep(0.1)
    assert not holder_alive(trainer), "the trainer outlived its runner"
    assert main(["experiment", "run", str(grid_file)]) == 0
    steps = [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 400  # one writer: every step logged once
    assert not (run / TRAIN_LOCK).exists() and not (run / LOCK).exists()


def test_an_empty_lock_is_named_with_the_file_to_remove(grid_file, capsys):
    """F15: an empty .experiment.lock (a full disk, an editor) kept its cell "locked" forever with exit 0."""
    import time

    cell = Grid(grid_file).cells["synthref/sup_25_s5"]
    cell.run_dir.mkdir(parents=True)
    lock = cell.run_dir / LOCK
    lock.write_text("")
    old = time.time() - 60
    os.utime(lock, (old, old))
    assert main(["experiment", "run", str(grid_file), "--only", "synthref/sup_25_s5"]) == 1
    err = capsys.readouterr().err
    assert f"{lock} is empty or unreadable" in err and "remove it" in err


def test_bars_leave_out_a_series_without_values(tmp_path):
    """A grid budget that was not run (no value in any group) gets no bars and no legend entry."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from l2l.report.figures import bars

    seen = {}
    real_savefig = plt.Figure.savefig

    def keep(fig, *a, **k):
        seen["legend"] = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        return real_savefig(fig, *a, **k)

    plt.Figure.savefig = keep
    try:
        bars(["a", "b"], {"1% labels": [[], []], "5% labels": [[40.0, 41.0], [50.0]]}, tmp_path / "b.png", "t", "oIoU")
    finally:
        plt.Figure.savefig = real_savefig
    assert seen["legend"] == ["5% labels"] and (tmp_path / "b.png").exists()
