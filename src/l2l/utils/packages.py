"""Locating model files that PyPI packages ship (no download, ever)."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import MissingFileError


def require_package(module: str, pip_name: str, what: str) -> ModuleType:
    """Import ``module`` or raise FileNotFoundError telling how to get ``what``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingFileError(
            f"{what}: the {pip_name} package is not installed (scripts/setup.sh installs it); or pass a local path"
        ) from e
