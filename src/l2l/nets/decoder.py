"""A light LAVT-style decoder: fuse stages top-down with 3×3 convs, 2-class logits at 1/4
(``out_channels`` other than 2: the dense heads of visual pretraining, ``l2l.pretrain.visual``)."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.GroupNorm(8 if cout % 8 == 0 else 1, cout),
        nn.ReLU(inplace=True),
    )


class Decoder(nn.Module):
    def __init__(self, channels: Sequence[int], dim: int = 128, out_channels: int = 2):
        super().__init__()
        c1, c2, c3, c4 = channels
        self.fuse3 = nn.Sequential(_conv(c4 + c3, dim), _conv(dim, dim))
        self.fuse2 = nn.Sequential(_conv(dim + c2, dim), _conv(dim, dim))
        self.fuse1 = nn.Sequential(_conv(dim + c1, dim), _conv(dim, dim))
        self.head = nn.Conv2d(dim, out_channels, 1)

    def forward(
        self,
        feats: Sequence[torch.Tensor],
        out_size: tuple[int, int],
        at_stride8: Callable[[torch.Tensor], torch.Tensor] | None = None,
        head: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``at_stride8``: a map applied to the decoder's stride-8 features (B, dim, H/8, W/8) before they
        meet stage 1 (the segmenter's scene block with ``scene.position: decoder``). ``head``: replaces the
        1×1 head, called with the stride-8 and stride-4 maps (the segmenter's query head)."""
        s1, s2, s3, s4 = feats
        up = lambda x, ref: F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)  # noqa: E731
        x = self.fuse3(torch.cat([up(s4, s3), s3], 1))
        x = self.fuse2(torch.cat([up(x, s2), s2], 1))
        if at_stride8 is not None:
            x = at_stride8(x)
        x8 = x
        x = self.fuse1(torch.cat([up(x, s1), s1], 1))
        if head is not None:  # another head on (stride-8 map, stride-4 map): the segmenter's query head
            return head(x8, x)
        return F.interpolate(self.head(x), size=out_size, mode="bilinear", align_corners=False)
