"""Model folders of the pretraining world's stand-ins: write, resolve (``builtin:NAME``), load.

Every stand-in is a folder loaded by path, as a real model is::

    FOLDER/config.json        {"format": "<kind>/<version>", ...architecture...}
    FOLDER/<part>.safetensors weights (float16 on disk when written with ``half``; restored to float32)
    FOLDER/card.json          training data, steps, wall time, metrics, machine, command
    FOLDER/README.md          the card for people

``builtin:NAME`` names a folder shipped inside the package (``l2l/assets``).
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from ..errors import MissingFileError, UsageError
from .io import atomic_write_text, save_safetensors

ASSETS = Path(__file__).resolve().parent.parent / "assets"
BUILTIN = {
    "synthpool-conv": ASSETS / "synthpool_conv",  # l2l pretrain visual
    "synthpool-sam": ASSETS / "synthpool_sam",  # l2l pretrain mask-model
    "synthpool-clip": ASSETS / "synthpool_clip",  # l2l pretrain dual-encoder (crops; PPT's and Pseudo-RIS's results)
    # the dual encoder with regions (model.regions=true: a box embedded in its scene; docs/foundation.md)
    "synthpool-clip-regions": ASSETS / "synthpool_clip_regions",
    "synthpool-grounder": ASSETS / "synthpool_grounder",  # l2l pretrain grounder (the objects body)
    "synthpool-grounder-dense": ASSETS
    / "retired"
    / "synthpool_grounder_dense",  # the first grounder (model.body=transformer)
    # the first objects grounder (6,000 pool scenes; configs/synthref_table1_standin_objects.yaml's results)
    "synthpool-grounder-objects-6k": ASSETS / "retired" / "synthpool_grounder_objects6k",
    "synthpool-captioner": ASSETS / "synthpool_captioner",  # l2l pretrain captioner
}


def resolve_model_path(path: str | Path) -> Path:
    """A folder, or ``builtin:NAME`` for a folder shipped inside the package."""
    s = str(path)
    if s.startswith("builtin:"):
        name = s.split(":", 1)[1]
        if name not in BUILTIN:
            raise MissingFileError(f"unknown builtin model {name!r}; available: {sorted(BUILTIN)}")
        return BUILTIN[name]
    return Path(s)


def is_real_folder(path: str | Path) -> bool:
    """Whether ``path`` holds a real (Hugging Face) model rather than a stand-in, by an explicit field: a
    stand-in's ``config.json`` names its l2l ``format`` (``l2l-mask-model/1`` …), a Hugging Face one its
    ``model_type`` and no ``format``. ``builtin:NAME`` and a path without a readable ``config.json`` count as
    stand-ins (whose loader then says what is missing)."""
    if str(path).startswith("builtin:"):
        return False
    cfg = Path(path) / "config.json"
    try:
        doc = json.loads(cfg.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(doc, dict) and "format" not in doc and "model_type" in doc


def halve(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().half().contiguous() if v.is_floating_point() else v.contiguous() for k, v in state.items()}


def machine() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
    }


def write_folder(
    out: str | Path,
    config: dict[str, Any],
    weights: dict[str, dict[str, torch.Tensor]],
    card: dict[str, Any],
    readme: str,
) -> Path:
    """Write config.json, one safetensors file per part, card.json (with date and machine) and README.md."""

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for part, state in weights.items():
        save_safetensors({k: v.contiguous() for k, v in state.items()}, str(out / f"{part}.safetensors"))
    atomic_write_text(out / "config.json", json.dumps(config, indent=2))
    card = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), **card}
    atomic_write_text(out / "card.json", json.dumps(card, indent=2))
    atomic_write_text(out / "README.md", readme)
    return out


def load_folder(path: str | Path, fmt: str, parts: tuple[str, ...] = ("model",)) -> tuple[dict[str, Any], dict]:
    """(config.json, {part: float32 state dict}) of a folder whose config has format ``fmt``."""
    from safetensors.torch import load_file

    root = resolve_model_path(path)
    cfg_file = root / "config.json"
    if not cfg_file.exists():
        raise MissingFileError(f"no model folder at {root} (config.json missing)")
    try:
        doc = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise UsageError(f"{cfg_file}: not valid JSON ({e})") from None
    if doc.get("format") != fmt:
        raise UsageError(f"{cfg_file}: format {doc.get('format')!r}, expected {fmt!r}")
    states = {}
    for part in parts:
        f = root / f"{part}.safetensors"
        if not f.exists():
            raise MissingFileError(f"{root}: {f.name} missing")
        states[part] = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(f)).items()}
    return doc, states


def folder_digest(path: str | Path) -> str:
    """sha256 (16 hex digits) over the folder's config and weight files: which stand-in made a prior."""
    root = resolve_model_path(path)
    h = hashlib.sha256()
    for f in sorted(root.glob("*.safetensors")) + [root / "config.json"]:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]
