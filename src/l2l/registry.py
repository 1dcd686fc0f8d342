"""Registries: the names a config or a command line may use, mapped to the code that builds them.

Every entry is a ``"module:attribute"`` string resolved on first use, so that looking a name up
imports only the code of that entry (``l2l.engine`` never imports ``l2l.semi``; the trainer finds
the semi-supervised methods through :data:`METHODS`). Third-party code adds its own::

    from l2l.registry import METHODS
    METHODS.register("my-method", "my_package.methods:MyMethod")   # or the class itself

:data:`METHODS` — training methods (the :class:`l2l.engine.method.Method` protocol); each entry
  is a class with ``from_config(cfg: TrainConfig, name: str)``.
:data:`MODELS` — model families a method trains (``build(cfg.model)``).
:data:`PRIOR_PROVIDERS` — prior providers for ``l2l priors generate`` and ``l2l serve``: each a
  :class:`l2l.priors.providers.ProviderSpec` (a config dataclass and ``build(cfg, dataset)``).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import UsageError

T = TypeVar("T")


class UnknownName(UsageError):
    """A name that no registry entry has; the message lists the names that exist."""


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, str | T] = {}

    def register(self, name: str, target: str | T, replace: bool = False) -> None:
        """Add ``name`` → ``target`` (an object, or ``"module:attribute"`` imported on first use)."""
        if name in self._entries and not replace:
            raise UsageError(f"{self.kind} {name!r} is already registered (pass replace=True to override)")
        if isinstance(target, str) and ":" not in target:
            raise UsageError(f"{self.kind} {name!r}: a lazy target is 'module:attribute', got {target!r}")
        self._entries[name] = target

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise UnknownName(f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}")
        target = self._entries[name]
        if isinstance(target, str):
            module, attr = target.split(":")
            target = getattr(importlib.import_module(module), attr)
            self._entries[name] = target
        return target  # type: ignore[return-value]

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)


def _register_all(registry: Registry[Any], entries: dict[str, str]) -> None:
    for name, target in entries.items():
        registry.register(name, target)


METHODS: Registry[Any] = Registry("method")
_register_all(
    METHODS,
    {
        "supervised": "l2l.semi.methods.supervised:SupervisedMethod",
        "fixmatch": "l2l.semi.methods.fixmatch:FixMatch",
        "prior-fusion": "l2l.semi.methods.prior_fusion:PriorFusion",
        "agreement-filter": "l2l.semi.methods.prior_fusion:PriorFusion",
        "catm": "l2l.semi.methods.prior_fusion:PriorFusion",
        "static-threshold": "l2l.semi.methods.l2l:L2L",
        "l2l": "l2l.semi.methods.l2l:L2L",
    },
)

MODELS: Registry[Callable[..., Any]] = Registry("model")
MODELS.register("segmenter", "l2l.models.segmenter:build_segmenter")

PRIOR_PROVIDERS: Registry[Any] = Registry("prior provider")
_register_all(
    PRIOR_PROVIDERS,
    {
        "simulated": "l2l.priors.providers:SIMULATED",
        "teacher": "l2l.priors.providers:TEACHER",
        "files": "l2l.priors.providers:FILES",
        "mllm-sam2": "l2l.priors.providers:MLLM_SAM2",
        "standin": "l2l.priors.providers:STANDIN",
    },
)

# The sections of a training config that belong to a method family: ``TrainConfig.<name>`` is an
# instance of the registered dataclass (``l2l.schema`` looks it up here, so that it imports no family).
CONFIG_SECTIONS: Registry[Any] = Registry("config section")
CONFIG_SECTIONS.register("semi", "l2l.semi.config:SemiConfig")
