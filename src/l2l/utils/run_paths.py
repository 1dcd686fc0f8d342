"""Movable run folders: the paths a run's config names, found again from any working directory.

A run's ``config.yaml`` keeps every value as it was given (``data.root: runs/demo/synthref``), so
that a grid can compare it with what it resolves to. Relative paths are relative to the directory
the run was started from, which is not where ``l2l eval`` / ``l2l serve`` are started later, nor
where the folder lies after it was moved. Beside it, ``paths.json`` records for every config value
that named an existing file or folder when the run started:

* ``absolute`` — the path resolved then;
* ``from_run`` — the same path relative to the run folder (``../synthref``), so that a run folder
  moved together with its data (a copied ``runs/`` tree, a clone elsewhere) still finds it.

:func:`load_run_config` reads the config and, for each recorded value that does not exist as given
from the current directory, takes the first of ``absolute``, ``run folder / from_run`` that exists.
Values such as ``builtin:…`` or ``null`` are left as they are.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..config import ConfigError, _merge, apply_overrides, from_dict, load_yaml, to_dict
from .io import atomic_write_text
from .run_folder import RunFolder

# config keys that name files or folders, by their last part (data.root, model.visual.path, semi.priors,
# data.image_dir, data.split_file, data.eda_cache, init_from, model.visual.init_from); no other value
# is taken for a path, even when a file of that name happens to exist (data.eval_split: val)
PATH_NAMES = frozenset({"root", "path", "image_dir", "split_file", "eda_cache", "init_from", "priors"})


def _leaves(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(d, dict):
        return [kv for k, v in d.items() for kv in _leaves(v, f"{prefix}{k}.")]
    return [(prefix[:-1], d)]


def path_values(cfg: Any, cwd: str | Path | None = None) -> dict[str, str]:
    """Path keys (:data:`PATH_NAMES`, dotted) whose value names an existing file or folder from ``cwd``."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    out = {}
    for key, v in _leaves(to_dict(cfg)):
        if key.rsplit(".", 1)[-1] not in PATH_NAMES or not isinstance(v, str) or not v:
            continue
        if ":" not in v.split("/")[0] and (base / v).exists():  # builtin:NAME is no path
            out[key] = v
    return out


def record_paths(cfg: Any, run_dir: str | Path) -> dict[str, Any]:
    """Write ``paths.json`` into ``run_dir`` (module docstring); returns what it wrote."""
    run_dir = Path(run_dir).resolve()
    paths = {}
    try:  # a resume from another directory keeps what the first start found
        old = json.loads((RunFolder(run_dir).paths).read_text())["paths"]
        values = dict(_leaves(to_dict(cfg)))
        paths = {k: r for k, r in old.items() if values.get(k) == r.get("given")}
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        pass
    for key, given in path_values(cfg).items():
        absolute = Path(given).resolve()
        paths[key] = {"given": given, "absolute": str(absolute), "from_run": os.path.relpath(absolute, run_dir)}
    doc = {"cwd": str(Path.cwd().resolve()), "paths": paths}
    atomic_write_text(RunFolder(run_dir).paths, json.dumps(doc, indent=1))
    return doc


def resolved_overrides(run_dir: str | Path, raw: dict[str, Any]) -> list[str]:
    """``key=path`` overrides that point the recorded paths of ``run_dir`` at where they are now."""
    run_dir = Path(run_dir)
    f = RunFolder(run_dir).paths
    if not f.exists():
        return []
    try:
        recorded = json.loads(f.read_text())["paths"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return []  # a damaged file: the config's values as they are
    values = dict(_leaves(raw))
    out = []
    for key, rec in recorded.items():
        given = values.get(key)
        if not isinstance(given, str) or given != rec.get("given") or Path(given).exists():
            continue  # changed since, or found as given
        for cand in (rec.get("absolute"), run_dir / str(rec.get("from_run", ""))):
            if cand and rec.get("from_run") is not None and Path(cand).exists():
                out.append(f"{key}={json.dumps(str(Path(cand)))}")
                break
    return out


def load_run_config(path: str | Path, cls: type) -> Any:
    """The config (dataclass ``cls``, e.g. ``TrainConfig``) of the run around ``path``
    (:meth:`RunFolder.find`) with its paths found again (module docstring); ``None`` without a run folder."""
    found = RunFolder.find(path)
    run = found.root if found is not None else None
    if run is None:
        return None
    raw = _read_yaml(run)
    merged = apply_overrides(_merge(to_dict(cls()), raw), resolved_overrides(run, raw))
    try:
        return from_dict(cls, merged)
    except ConfigError as e:
        raise ConfigError(f"{run / 'config.yaml'}: {e}") from None


def load_run_dict(path: str | Path | None) -> dict[str, Any] | None:
    """The run's config as plain data with its paths found again; ``None`` without a run folder."""
    found = RunFolder.find(path)
    run = found.root if found is not None else None
    if run is None:
        return None
    raw = _read_yaml(run)
    return apply_overrides(raw, resolved_overrides(run, raw))


def _read_yaml(run: Path) -> dict[str, Any]:
    try:
        raw = load_yaml(RunFolder(run).config.read_text(encoding="utf-8"), str(RunFolder(run).config)) or {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{run / 'config.yaml'}: cannot be read ({e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{run / 'config.yaml'}: expected a mapping, got {type(raw).__name__}")
    return raw
