"""The typed config of the CRIS target model (``model.cris``; the model itself: :mod:`l2l.models.cris`).

Kept apart so that :class:`~l2l.models.segmenter.ModelConfig` can hold it without importing the model."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UsageError


@dataclass
class CRISConfig:
    clip: str = "builtin:synthpool-clip"  # the dual encoder CRIS starts from: a stand-in folder or a real CLIP folder
    pretrained: bool = True  # false: the towers built from ``towers`` with random weights (saved models, tests)
    towers: dict = field(default_factory=dict)  # not pretrained: {"kind": "stand-in"|"clip", "config": {...}}
    tokenizer: str | None = None  # real CLIP, not pretrained: a local tokenizer folder
    init_from: str | None = None  # provenance only: the folder a saved model's towers came from
    neck_dim: int = 128  # CRIS: 512 [ours: smaller for CPU]
    dim: int = 128  # the decoder's width (CRIS: 512)
    layers: int = 3  # decoder layers n (CRIS: 3)
    heads: int = 4  # CRIS: 8
    ffn: int = 256  # CRIS: 2048
    dropout: float = 0.1  # CRIS: 0.1
    proj_dim: int = 64  # D of z_v and z_t (CRIS: 256)
    kernel: int = 3  # K of the text kernel (CRIS: 3)
    fuse_stride: int = 16  # where the neck and the decoder work (CRIS: 16); 8 [ours] for small inputs

    def __post_init__(self) -> None:
        for name in ("neck_dim", "dim", "layers", "heads", "ffn", "proj_dim", "kernel"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"model.cris.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.dim % self.heads:
            raise UsageError(f"model.cris.dim ({self.dim}) must be a multiple of model.cris.heads ({self.heads})")
        if self.kernel % 2 == 0:
            raise UsageError(f"model.cris.kernel must be odd (a centred K×K kernel), got {self.kernel}")
        if self.fuse_stride not in (8, 16):
            raise UsageError(f"model.cris.fuse_stride must be 8 or 16, got {self.fuse_stride}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise UsageError(f"model.cris.dropout must lie in [0, 1), got {self.dropout}")
