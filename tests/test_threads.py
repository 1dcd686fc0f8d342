"""The thread policy (utils/threads.py): one torch thread per process unless told otherwise, set at
every entry point before any work, inherited by child processes, refused cleanly when malformed."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest
import torch

from l2l.cli import build_parser, main
from l2l.errors import UsageError
from l2l.utils import threads

POLICY_VARS = (threads.ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")


@pytest.fixture
def clean_env(monkeypatch):
    for k in POLICY_VARS:
        monkeypatch.delenv(k, raising=False)
    before = torch.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(before)


def test_policy_order(clean_env):
    assert threads.policy_threads() == 1  # nothing set: one thread
    clean_env.setenv("OMP_NUM_THREADS", "3")
    assert threads.policy_threads() == 3  # the user's OpenMP setting is respected
    clean_env.setenv(threads.ENV, "2")
    assert threads.policy_threads() == 2  # L2L_THREADS before OMP_NUM_THREADS
    assert threads.policy_threads(4) == 4  # --threads before both


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5", ""])
def test_malformed_counts_are_refused_with_their_source(clean_env, bad):
    if bad == "":  # an empty variable counts as unset
        clean_env.setenv(threads.ENV, bad)
        assert threads.policy_threads() == 1
        return
    clean_env.setenv(threads.ENV, bad)
    with pytest.raises(UsageError, match=threads.ENV):
        threads.policy_threads()
    with pytest.raises(UsageError, match="--threads"):
        threads.threads_from_argv(["train", "--threads", bad])


def test_apply_sets_torch_and_the_environment(clean_env):
    assert threads.apply(2) == 2
    assert torch.get_num_threads() == 2
    assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == os.environ[threads.ENV] == "2"
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    clean_env.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a user's wait policy is kept
    threads.apply(1)
    assert torch.get_num_threads() == 1 and os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_argv_is_read_before_parsing():
    assert threads.threads_from_argv(["train", "--threads", "3", "x=1"]) == 3
    assert threads.threads_from_argv(["--threads=2", "eval"]) == 2
    assert threads.threads_from_argv(["train", "--", "--threads", "3"]) is None
    assert threads.threads_from_argv(["train"]) is None


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaves(child, (*path, name))


def test_every_command_takes_threads():
    leaves = list(_leaves(build_parser()))
    assert len(leaves) > 20
    for path, p in leaves:
        opts = {o for a in p._actions for o in a.option_strings}
        assert "--threads" in opts, " ".join(path)


def test_cli_sets_the_count_for_its_work_and_restores_it(clean_env, synthref_dir, capsys):
    torch.set_num_threads(1)
    seen = {}

    def spy(args):
        seen["torch"] = torch.get_num_threads()
        seen["env"] = os.environ["OMP_NUM_THREADS"]
        return 0

    parser = build_parser()
    for argv in (
        ["data", "stats", str(synthref_dir), "--threads", "2"],
        ["--threads", "2", "data", "stats", str(synthref_dir)],
    ):
        args = parser.parse_args(argv)
        args.func = spy
        from l2l import cli

        with threads.restored():
            threads.prepare_environment(threads.threads_from_argv(argv))
            assert cli._run(args) == 0
        assert seen == {"torch": 2, "env": "2"}, argv
        assert torch.get_num_threads() == 1 and "OMP_NUM_THREADS" not in os.environ  # restored
    # through main(): the real command runs, and the caller's settings come back
    assert main(["data", "stats", str(synthref_dir), "--threads", "2", "--json"]) == 0
    assert torch.get_num_threads() == 1 and threads.ENV not in os.environ
    capsys.readouterr()
    assert main(["data", "stats", str(synthref_dir), "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
    clean_env.setenv(threads.ENV, "many")
    assert main(["data", "stats", str(synthref_dir)]) == 2
    assert "L2L_THREADS" in capsys.readouterr().err


def test_a_child_process_inherits_the_policy(clean_env):
    """The console script sets the count before torch starts; its children (grid jobs, generation
    shards, loader workers) inherit it through the environment."""
    code = (
        "import json, os, sys; from l2l.utils import threads; threads.prepare_environment(); import torch; "
        "print(json.dumps({'torch': torch.get_num_threads(), 'omp': os.environ['OMP_NUM_THREADS'], "
        "'wait': os.environ['OMP_WAIT_POLICY']}))"
    )
    env = {k: v for k, v in os.environ.items() if k not in POLICY_VARS}
    out = json.loads(
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    )
    assert out == {"torch": 1, "omp": "1", "wait": "PASSIVE"}
    env[threads.ENV] = "2"
    out = json.loads(
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    )
    assert out["torch"] == 2 and out["omp"] == "2"


def test_a_training_config_sets_its_run_threads(clean_env, synthref_dir, tmp_path):
    from l2l.config import load_config
    from l2l.engine.trainer import Trainer
    from l2l.schema import TrainConfig

    with pytest.raises(UsageError, match="threads"):
        load_config(TrainConfig, None, ["threads=-1"]).validate()
    from tests.test_trainer import TINY

    cfg = load_config(
        TrainConfig, None, [f"data.root={synthref_dir}", *TINY, "total_steps=1", "batch_size=2", "threads=2"]
    )
    torch.set_num_threads(1)
    tr = Trainer(cfg, tmp_path / "run")
    tr.show_progress = False
    tr.prepare(resume=False)
    assert torch.get_num_threads() == 2
