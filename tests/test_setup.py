"""The set-up: the dependency floors in pyproject.toml hold for what is installed, and they are at least
the versions whose APIs the code uses; scripts/setup.sh needs no wheel folder and no root."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# APIs the code uses, and the first release that has them (each from the package's release notes)
NEEDS = {
    "transformers": ("4.56", "Sam2Model, and from_pretrained(dtype=...) instead of torch_dtype"),
    "gradio": ("5", "the Gradio 5 Blocks and queue API of l2l serve"),
    "safetensors": ("0.4", "safetensors.torch.save_file / load_file with metadata"),
}


def _requirements(extra: str | None = None) -> list[Requirement]:
    deps = (
        PYPROJECT["project"]["dependencies"] if extra is None else PYPROJECT["project"]["optional-dependencies"][extra]
    )
    return [Requirement(d) for d in deps]


@pytest.mark.parametrize("extra", [None, "dev", "serve"])
def test_installed_versions_meet_the_floors(extra):
    bad = []
    for req in _requirements(extra):
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            bad.append(f"{req.name}: not installed (pyproject asks {req.specifier})")
            continue
        if not req.specifier.contains(have, prereleases=True):
            bad.append(f"{req.name} {have} does not satisfy {req.specifier}")
    assert not bad, bad


def test_floors_are_at_least_what_the_code_uses():
    floors = {}
    for req in _requirements() + _requirements("serve"):
        lows = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
        floors[req.name] = max(lows) if lows else None
    for name, (need, why) in NEEDS.items():
        assert floors.get(name) is not None, f"{name} has no floor in pyproject.toml; it needs ≥ {need} ({why})"
        assert floors[name] >= Version(need), f"{name}>={floors[name]} is below {need}, needed for {why}"


def test_torch_is_the_pinned_cpu_build_and_not_a_dependency():
    import torch

    script = (ROOT / "scripts" / "setup.sh").read_text()
    pinned = re.search(r"^TORCH_VERSION=(\S+)$", script, re.M)
    assert pinned and torch.__version__.split("+")[0] == pinned.group(1)
    # never resolved by pip from the project's dependencies (that could pull a CUDA build)
    assert not any(r.name == "torch" for r in _requirements())


def _torch_source(tmp_path, **env) -> str:
    r = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup.sh"), "--torch-source"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_setup_takes_torch_from_the_cpu_index_without_a_wheel_folder(tmp_path):
    """Where torch comes from: a wheel folder holding the pinned wheel, else PyTorch's CPU index, or the
    index L2L_TORCH_INDEX names (a CUDA one on a GPU machine)."""
    nowhere = str(tmp_path / "no_wheels")
    assert _torch_source(tmp_path, L2L_WHEELS=nowhere, L2L_TORCH_INDEX=None) == (
        "--index-url https://download.pytorch.org/whl/cpu"
    )
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    assert _torch_source(tmp_path, L2L_WHEELS=str(wheels), L2L_TORCH_INDEX=None) == f"--find-links {wheels}"
    cuda = "https://example.invalid/whl/cu128"
    assert _torch_source(tmp_path, L2L_WHEELS=str(wheels), L2L_TORCH_INDEX=cuda) == f"--index-url {cuda}"
    # make test installs the browser test's chromium where it can
    assert "setup_browser.sh" in (ROOT / "Makefile").read_text().split("\ntest:")[1].split("\n\n")[0]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root to act as another user")
def test_browser_setup_without_root_says_what_it_skips():
    """Run as an unprivileged user (nobody) with no chromium on PATH: it installs nothing, says so, exits 0."""
    with tempfile.TemporaryDirectory() as d:  # under /tmp, readable by nobody (pytest's tmp_path is not)
        os.chmod(d, 0o755)
        for tool in ("bash", "id", "sudo", "apt-get", "env", "cat"):
            if shutil.which(tool):
                os.symlink(shutil.which(tool), Path(d) / tool)
        script = Path(d) / "setup_browser.sh"
        shutil.copy(ROOT / "scripts" / "setup_browser.sh", script)
        os.chmod(script, 0o755)
        r = subprocess.run(
            ["runuser", "-u", "nobody", "--", "env", f"PATH={d}", "bash", str(script)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=d,
        )
    assert r.returncode == 0, r.stderr
    assert "skipped chromium (needs root for apt-get)" in r.stdout
