"""The prior providers that ``l2l priors generate --provider NAME`` and ``l2l serve --prior NAME`` build.

Each provider is a :class:`ProviderSpec` registered in :data:`l2l.registry.PRIOR_PROVIDERS`: a
config dataclass (its options, with the defaults) and ``build(cfg, ds)``. The command fills the config
from its shorthand options that share a field's name (``--ckpt``, ``--mask-model``, ``--device``, …) and
then from dotted ``key=value`` overrides, as a training config is filled (``l2l priors generate …
--provider standin grounder=FOLDER``); an unknown key is refused with the config's fields. Adding a
provider (CONTRIBUTING.md): a class with ``generate(inputs) -> records``
(:class:`~l2l.priors.base.PriorProvider`), a config dataclass, a ``ProviderSpec``, and
``PRIOR_PROVIDERS.register(name, "module:SPEC")`` — no edit of the CLI.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..config import ConfigError, apply_overrides, from_dict, to_dict
from ..data.refer import ReferDataset
from ..errors import UsageError
from ..utils.devices import best_device
from .simulated import SimulatedConfig
from .standin import DEFAULT_GROUNDER, DEFAULT_MASK_MODEL


@dataclass(frozen=True)
class ProviderSpec:
    """A provider's options (``config``, a dataclass) and how it is built from them and the dataset."""

    config: type
    build: Callable[[Any, ReferDataset | None], Any]

    def configure(self, values: Mapping[str, Any] | None = None, overrides: Sequence[str] = (), name: str = "") -> Any:
        """The config from ``values`` (options by field name; ``None`` = not given) and dotted overrides."""
        fields = {f.name for f in dataclasses.fields(self.config)}
        given = {k: v for k, v in (values or {}).items() if k in fields and v is not None}
        try:
            return from_dict(self.config, apply_overrides(to_dict(self.config(**given)), list(overrides)))
        except ConfigError as e:
            raise ConfigError(f"--provider {name}: {e}" if name else str(e)) from None


@dataclass
class TeacherConfig:
    ckpt: str | None = None  # a trained l2l run or model folder
    guidance: str = "none"  # none | self
    device: str = "auto"


@dataclass
class FilesConfig:
    folder: str | None = None  # <sample_id>.png / .npy maps
    cues: str | None = None  # optional JSON of cues by sample id


@dataclass
class MLLMSam2Config:
    mllm: str | None = None  # Qwen2.5-VL folder (or a stand-in grounder folder)
    sam2: str | None = None  # SAM2 folder, transformers format (or a stand-in mask-model folder)
    max_new_tokens: int = 64
    device: str = "auto"


@dataclass
class StandinConfig:
    grounder: str = DEFAULT_GROUNDER
    mask_model: str = DEFAULT_MASK_MODEL
    device: str = "auto"


def _simulated(cfg: SimulatedConfig, ds: ReferDataset | None):
    from .simulated import WARNING, SimulatedProvider

    if ds is None:
        raise UsageError("the simulated provider needs a dataset's samples (it reads their masks)")
    print(f"provider: simulated — {WARNING}")
    return SimulatedProvider(ds, cfg)


def _teacher(cfg: TeacherConfig, ds: ReferDataset | None):
    if not cfg.ckpt:
        raise UsageError("--provider teacher needs --ckpt RUN (a trained l2l run or model folder)")
    from .teacher import TeacherProvider

    return TeacherProvider(cfg.ckpt, cfg.guidance, best_device(cfg.device))


def _files(cfg: FilesConfig, ds: ReferDataset | None):
    if not cfg.folder:
        raise UsageError("--provider files needs --folder DIR of <sample_id>.png/.npy maps")
    from .files import FilesProvider

    return FilesProvider(cfg.folder, cfg.cues)


def _mllm_sam2(cfg: MLLMSam2Config, ds: ReferDataset | None):
    if not (cfg.mllm and cfg.sam2):
        raise UsageError("--provider mllm-sam2 needs --mllm QWEN_FOLDER and --sam2 SAM2_FOLDER (local HF folders)")
    from ..foundation.loaders import load_grounder, load_mask_model
    from .mllm_sam2 import MLLMSam2Provider

    dev = best_device(cfg.device)
    return MLLMSam2Provider(
        load_grounder(cfg.mllm, dev, max_new_tokens=cfg.max_new_tokens),  # Qwen2.5-VL or a stand-in folder
        load_mask_model(cfg.sam2, dev),  # SAM2 (a Hugging Face folder) or a stand-in folder
    )


def _standin(cfg: StandinConfig, ds: ReferDataset | None):
    """The learned prior: the pretraining world's grounder → box → mask model (docs/foundation.md)."""
    from .standin import build

    print(f"provider: standin — grounder {cfg.grounder}, mask model {cfg.mask_model} (stand-ins, not an MLLM and SAM2)")
    return build(cfg.grounder, cfg.mask_model, best_device(cfg.device))


SIMULATED = ProviderSpec(SimulatedConfig, _simulated)
TEACHER = ProviderSpec(TeacherConfig, _teacher)
FILES = ProviderSpec(FilesConfig, _files)
MLLM_SAM2 = ProviderSpec(MLLMSam2Config, _mllm_sam2)
STANDIN = ProviderSpec(StandinConfig, _standin)


def build_provider(spec: ProviderSpec, name: str, values: Mapping[str, Any], overrides: Sequence[str], ds):
    """The provider ``name`` with its config from ``values`` and ``overrides`` (:meth:`ProviderSpec.configure`)."""
    if not isinstance(spec, ProviderSpec):
        raise UsageError(f"prior provider {name!r} is registered as {type(spec).__name__}, not a ProviderSpec")
    return spec.build(spec.configure(values, overrides, name), ds)
