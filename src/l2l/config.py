"""Typed configs: dataclasses ⇄ YAML, with dotted command-line overrides.

    cfg = load_config(TrainConfig, "configs/synthref_supervised.yaml", ["optim.lr=1e-4", "data.label_fraction=5%"])

Unknown keys are errors (naming the key and the file), values are parsed as YAML scalars,
and nested dataclasses and tuples are rebuilt from their type hints.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from .errors import MissingFileError, UsageError

T = TypeVar("T")


class ConfigError(UsageError):
    """A config file or override is invalid; the message names the key."""


MAX_YAML_BYTES = 1 << 20  # a config, a grid: kilobytes; anything above is not one
MAX_YAML_VALUES = 100_000  # values after expanding aliases (a few hundred in a real config)


def load_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` with limits: at most :data:`MAX_YAML_BYTES`, and at most
    :data:`MAX_YAML_VALUES` values once aliases are expanded (a few nested aliases in 500 bytes can
    stand for billions of values: the "billion laughs"); a :class:`ConfigError` naming ``where``."""
    if len(text.encode("utf-8", "replace")) > MAX_YAML_BYTES:
        raise ConfigError(f"{where}: {len(text) / 2**20:.1f} MB is too large for a config (limit 1 MB)")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({e})") from None
    budget = [MAX_YAML_VALUES]

    def walk(x: Any) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise ConfigError(
                f"{where}: expands to more than {MAX_YAML_VALUES:,} values (nested aliases?); "
                "a config is refused beyond that"
            )
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(data)
    return data


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from a nested dict, recursively and strictly."""
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join((where + '.' if where else '') + k for k in unknown)}; "
            f"{cls.__name__} has {sorted(names)}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for k, v in data.items():
        tp = hints[k]
        origin = typing.get_origin(tp)
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        target: Any = (
            tp if dataclasses.is_dataclass(tp) else (args[0] if origin is typing.Union and len(args) == 1 else None)
        )
        section = fields[k].metadata.get("section")  # a registered section (l2l.schema.section): its class
        if section is not None:
            target = section()
        name = f"{where}.{k}" if where else k
        if target is not None and dataclasses.is_dataclass(target) and isinstance(v, dict):
            kwargs[k] = from_dict(typing.cast(type, target), v, name)
        elif target is not None and dataclasses.is_dataclass(target) and v is not None:
            raise ConfigError(f"{name}: a section (key: value pairs), got {type(v).__name__} {v!r}"[:200])
        elif origin is tuple and isinstance(v, list):
            kwargs[k] = tuple(v)
        elif origin in (tuple, list) and v is not None and not isinstance(v, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {type(v).__name__} {v!r}"[:200])
        elif origin is dict and v is not None and not isinstance(v, dict):
            raise ConfigError(f"{name}: expected a mapping, got {type(v).__name__} {v!r}"[:200])
        else:
            kwargs[k] = _coerce(v, tp, f"{where}.{k}" if where else k)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


def _coerce(v: Any, tp: Any, key: str) -> Any:
    """Scalars by their type hint: '1e-3' → 1e-3 for a float (YAML 1.1 reads it as a string)."""
    args = typing.get_args(tp)
    if v is None and type(None) in args:
        return None
    scalar = tp if tp in (int, float, bool, str) else next((a for a in args if a in (int, float, str)), None)
    if scalar is bool and not isinstance(v, bool):
        words = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
        if isinstance(v, str) and v.strip().lower() in words:
            return words[v.strip().lower()]
        raise ConfigError(f"{key}: expected true or false, got {v!r}")
    if scalar in (int, float) and isinstance(v, bool):
        raise ConfigError(f"{key}: expected {'an integer' if scalar is int else 'a number'}, got {v!r}")
    if scalar is float and isinstance(v, (int, str)) and not isinstance(v, bool):
        try:
            return float(v)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {v!r}") from None
    if scalar is int and isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {v!r}") from None
    if scalar is int and isinstance(v, float):
        if not v.is_integer():
            raise ConfigError(f"{key}: expected an integer, got {v!r}")
        return int(v)
    if scalar is str and isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)  # int | None; not list[int]
    plain = scalar is not None and (tp is scalar or (union and set(args) <= {scalar, type(None), int, float}))
    if plain and isinstance(v, (dict, list)):  # `data.size=[1, 2]`, a section where a number belongs
        raise ConfigError(f"{key}: expected {getattr(scalar, '__name__', scalar)}, got {type(v).__name__} {v!r}"[:200])
    return v


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain YAML-able data (tuples become lists)."""

    def conv(x):
        if dataclasses.is_dataclass(x):
            return {f.name: conv(getattr(x, f.name)) for f in dataclasses.fields(x)}
        if isinstance(x, (list, tuple)):
            return [conv(v) for v in x]
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        return x

    return conv(obj)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        key, _, raw = item.partition("=")
        try:
            value = load_yaml(raw, f"override {key}")
        except ConfigError as e:
            if "not valid YAML" not in str(e):
                raise
            value = raw
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p} is not a section")
        node[parts[-1]] = value
    return data


def shipped_config(path: str | Path) -> Path:
    """``path`` when it exists; else the config of that name shipped inside the package
    (``configs/x.yaml`` or ``x.yaml`` → ``l2l/configs/x.yaml``), so that an installed ``l2l`` finds
    its configs from any working directory; else a MissingFileError naming both places."""
    path = Path(path)
    if path.exists():
        return path
    rel = path.parts[1:] if path.parts and path.parts[0] == "configs" else path.parts
    packaged = Path(__file__).resolve().parent / "configs" / Path(*rel) if rel else None
    if packaged is not None and not path.is_absolute() and packaged.exists():
        return packaged
    raise MissingFileError(
        f"config file not found: {path} (nor among the configs shipped with l2l: "
        f"{Path(__file__).resolve().parent / 'configs'})"
    )


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Defaults of ``cls`` ← YAML file (a path, or a config shipped with l2l) ← overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = shipped_config(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot be read as a text file ({e})") from None
        data = load_yaml(text, str(path)) or {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path}: a config is a mapping of keys to values, this file holds a {type(data).__name__}"
            )
    base = to_dict(cls())
    merged = _merge(base, data)
    merged = apply_overrides(merged, overrides)
    if overrides:
        load_yaml(yaml.safe_dump(merged), "the overrides")  # the same limits as a file
    try:
        return from_dict(cls, merged)
    except ConfigError as e:
        raise ConfigError(f"{path or 'config'}: {e}") from None


def legacy_overrides(path: str | Path, table: dict[str, tuple[str, tuple[str, ...] | None]]) -> list[str]:
    """``key=value`` overrides for the keys of ``table`` that the config file ``path`` lacks.

    A run folder's config.yaml holds every key of the version that wrote it, so a missing key came
    later; ``table`` gives, per key, the value that reproduces the earlier behaviour and the methods
    (``method`` or ``semi.selector`` of the file) it applies to (None: all)."""
    data = load_yaml(Path(path).read_text(encoding="utf-8"), str(path)) or {}
    if not isinstance(data, dict):
        return []
    semi = data.get("semi")
    names = {data.get("method"), semi.get("selector") if isinstance(semi, dict) else None}
    out = []
    for key, (value, methods) in table.items():
        if methods is not None and not names & set(methods):
            continue
        node: Any = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf not in node:
            out.append(f"{key}={value}")
    return out


def _merge(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in new.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def dump_config(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


# config keys that do not change what a run computes: a run made with other values is the same run
IDENTITY_IGNORED = ("max_steps", "data.workers", "device", "threads")


def _drop(d: dict[str, Any], key: str) -> None:
    *head, last = key.split(".")
    for part in head:
        d = d.get(part, {})
    if isinstance(d, dict):
        d.pop(last, None)


def config_identity(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """The config without the keys that do not change results (``IDENTITY_IGNORED``)."""
    import copy

    out = copy.deepcopy(cfg_dict)
    for k in IDENTITY_IGNORED:
        _drop(out, k)
    return out


def config_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += config_diff(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: {a!r} ≠ {b!r}"]
