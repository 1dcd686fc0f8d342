"""Registries, the Method protocol, a method that trains a model that is not a Segmenter, checkpoints
without frozen parts, and the package layering (which package may import which)."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from l2l.config import load_config
from l2l.engine import checkpoint as ckpt
from l2l.engine.method import StepOutput, check_method, labeled_data
from l2l.engine.trainer import Trainer, build_method
from l2l.errors import L2LError, UsageError
from l2l.registry import METHODS, MODELS, Registry, UnknownName
from l2l.schema import TrainConfig
from l2l.semi.methods.supervised import weighted_ce_per_sample

SRC = Path(__file__).resolve().parents[1] / "src" / "l2l"


def test_registry_lazy_entries_and_errors():
    r: Registry = Registry("widget")
    r.register("json-dumps", "json:dumps")
    assert r.get("json-dumps") is json.dumps  # imported on first use
    with pytest.raises(ValueError, match="already registered"):
        r.register("json-dumps", "json:loads")
    with pytest.raises(ValueError, match="module:attribute"):
        r.register("bad", "json.dumps")
    with pytest.raises(UnknownName, match=r"unknown widget 'nope'; available: json-dumps") as e:
        r.get("nope")
    assert isinstance(e.value, L2LError) and isinstance(e.value, ValueError)
    r.unregister("json-dumps")
    assert "json-dumps" not in r


def test_every_registered_method_builds_and_keeps_the_protocol():
    cfg = load_config(TrainConfig, None, ["semi.priors=x"])
    families = {}
    for name in METHODS:
        cfg.method = name
        m = build_method(cfg)  # check_method inside
        assert m.name == name and m.model in MODELS
        families.setdefault(type(m).__name__, []).append(name)
    assert families == {
        "SupervisedMethod": ["supervised"],
        "FixMatch": ["fixmatch"],
        "PriorFusion": ["prior-fusion", "agreement-filter", "catm"],
        "L2L": ["static-threshold", "l2l"],
    }
    with pytest.raises(UsageError, match="unknown method 'mean-teacher'"):
        cfg.method = "mean-teacher"
        build_method(cfg)
    with pytest.raises(TypeError, match="lacks .*loss"):
        check_method(object(), "nothing")


class Blob(nn.Module):
    """Not a Segmenter: one convolution, no text; enough for the trainer and the evaluator."""

    def __init__(self, cfg=None):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.frozen_stem = nn.Conv2d(3, 3, 1)
        self.frozen_stem.requires_grad_(False)

    def forward(self, images, texts):
        return self.conv(self.frozen_stem(images))

    def predict(self, images, texts, guidance="none", prior=None, has_prior=None):
        return self(images, texts).softmax(1)[:, 1]

    def save_pretrained(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)
        save_file(self.state_dict(), str(Path(path) / "model.safetensors"))


@dataclass
class BlobMethod:
    name: str = "blob-test"
    needs_unlabeled: bool = False
    needs_priors: bool = False
    priors_path: str | None = None
    unlabeled_batch_size: int | None = None
    model: str = "blob-test"

    @classmethod
    def from_config(cls, cfg, name):
        return cls(name=name)

    def datasets(self, ctx):
        """The method owns its data: here the labeled samples of one image only, noted in env.json."""
        first = ctx.labeled[0].image_id
        data = labeled_data(replace(ctx, labeled=[r for r in ctx.labeled if r.image_id == first]))
        data.notes["blob_image"] = first
        return data

    def setup(self, ctx):
        self.setup_called = True

    def loss(self, net, lab, unl, ctx):
        logits = net(lab.images.to(ctx.device), lab.texts)
        loss = weighted_ce_per_sample(logits, lab.masks.to(ctx.device)).mean()
        return StepOutput(loss, {"loss_blob": float(loss.detach())})

    def hooks(self, trainer):
        return []

    def settings(self):
        return {"method": self.name}

    def state_dict(self):
        return {}

    def load_state_dict(self, d):
        pass

    def flush(self):
        pass

    def save_files(self, folder):
        pass

    def load_files(self, folder):
        pass


@pytest.fixture()
def blob_registered():
    METHODS.register("blob-test", BlobMethod)
    MODELS.register("blob-test", Blob)
    yield
    METHODS.unregister("blob-test")
    MODELS.unregister("blob-test")


def test_trainer_trains_a_registered_method_on_a_model_that_is_not_a_segmenter(synthref_dir, tmp_path, blob_registered):
    cfg = load_config(
        TrainConfig,
        None,
        [
            f"data.root={synthref_dir}",
            "method=blob-test",
            "total_steps=4",
            "batch_size=2",
            "data.workers=0",
            "data.size=32",
            "data.eval_max_samples=4",
            "ckpt_every=2",
            "log_every=2",
            "optim.lr=1e-2",
        ],
    )
    tr = Trainer(cfg, tmp_path / "run", show_progress=False)
    before = tr.__dict__.copy()
    out = tr.fit()
    assert not before.get("model") and isinstance(tr.model, Blob) and tr.method.setup_called
    assert set(out["results"]) >= {"oIoU", "mIoU", "P@0.5"}
    logs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("loss_blob" in r for r in logs)
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    one = [r for r in tr.dataset.samples("train") if r.image_id == env["blob_image"]]
    assert env["labeled_samples"] > len(tr.stream.labeled) == len(one) > 0  # trained on what datasets() gave
    # the checkpoint leaves the frozen child out and names it; resuming restores the rest exactly
    last = ckpt.latest(tmp_path / "run" / "checkpoints")
    saved = load_file(str(last / "model.safetensors"))
    assert set(saved) == {"conv.weight", "conv.bias"}
    assert json.loads((last / "meta.json").read_text())["frozen"] == ["frozen_stem."]
    fresh = Blob()
    fresh.frozen_stem.load_state_dict(tr.model.frozen_stem.state_dict())
    ckpt.load(last, fresh, restore_rng=False)
    assert torch.equal(fresh.conv.weight, tr.model.conv.weight.cpu())
    # a model in which that child is trainable does not silently take the checkpoint
    other = Blob()
    other.frozen_stem.requires_grad_(True)
    with pytest.raises(ValueError, match=r"left out \[.frozen_stem\..\] as frozen, but in this model"):
        ckpt.load(last, other, restore_rng=False)


def _imports(path: Path, root: Path = SRC) -> set[str]:
    """Top-level l2l packages that ``path`` imports (relative and absolute imports, at any depth:
    inside functions and ``TYPE_CHECKING`` blocks too). ``from . import __version__`` is the root."""
    rel = path.relative_to(root)
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel.parts[:-1])
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                parts = base + (node.module.split(".") if node.module else [])
                out.add(parts[0] if parts else node.names[0].name)
            elif node.module and node.module.startswith("l2l."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("l2l.")}
    return {"l2l" if name.startswith("__") else name for name in out}


# The floors of docs/architecture.md ("Floors"), lowest first: a package imports only packages on
# lower floors; two packages on one floor never import each other. The root module ``l2l`` (the
# version) is below everything.
FLOORS: list[tuple[str, ...]] = [
    ("l2l", "errors"),
    ("config",),
    ("utils", "registry"),
    ("data",),
    ("nets", "evaluation"),
    ("foundation",),
    ("models", "pretrain"),
    ("priors",),
    ("schema",),
    ("engine",),
    ("semi", "pseudoris", "serve"),
    ("ppt", "label"),
    ("experiment",),
    ("report",),
    ("cli",),
]
# Upward imports that are known and scheduled (the issue step that removes each); the test fails on
# any other, and on an entry here that no longer happens (remove it with the fix).
KNOWN_UPWARD: dict[tuple[str, str], str] = {}


def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else ("l2l" if rel.stem == "__init__" else rel.stem)


def _package_edges() -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        pkg = _package_of(path)
        for dep in _imports(path) - {pkg}:
            edges.setdefault((pkg, dep), []).append(str(path.relative_to(SRC)))
    return edges


def test_every_package_has_a_floor():
    floor_of = {pkg: i for i, floor in enumerate(FLOORS) for pkg in floor}
    packages = {_package_of(p) for p in SRC.rglob("*.py")}
    assert packages - set(floor_of) == set(), "a package without a floor: place it in FLOORS and the doc"
    assert set(floor_of) - packages == set(), "a floor names a package that does not exist"


def test_imports_run_down_the_floors():
    floor_of = {pkg: i for i, floor in enumerate(FLOORS) for pkg in floor}
    edges = _package_edges()
    bad = [
        f"{files[0]} imports l2l.{dep} (floor {floor_of[dep]}) from l2l.{pkg} (floor {floor_of[pkg]})"
        for (pkg, dep), files in sorted(edges.items())
        if floor_of[dep] >= floor_of[pkg] and (pkg, dep) not in KNOWN_UPWARD
    ]
    assert not bad, "an import runs upward or sideways:\n" + "\n".join(bad)
    gone = [f"{a} → {b} ({why})" for (a, b), why in KNOWN_UPWARD.items() if (a, b) not in edges]
    assert not gone, "fixed upward imports still listed in KNOWN_UPWARD: " + "; ".join(gone)


def test_the_walk_sees_imports_inside_functions(tmp_path):
    (tmp_path / "data").mkdir()
    f = tmp_path / "data" / "y.py"
    f.write_text("def f():\n    from ..engine import trainer\n    import l2l.cli\n    from . import refer\n")
    assert _imports(f, tmp_path) == {"engine", "cli", "data"}


def test_the_doc_draws_the_same_floors():
    text = (SRC.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Floors", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and line[2:3].isdigit()]
    doc = [tuple(sorted(re.findall(r"`([a-z0-9_]+)`", row.split("|")[2]))) for row in rows]
    assert doc == [tuple(sorted(f)) for f in FLOORS], "docs/architecture.md's floors differ from FLOORS"


def test_one_formatting_style():
    """No file opts out of the formatter (issue 35: two styles had grown from 352 markers)."""
    root = Path(__file__).resolve().parents[1]
    bad = [
        f"{p.relative_to(root)}:{n}"
        for d in ("src", "tests", "benchmarks")
        for p in (root / d).rglob("*.py")
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if "# fmt: " + "skip" in line or "# fmt: " + "off" in line
    ]
    assert not bad, "formatter opt-outs:\n" + "\n".join(bad)
