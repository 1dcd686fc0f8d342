"""The targets of ``l2l pretrain``: which training config and which pretrain function
make each foundation stand-in, and what it stands for. A new stand-in registers here (the CLI builds its
subcommand from this table); modules load only when their target runs."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class PretrainTarget:
    module: str  # l2l.pretrain.<module>
    config: str  # its training config class
    function: str  # its pretrain function: (config, out folder, show_progress=, command=) -> card
    what: str  # what the stand-in stands for (the CLI's help)

    def load(self) -> tuple[type, Callable[..., dict[str, Any]]]:
        """(training config class, pretrain function)."""
        mod = importlib.import_module(f"{__package__}.{self.module}")
        return getattr(mod, self.config), getattr(mod, self.function)


TARGETS: dict[str, PretrainTarget] = {
    "mask-model": PretrainTarget(
        "mask_model", "MaskTrainConfig", "pretrain_mask_model", "promptable mask model (SAM stand-in)"
    ),
    "dual-encoder": PretrainTarget(
        "dual_encoder", "DualEncoderTrainConfig", "pretrain_dual_encoder", "dual encoder (CLIP stand-in)"
    ),
    "captioner": PretrainTarget(
        "captioner", "CaptionerTrainConfig", "pretrain_captioner", "captioner (CoCa / BLIP stand-in)"
    ),
    "grounder": PretrainTarget("grounder", "GrounderTrainConfig", "pretrain_grounder", "grounder (MLLM stand-in)"),
}
