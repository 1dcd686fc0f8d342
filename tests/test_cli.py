"""The l2l command: synth + split + stats on SynthRef and on the REFER fixture, and clear errors."""
from __future__ import annotations

import json
import subprocess
import sys

from l2l.cli import main


def test_synth_split_stats_preview(tmp_path, capsys):
    d = tmp_path / "sr"
    assert main(["data", "synth", "--out", str(d), "--images", "30", "--seed", "1", "--workers", "1"]) == 0
    assert main(["data", "split", "--data", str(d), "--fraction", "10%", "--seed", "22"]) == 0
    out = capsys.readouterr().out
    assert "labeled" in out and (d / "splits" / "label_split_10pct_seed22.json").exists()
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
    assert main(["data", "split", "--data", str(root), "--dataset", "refcoco", "--fraction", "0.1%",
                 "--out", str(root / "s.json")]) == 0
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
