"""The image–text dual encoder: our stand-in for CLIP (``l2l pretrain dual-encoder``).

``encode_image`` and ``encode_text`` map into one unit-normalised space; a learned temperature
(``logit_scale``) turns cosine similarities into logits, as CLIP's does. Trained
contrastively (CLIP's symmetric InfoNCE; captions that are equal strings count as positives of
each other) on pool object crops and whole pool scenes, paired with *generic captions* ("a
photo of a small red striped ring", "5 shapes, among them a red star, …") from
:mod:`l2l.foundation.language` — never with SynthRef's referring templates.

Towers: image — the pool-pretrained conv encoder (``builtin:synthpool-conv`` initialises it) at
``crop_size`` px, globally pooled, projected; text — frozen MiniLM-L6 (real pretrained
weights), mean-pooled over tokens (and, with ``model.text_queries``, pooled by learned attention
queries too), then a trained two-layer projection.

With ``model.regions`` it also embeds an object's box *in its scene* (``encode_regions``;
:mod:`l2l.foundation.region_context`), trained on pool scenes with sentences of the shifted dialect:
``builtin:synthpool-clip-regions``. Without, ``encode_regions`` embeds the boxes' crops.

The real path: :class:`ClipDualEncoder` — ``transformers.CLIPModel`` and its tokenizer from a
local folder, same methods. The training (losses, pool data, retrieval metrics): :mod:`l2l.pretrain.dual_encoder`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import normalize
from ..errors import MissingFileError
from ..nets.backbones import ConvEncoder
from .common import ModelConfigBase, TextStandIn, image_batch
from .region_context import RegionContext

FORMAT = "l2l-dual-encoder/1"


@dataclass
class DualEncoderConfig(ModelConfigBase):
    crop_size: int = 64
    conv_channels: tuple[int, int, int, int] = (32, 64, 128, 192)
    embed_dim: int = 128
    text_dim: int = 384
    init: str | None = "builtin:synthpool-conv"
    # regions: also embed a box *in its scene* (encode_regions; l2l.foundation.region_context)
    regions: bool = False
    scene_size: int = 128  # regions: the scene's side for the context features
    context_dim: int = 96  # regions: channels of the pooled context map
    fuse_dim: int = 256  # regions: width of the fusing MLP
    text_queries: int = 0  # > 0: the sentence is also pooled by this many learned attention queries over its words


class DualEncoderNet(nn.Module):
    def __init__(self, cfg: DualEncoderConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.conv_channels
        self.encoder = ConvEncoder(c)
        self.image_proj = nn.Sequential(
            nn.Linear(c[2] + c[3], cfg.embed_dim), nn.GELU(), nn.Linear(cfg.embed_dim, cfg.embed_dim)
        )
        self.text_proj = nn.Sequential(
            nn.Linear(cfg.text_dim * (1 + cfg.text_queries), cfg.embed_dim),
            nn.GELU(),
            nn.Linear(cfg.embed_dim, cfg.embed_dim),
        )
        if cfg.text_queries:
            self.text_query = nn.Parameter(torch.randn(cfg.text_queries, cfg.text_dim) * 0.02)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        if cfg.regions:
            self.context = RegionContext(c, c[2] + c[3], cfg.context_dim, cfg.fuse_dim, cfg.embed_dim)

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        """Globally pooled 1/16 and 1/32 stage features of images B×3×S×S in [0, 1]."""
        f = self.encoder(normalize(images))
        return torch.cat([f[2].mean((2, 3)), f[3].mean((2, 3))], 1)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(self.pooled(images)), dim=-1)

    def dense_features(self, images: torch.Tensor) -> torch.Tensor:
        """Unit embeddings B×h×w×D per 1/16 cell: the projection that follows the global pooling applied
        at every cell instead (the 1/32 map upsampled to the 1/16 grid), as MaskCLIP and CLIP Surgery
        read CLIP's patch tokens through its final projection."""
        f = self.encoder(normalize(images))
        f3 = F.interpolate(f[3], size=f[2].shape[-2:], mode="bilinear", align_corners=False)
        x = torch.cat([f[2], f3], 1).permute(0, 2, 3, 1)
        return F.normalize(self.image_proj(x), dim=-1)

    def region_features(
        self, scenes: torch.Tensor, crops: torch.Tensor, boxes: torch.Tensor, owner: torch.Tensor
    ) -> torch.Tensor:
        """Unit embeddings R×D of boxes R×4 (x0, y0, x1, y1 as fractions of the side) in ``scenes``
        B×3×S×S (``owner``: each box's scene), with their crops R×3×c×c."""
        return self.context(self.encoder(normalize(scenes)), self.pooled(crops), boxes, owner)

    def text_features(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.float().unsqueeze(-1)
        pooled = (words * m).sum(1) / m.sum(1).clamp(min=1)
        if self.cfg.text_queries:  # each query's softmax over the words picks its own part of the sentence
            a = (words @ self.text_query.t()).masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).softmax(1)
            pooled = torch.cat([pooled, torch.einsum("blq,bld->bqd", a, words).flatten(1)], 1)
        return F.normalize(self.text_proj(pooled), dim=-1)


class DualEncoder(TextStandIn):
    """The stand-in behind CLIP's interface: ``encode_image``, ``encode_text``, ``logit_scale``."""

    FORMAT = FORMAT
    net: DualEncoderNet

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", text=None) -> "DualEncoder":
        return cls._from_folder(path, lambda m: DualEncoderNet(DualEncoderConfig(**m)), device, text)

    def config(self) -> dict[str, Any]:
        return {"dual_encoder": self.source, "format": FORMAT}

    @property
    def logit_scale(self) -> float:
        return float(self.net.logit_scale.detach().exp())

    @torch.no_grad()
    def encode_image(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Unit vectors N×D of uint8 H×W×3 images (any size: resized to ``crop_size``)."""
        return self.net.image_features(image_batch(images, self.net.cfg.crop_size).to(self.device)).cpu()

    @torch.no_grad()
    def encode_dense(self, images: Sequence[np.ndarray], size: int | None = None) -> torch.Tensor:
        """Unit vectors N×h×w×D per cell of uint8 images resized to ``size`` (default: the scene size,
        else the crop size): :meth:`DualEncoderNet.dense_features`."""
        side = size or int(getattr(self.net.cfg, "scene_size", 0) or self.net.cfg.crop_size)
        return self.net.dense_features(image_batch(images, side).to(self.device)).cpu()

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        words, mask = self.text.encode(list(texts), "cpu")
        return self.net.text_features(words.to(self.device), mask.to(self.device)).cpu()

    @torch.no_grad()
    def encode_regions(self, image: np.ndarray, boxes: Sequence[Sequence[float]]) -> torch.Tensor:
        """Unit vectors N×D of boxes (x0, y0, x1, y1 in the image's pixels) of one uint8 H×W×3 image:
        each box seen in its scene when the encoder was trained with ``regions``
        (:mod:`l2l.foundation.region_context`), else its crop (``crop_box``) through ``encode_image``.
        No boxes: a 0×D tensor."""
        if len(boxes) == 0:
            return torch.zeros(0, self.net.cfg.embed_dim)
        crops = [crop_box(image, b) for b in boxes]
        if not self.net.cfg.regions:
            return self.encode_image(crops)
        h, w = image.shape[:2]
        rel = torch.tensor([[b[0] / w, b[1] / h, b[2] / w, b[3] / h] for b in boxes], dtype=torch.float32)
        scene = image_batch([image], self.net.cfg.scene_size).to(self.device)
        c = image_batch(crops, self.net.cfg.crop_size).to(self.device)
        owner = torch.zeros(len(crops), dtype=torch.long, device=self.device)
        return self.net.region_features(scene, c, rel.to(self.device), owner).cpu()


class ClipDualEncoder:
    """The real model: ``transformers.CLIPModel`` + its tokenizer from a local folder."""

    MEAN = (0.48145466, 0.4578275, 0.40821073)
    STD = (0.26862954, 0.26130258, 0.27577711)

    def __init__(self, model, tokenizer, device: str = "cpu", source: str = "config"):
        self.model, self.tokenizer = model.to(device).eval(), tokenizer
        self.device, self.source = device, source
        self.size = int(model.config.vision_config.image_size)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> "ClipDualEncoder":
        from transformers import AutoTokenizer, CLIPModel

        if not (Path(path) / "config.json").exists():
            raise MissingFileError(f"CLIP: no local Hugging Face folder at {path} (config.json missing)")
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        return cls(CLIPModel.from_pretrained(str(path), local_files_only=True), tok, device, str(path))

    def config(self) -> dict[str, Any]:
        return {"dual_encoder": self.source, "format": "transformers-clip"}

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())

    @staticmethod
    def _features(out) -> torch.Tensor:
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    @torch.no_grad()
    def encode_image(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        x = image_batch(images, self.size)
        mean, std = torch.tensor(self.MEAN).view(1, 3, 1, 1), torch.tensor(self.STD).view(1, 3, 1, 1)
        feats = self._features(self.model.get_image_features(pixel_values=((x - mean) / std).to(self.device)))
        return F.normalize(feats.float(), dim=-1).cpu()

    @torch.no_grad()
    def encode_dense(self, images: Sequence[np.ndarray], size: int | None = None) -> torch.Tensor:
        """Unit vectors N×h×w×D per patch: the vision tower's patch tokens through its final layer norm
        and the visual projection (MaskCLIP's reading of CLIP's dense features). ``size`` is ignored:
        CLIP sees its own input size."""
        x = image_batch(images, self.size)
        mean, std = torch.tensor(self.MEAN).view(1, 3, 1, 1), torch.tensor(self.STD).view(1, 3, 1, 1)
        out = self.model.vision_model(pixel_values=((x - mean) / std).to(self.device))
        tokens = self.model.vision_model.post_layernorm(out.last_hidden_state[:, 1:])
        feats = self.model.visual_projection(tokens)
        side = int(round(feats.shape[1] ** 0.5))
        return F.normalize(feats.float(), dim=-1).view(len(images), side, side, -1).cpu()

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        tok = self.tokenizer(list(texts), padding=True, truncation=True, max_length=77, return_tensors="pt")
        feats = self._features(
            self.model.get_text_features(
                input_ids=tok["input_ids"].to(self.device), attention_mask=tok["attention_mask"].to(self.device)
            )
        )
        return F.normalize(feats.float(), dim=-1).cpu()

    def encode_regions(self, image: np.ndarray, boxes: Sequence[Sequence[float]]) -> torch.Tensor:
        """Unit vectors of boxes (x0, y0, x1, y1 pixels) of one image: CLIP on each box's crop (with
        ``crop_box``'s margin), as Pseudo-RIS and PPT feed it regions. No boxes: a 0×D tensor."""
        if len(boxes) == 0:
            return torch.zeros(0, int(self.model.config.projection_dim))
        return self.encode_image([crop_box(image, b) for b in boxes])


# ---------------------------------------------------------------------------- data and training
def crop_box(image: np.ndarray, box: Sequence[float], margin: float = 0.15) -> np.ndarray:
    """A square crop around a box xyxy with ``margin`` context on each side (zero padding outside)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a, b = int(round(cx - side / 2)), int(round(cy - side / 2))
    n = max(2, int(round(side)))
    h, w = image.shape[:2]
    out = np.zeros((n, n, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(a, 0), max(b, 0), min(a + n, w), min(b + n, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - b : sy1 - b, sx0 - a : sx1 - a] = image[sy0:sy1, sx0:sx1, :3]
    return out
