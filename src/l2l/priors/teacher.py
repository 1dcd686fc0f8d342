"""``teacher`` — soft masks from a trained l2l checkpoint (App. B.4: L2L also works with
non-MLLM teachers such as CARIS or CGFormer). The teacher runs at its training resolution and
its foreground probability is resized back to each image's size."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..models.segmenter import Segmenter
from ..utils.io import sha256_file
from ..utils.masks import mask_box
from ..utils.run_folder import RunFolder
from ..utils.tensors import image_tensor
from .base import PriorInput, PriorRecord, config_hash


class TeacherProvider:
    name = "teacher"

    def __init__(self, ckpt: str | Path, guidance: str = "none", device: str = "cpu"):
        self.model = Segmenter.from_pretrained(ckpt, device)
        self.ckpt, self.guidance, self.device = Path(ckpt), guidance, device
        folder = RunFolder.saved_model(self.ckpt)
        assert folder is not None  # from_pretrained found it
        self.weights_sha = sha256_file(folder / "model.safetensors")[:16]

    def config(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "checkpoint": str(self.ckpt.resolve()),
            "weights_sha256": self.weights_sha,
            "guidance": self.guidance,
        }

    @torch.no_grad()
    def __call__(self, batch: Sequence[PriorInput]) -> list[PriorRecord]:
        s = self.model.cfg.image_size
        x = torch.stack(
            [
                F.interpolate(
                    image_tensor(b.image)[None],
                    size=(s, s),
                    mode="bilinear",
                    align_corners=False,
                    antialias=True,
                )[0]
                for b in batch
            ]
        )
        prob = self.model.predict(x.to(self.device), [b.sentence for b in batch], self.guidance)
        out = []
        h_cfg = config_hash(self.config())
        for b, p in zip(batch, prob):
            h, w = b.image.shape[:2]
            up = F.interpolate(p[None, None].float().cpu(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
            pm = up.clamp(0, 1).numpy().astype(np.float32)
            fg = pm >= 0.5
            conf = float(np.abs(2 * pm[fg] - 1).mean()) if fg.any() else 0.0
            box = mask_box(fg, "xywh") if fg.any() else None
            out.append(
                PriorRecord(
                    b.sample_id,
                    pm,
                    {"box": box} if box else {},
                    conf,
                    {"provider": self.name, "checkpoint": str(self.ckpt), "config_hash": h_cfg},
                )
            )
        return out
