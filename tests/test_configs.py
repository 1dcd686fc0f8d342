"""Every shipped config resolves to a valid TrainConfig — or PPTConfig for `l2l ppt train` configs — (no
unknown keys, right types)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from l2l.config import ConfigError, dump_config, load_config
from l2l.engine.trainer import TrainConfig

ALL = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
GRIDS = [p for p in ALL if "sections" in (yaml.safe_load(p.read_text()) or {})]  # experiment grids
PPT = [p for p in ALL if "curriculum" in (yaml.safe_load(p.read_text()) or {})]  # l2l ppt train configs
CONFIGS = [p for p in ALL if p not in GRIDS and p not in PPT]


@pytest.mark.parametrize("path", GRIDS, ids=[p.name for p in GRIDS])
def test_shipped_grids_resolve(path):
    from l2l.experiment.grid import Grid

    g = Grid(path)
    assert g.cells and all(c.cfg.batch_size > 0 for c in g.cells.values())


@pytest.mark.parametrize("path", PPT, ids=[p.name for p in PPT])
def test_shipped_ppt_configs_resolve(path):
    from l2l.ppt.config import PPTConfig

    cfg = load_config(PPTConfig, path)
    assert cfg.batch_size > 0 and cfg.lr > 0 and cfg.curriculum.epochs == (10, 30, 10)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_resolve(path):
    cfg = load_config(TrainConfig, path)
    assert cfg.batch_size > 0 and cfg.optim.lr > 0
    again = load_config(TrainConfig, None, [])  # defaults load too
    assert again.seed == 22


@pytest.mark.parametrize(
    "override, error",
    [
        ("compile=maybe", "compile: expected true or false, got 'maybe'"),
        ("channels_last=1", "channels_last: expected true or false, got 1"),
        ("batch_size=true", "batch_size: expected an integer, got True"),
        ("optim.lr=false", "optim.lr: expected a number, got False"),
    ],
)
def test_a_switch_is_true_or_false_and_a_count_a_number(override, error):
    """No silent truthiness (the fault sweep's F7: compile=maybe turned torch.compile on)."""
    with pytest.raises(ConfigError, match=error):
        load_config(TrainConfig, None, [override])


def test_overrides_types_and_errors(tmp_path):
    cfg = load_config(
        TrainConfig,
        None,
        ["optim.lr=1e-4", "data.label_fraction=5%", "model.sesm.stage_modes=[local,local,local,local]"],
    )
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float) and cfg.data.label_fraction == "5%"
    assert cfg.model.sesm.stage_modes == ("local",) * 4
    with pytest.raises(ConfigError, match="optim.nope"):
        load_config(TrainConfig, None, ["optim.nope=1"])
    with pytest.raises(ConfigError, match="expected a number"):
        load_config(TrainConfig, None, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match="stage_modes"):
        load_config(TrainConfig, None, ["model.sesm.stage_modes=[local]"])
    assert load_config(TrainConfig, None, ['compile="yes"', "channels_last=off"]).compile is True
    p = tmp_path / "c.yaml"
    p.write_text(dump_config(cfg))
    assert load_config(TrainConfig, p) == cfg
    with pytest.raises(FileNotFoundError):
        load_config(TrainConfig, tmp_path / "missing.yaml")


def test_configs_ship_inside_the_package(tmp_path, monkeypatch):
    from l2l.config import shipped_config

    monkeypatch.chdir(tmp_path)  # far from the repository: the packaged configs are found
    assert load_config(TrainConfig, "configs/synthref_l2l.yaml").method == "l2l"
    assert load_config(TrainConfig, "synthref_supervised.yaml").method == "supervised"
    assert shipped_config("configs/splits/synthref/label_split_5pct_seed22.json").exists()
    with pytest.raises(FileNotFoundError, match="nor among the configs shipped with l2l"):
        load_config(TrainConfig, "configs/nope.yaml")


def test_the_semi_section_is_registered_not_imported():
    """``l2l.schema`` finds the method family's section in CONFIG_SECTIONS (issue 35 step 5): importing the
    engine loads no method family, and the section still parses, refuses and dumps like any other."""
    import subprocess
    import sys

    code = "import sys, l2l.engine.trainer; print(sorted(m for m in sys.modules if m.startswith('l2l.semi')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    cfg = load_config(TrainConfig, None, ["semi.lambda_u=2", "semi.rple.lr=0.25"])
    assert type(cfg.semi).__name__ == "SemiConfig" and cfg.semi.lambda_u == 2.0 and cfg.semi.rple.lr == 0.25
    assert yaml.safe_load(dump_config(cfg))["semi"]["rple"]["lr"] == 0.25
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) semi.nope; SemiConfig has"):
        load_config(TrainConfig, None, ["semi.nope=1"])
    with pytest.raises(ConfigError, match="semi: a section"):
        load_config(TrainConfig, None, ["semi=3"])
    with pytest.raises(ValueError, match="semi.tau_fg must lie in"):
        load_config(TrainConfig, None, ["semi.tau_fg=2"]).validate()
