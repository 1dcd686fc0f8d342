"""The promptable mask model: our stand-in for SAM / SAM2 (``l2l pretrain mask-model``).

Class-agnostic, as SAM is: an image and prompts (positive / negative points, a box) give a
few soft mask hypotheses with predicted IoU scores. Trained on the *instance masks* of the
pretraining pool (``l2l.data.pool``) only — no SynthRef image, no sentence.

Architecture (SAM's split into a heavy image encoder run once and a light prompt decoder run
per prompt):

* image encoder: the pool-pretrained conv encoder (``builtin:synthpool-conv`` initialises it)
  + a top-down neck → the **image embedding** (``dim`` channels at 1/4 of the input side) and a
  high-resolution skip (1/2). :meth:`MaskPredictor.set_image` computes both once.
* prompt encoder: prompts are drawn as maps at 1/4 — the box's inside, Gaussian blobs at
  positive and at negative points — concatenated with the embedding and coordinate channels.
* mask decoder: dilated convolutions at 1/4 (receptive field over the whole 128-px image), a
  2× up-sampling fused with the skip, ``hypotheses`` mask logits at 1/2 (bilinear to the
  input); an IoU head predicts each hypothesis's IoU.

Training (SAM's recipe, scaled down): prompts simulated from the ground truth — a jittered box,
1–3 positive points, points with negatives, box + points —; the loss is the best hypothesis's
BCE + dice (the others are free to cover other readings of an ambiguous prompt) plus the MSE
of every predicted IoU to its actual IoU.

The real path: :class:`Sam2MaskPredictor` — ``transformers.Sam2Model`` from a local folder
behind the same ``set_image`` / ``predict`` interface. :func:`automatic_masks` is SAM's
automatic mask generator for either: a grid of point prompts, masks kept by predicted IoU and
stability, then mask NMS. The training loop, its pool data and metrics: :mod:`l2l.pretrain.mask_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import normalize
from ..errors import MissingFileError, UsageError
from ..nets.backbones import ConvEncoder
from ..nets.decoder import Decoder
from ..utils.masks import mask_iou
from ..utils.tensors import image_tensor
from .common import ModelConfigBase, load_net

FORMAT = "l2l-mask-model/1"


@dataclass
class MaskModelConfig(ModelConfigBase):
    image_size: int = 128  # square input: the longest side is resized to it, the rest padded
    conv_channels: tuple[int, int, int, int] = (32, 64, 128, 192)
    dim: int = 48
    hypotheses: int = 3
    init: str | None = "builtin:synthpool-conv"  # visual encoder to start from (None: random)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.image_size % 32 or self.hypotheses < 1:
            raise UsageError(f"image_size must be a multiple of 32 and hypotheses ≥ 1, got {self}")


def _block(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=False), nn.GroupNorm(8, cout), nn.GELU()
    )


class PromptableMaskModel(nn.Module):
    """Image encoder (run once per image) + prompt encoder and mask decoder (per prompt)."""

    PROMPT_CHANNELS = 5  # box inside, positive points, negative points, x, y

    def __init__(self, cfg: MaskModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.encoder = ConvEncoder(cfg.conv_channels)
        self.neck = Decoder(self.encoder.channels, d, out_channels=d)
        self.skip = _block(cfg.conv_channels[0], 16)
        self.prompt_in = _block(d + self.PROMPT_CHANNELS, d)
        self.body = nn.Sequential(_block(d, d, 2), _block(d, d, 4), _block(d, d, 8))
        self.up = _block(d + 16 + 1, 16)
        self.mask_head = nn.Conv2d(16, cfg.hypotheses, 1)
        self.iou_head = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, cfg.hypotheses))

    # ---------------------------------------------------------------- image
    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embedding B×dim×S/4×S/4, skip B×16×S/2×S/2) of images B×3×S×S in [0, 1]."""
        x = normalize(images)
        stem = self.encoder.stem(x)
        feats, h = [], stem
        for i in range(4):
            h = self.encoder.stage(i, h)
            feats.append(h)
        s = images.shape[-1] // 4
        return self.neck(feats, (s, s)), self.skip(stem)

    # ---------------------------------------------------------------- prompts
    @staticmethod
    def prompt_maps(
        boxes: torch.Tensor,
        box_valid: torch.Tensor,
        points: torch.Tensor,
        labels: torch.Tensor,
        side: int,
        image_size: int,
    ) -> torch.Tensor:
        """Prompt maps P×5×side×side: box inside (soft edges), positive and negative point blobs,
        x and y coordinates. ``boxes`` P×4 xyxy and ``points`` P×N×2 xy in input pixels;
        ``labels`` P×N (1 positive, 0 negative, -1 padding)."""
        p = boxes.shape[0]
        dev = boxes.device
        c = (torch.arange(side, device=dev, dtype=torch.float32) + 0.5) * (image_size / side)  # cell centres
        xs, ys = c.view(1, 1, side), c.view(1, side, 1)
        soft = image_size / side / 2
        inside = (
            torch.sigmoid((xs - boxes[:, 0, None, None]) / soft)
            * torch.sigmoid((boxes[:, 2, None, None] - xs) / soft)
            * torch.sigmoid((ys - boxes[:, 1, None, None]) / soft)
            * torch.sigmoid((boxes[:, 3, None, None] - ys) / soft)
        ) * box_valid.view(p, 1, 1).float()
        sigma = 1.5 * image_size / side
        d2 = (xs[..., None] - points[:, None, None, :, 0]) ** 2 + (ys[..., None] - points[:, None, None, :, 1]) ** 2
        blob = torch.exp(-d2 / (2 * sigma**2))  # P×side×side×N
        pos = (blob * (labels == 1)[:, None, None, :].float()).amax(-1) if points.shape[1] else inside * 0
        neg = (blob * (labels == 0)[:, None, None, :].float()).amax(-1) if points.shape[1] else inside * 0
        grid_x = (xs / image_size * 2 - 1).expand(p, side, side)
        grid_y = (ys / image_size * 2 - 1).expand(p, side, side)
        return torch.stack([inside, pos, neg, grid_x, grid_y], 1)

    def prompt_base(self, emb: torch.Tensor) -> torch.Tensor:
        """The image's share of the prompt layer's convolution (B×dim×S/4×S/4): that convolution reads
        [embedding, prompt maps] and is linear, so conv([e, m]) = conv_e(e) + conv_m(m). A predictor
        computes this once per image (:meth:`MaskPredictor.set_image`) and every prompt then pays
        only for its 5 map channels: the same result up to float rounding; a quarter of the
        low-resolution decoder's multiply-adds, ≈ 5–10 % of the automatic mode's time (measured)."""
        conv = self._prompt_conv
        return conv._conv_forward(emb, conv.weight[:, : emb.shape[1]], None)

    @property
    def _prompt_conv(self) -> nn.Conv2d:
        conv = self.prompt_in[0]
        assert isinstance(conv, nn.Conv2d)
        return conv

    def decode_iou(
        self,
        emb: torch.Tensor,
        image_index: torch.Tensor,
        boxes: torch.Tensor,
        box_valid: torch.Tensor,
        points: torch.Tensor,
        labels: torch.Tensor,
        base: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The decoder's low-resolution half: (features P×dim×S/4×S/4, prompt maps, predicted IoU P×K).
        The IoU head reads nothing of the mask's full-resolution half, so the automatic mode scores
        every grid point with this alone and decodes masks only where a hypothesis can pass.
        ``base``: :meth:`prompt_base` of ``emb``, when the caller keeps it (inference)."""
        e = emb[image_index]
        maps = self.prompt_maps(boxes, box_valid, points, labels, e.shape[-1], self.cfg.image_size)
        if base is None:
            h = self.body(self.prompt_in(torch.cat([e, maps], 1)))
        else:
            conv = self._prompt_conv
            x = base[image_index] + conv._conv_forward(maps, conv.weight[:, e.shape[1] :], None)
            h = self.body(self.prompt_in[2](self.prompt_in[1](x)))
        iou = self.iou_head(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1))
        return h, maps, iou

    def decode(
        self,
        emb: torch.Tensor,
        skip: torch.Tensor,
        image_index: torch.Tensor,
        boxes: torch.Tensor,
        box_valid: torch.Tensor,
        points: torch.Tensor,
        labels: torch.Tensor,
        base: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits P×K×S×S and predicted IoU P×K for P prompts on images ``image_index``
        (``base`` as in :meth:`decode_iou`)."""
        h, maps, iou = self.decode_iou(emb, image_index, boxes, box_valid, points, labels, base)
        s = self.cfg.image_size
        k = skip[image_index]
        box_half = F.interpolate(maps[:, :1], size=k.shape[-2:], mode="bilinear", align_corners=False)
        up = F.interpolate(h, size=k.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.mask_head(self.up(torch.cat([up, k, box_half], 1)))
        return F.interpolate(logits, size=(s, s), mode="bilinear", align_corners=False), iou


# ---------------------------------------------------------------------------- the predictor interface
class MaskPredictorProtocol(Protocol):
    """SAM2's image-predictor shape: ``set_image`` once, then cheap ``predict`` calls."""

    def set_image(self, image: np.ndarray) -> None: ...

    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        multimask_output: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def config(self) -> dict[str, Any]: ...


def _square(image: np.ndarray, size: int) -> tuple[torch.Tensor, float]:
    """Longest side resized to ``size``, bottom/right zero-padded (SAM's preprocessing): (1×3×S×S, scale)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    x = image_tensor(image[..., :3])[None]
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    return F.pad(x, (0, size - nw, 0, size - nh)), scale


class MaskPredictor:
    """The stand-in behind SAM2's predictor interface. Coordinates are in the original image's pixels."""

    def __init__(self, model: PromptableMaskModel, device: str = "cpu", source: str = "memory"):
        # channels-last convolutions (oneDNN's layout on CPU) [measured: docs/pseudo_ris.md, Speed; the
        # records are unchanged]
        self.model = model.to(device).eval()
        for w in self.model.parameters():
            if w.dim() == 4:
                w.data = w.data.contiguous(memory_format=torch.channels_last)
        self.device, self.source = device, source
        self._emb: tuple[torch.Tensor, torch.Tensor] | None = None
        self._base: torch.Tensor | None = None  # the image's share of the prompt convolution
        self.embeddings_computed = 0  # how many times the image encoder ran (tests check reuse)
        self.split_prompt_conv = True  # False: the prompt convolution on [embedding, maps] per prompt

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> "MaskPredictor":
        model, source = load_net(path, FORMAT, lambda m: PromptableMaskModel(MaskModelConfig(**m)))
        return cls(model, device, source)

    def config(self) -> dict[str, Any]:
        return {"mask_model": self.source, "format": FORMAT, "image_size": self.model.cfg.image_size}

    @torch.no_grad()
    def set_image(self, image: np.ndarray) -> None:
        x, self._scale = _square(image, self.model.cfg.image_size)
        self._hw = image.shape[:2]
        self._emb = self.model.embed(x.to(self.device))
        self._base = self.model.prompt_base(self._emb[0]) if self.split_prompt_conv else None
        self.embeddings_computed += 1

    @torch.no_grad()
    def predict_logits(
        self,
        boxes: Sequence[Sequence[float] | None],
        points: Sequence[np.ndarray | None] = (),
        labels: Sequence[np.ndarray | None] = (),
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched prompts on the current image: logits P×K×H×W (original size) and IoU P×K."""
        emb, skip = self._current()
        B, valid, P, L = self._prompts(boxes, points, labels)
        n = len(boxes)
        logits, iou = self.model.decode(emb, skip, torch.zeros(n, dtype=torch.long), B, valid, P, L, self._base)
        h, w = self._hw
        nh, nw = max(1, round(h * self._scale)), max(1, round(w * self._scale))
        logits = F.interpolate(logits[..., :nh, :nw], size=(h, w), mode="bilinear", align_corners=False)
        return logits.cpu(), iou.clamp(0, 1).cpu()

    @torch.no_grad()
    def predict_iou(
        self,
        boxes: Sequence[Sequence[float] | None],
        points: Sequence[np.ndarray | None] = (),
        labels: Sequence[np.ndarray | None] = (),
    ) -> torch.Tensor:
        """The predicted IoU P×K of each prompt's hypotheses, without decoding the masks (cheap)."""
        emb, _ = self._current()
        B, valid, P, L = self._prompts(boxes, points, labels)
        index = torch.zeros(len(boxes), dtype=torch.long)
        return self.model.decode_iou(emb, index, B, valid, P, L, self._base)[2].clamp(0, 1).cpu()

    def _current(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._emb is None:
            raise UsageError("call set_image(image) before predict")
        return self._emb

    def _prompts(
        self,
        boxes: Sequence[Sequence[float] | None],
        points: Sequence[np.ndarray | None],
        labels: Sequence[np.ndarray | None],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prompt tensors in the model's input pixels: boxes P×4, box validity P, points P×N×2, labels P×N."""
        n = len(boxes)
        pts = [np.zeros((0, 2)) if i >= len(points) or points[i] is None else np.asarray(points[i]) for i in range(n)]
        lab = [np.zeros(0) if i >= len(labels) or labels[i] is None else np.asarray(labels[i]) for i in range(n)]
        m = max((len(p) for p in pts), default=0)
        P = torch.zeros(n, m, 2)
        L = torch.full((n, m), -1, dtype=torch.long)
        for i, (p, q) in enumerate(zip(pts, lab)):
            if len(p) != len(q):
                raise UsageError(f"prompt {i}: {len(p)} points but {len(q)} labels")
            P[i, : len(p)] = torch.as_tensor(p, dtype=torch.float32) * self._scale
            L[i, : len(q)] = torch.as_tensor(q, dtype=torch.long)
        B = torch.tensor([[0, 0, 0, 0] if b is None else list(b) for b in boxes], dtype=torch.float32).view(n, 4)
        B = B * self._scale
        valid = torch.tensor([b is not None for b in boxes])
        return B.to(self.device), valid.to(self.device), P.to(self.device), L.to(self.device)

    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        multimask_output: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """SAM2-style: masks K×H×W (bool) and their predicted IoU (K,); one mask (the best predicted)
        without ``multimask_output``. Points xy (N×2) with labels (1 positive, 0 negative), box xyxy."""
        if point_coords is None and box is None:
            raise UsageError("predict needs point_coords or a box")
        b = None if box is None else [float(v) for v in np.asarray(box, np.float64).reshape(4)]
        logits, iou = self.predict_logits([b], [point_coords], [point_labels])
        logits, iou = logits[0], iou[0]
        if not multimask_output:
            k = int(iou.argmax())
            logits, iou = logits[k : k + 1], iou[k : k + 1]
        return (logits > 0).numpy(), iou.numpy()

    def box_probabilities(self, image: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[tuple[np.ndarray, float]]:
        """(probability map of the best hypothesis, its predicted IoU) per xyxy box on ``image``."""
        if not len(boxes):
            return []
        self.set_image(image)
        logits, iou = self.predict_logits(list(boxes))
        k = iou.argmax(1)
        out = []
        for i in range(len(boxes)):
            out.append((torch.sigmoid(logits[i, k[i]]).numpy().astype(np.float32), float(iou[i, k[i]])))
        return out

    def __call__(self, images: Sequence[np.ndarray], boxes: Sequence[Sequence[float]]):
        """The box-segmenter interface of ``l2l.priors.mllm_sam2`` (one image per box; the embedding of
        consecutive equal images is computed once)."""
        out, last = [], None
        for im, b in zip(images, boxes):
            if last is None or (last is not im and not np.array_equal(last, im)):
                self.set_image(im)
                last = im
            logits, iou = self.predict_logits([b])
            k = int(iou[0].argmax())
            out.append((torch.sigmoid(logits[0, k]).numpy().astype(np.float32), float(iou[0, k])))
        return out


class Sam2MaskPredictor:
    """The real model: ``transformers.Sam2Model`` from a local folder, behind the same interface — the one
    SAM2 adapter: prompts on one image (``set_image`` / ``predict`` / ``predict_logits``: Pseudo-RIS, PPT,
    the labeling page) and boxes on a batch of images (``__call__``: the ``mllm-sam2`` prior). It wraps
    ``Sam2Model`` directly (its image processor needs torchvision, which has no CPU build here): images
    are resized to the model's square input (1024² for SAM2), ImageNet-normalised, and prompts scaled to
    that frame."""

    def __init__(self, model, device: str = "cpu", dtype: torch.dtype = torch.float32, source: str = "config"):
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device, self.dtype, self.source = device, dtype, source
        vc = model.config.vision_config
        size: Any = getattr(vc, "image_size", None) or getattr(getattr(vc, "backbone_config", None), "image_size", 1024)
        self.size = int(size[0] if isinstance(size, (list, tuple)) else size)
        self._emb = None
        self.embeddings_computed = 0

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str = "cpu", dtype: torch.dtype | None = None
    ) -> "Sam2MaskPredictor":
        """From a local Hugging Face folder; ``dtype`` defaults to bfloat16 on CUDA, else float32."""
        from transformers import Sam2Model

        if not (Path(path) / "config.json").exists():
            raise MissingFileError(f"SAM2: no local Hugging Face folder at {path} (config.json missing)")
        dtype = dtype or (torch.bfloat16 if str(device).startswith("cuda") else torch.float32)
        return cls(Sam2Model.from_pretrained(str(path), local_files_only=True), device, dtype, str(path))

    def config(self) -> dict[str, Any]:
        return {
            "mask_model": self.source,
            "format": "transformers-sam2",
            "image_size": self.size,
            "dtype": str(self.dtype),
        }

    @torch.no_grad()
    def set_image(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        x = image_tensor(image[..., :3])[None]
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        self._emb = self.model.get_image_embeddings(normalize(x).to(self.device, self.dtype))
        self._hw = (h, w)
        self.embeddings_computed += 1

    def _prompts(self, point_coords: Any, point_labels: Any, box: Any) -> dict[str, Any]:
        h, w = self._hw
        sx, sy = self.size / w, self.size / h
        kw: dict[str, Any] = {}
        if point_coords is not None:
            pts = np.asarray(point_coords, np.float32) * [sx, sy]
            kw["input_points"] = torch.tensor(pts)[None, None].to(self.device, self.dtype)
            kw["input_labels"] = torch.as_tensor(np.asarray(point_labels), dtype=torch.long)[None, None].to(self.device)
        if box is not None:
            b = np.asarray(box, np.float32) * [sx, sy, sx, sy]
            kw["input_boxes"] = torch.tensor(b)[None, None].to(self.device, self.dtype)
        return kw

    @torch.no_grad()
    def __call__(
        self, images: Sequence[np.ndarray], boxes: Sequence[tuple[float, float, float, float]]
    ) -> list[tuple[np.ndarray, float]]:
        """The box-segmenter interface of ``l2l.priors.mllm_sam2``, batched: (probability map at the
        image's size, SAM2's predicted IoU) per (image, box in image pixels), one mask per box."""
        s = self.size
        x = torch.stack(
            [
                F.interpolate(
                    image_tensor(im)[None], size=(s, s), mode="bilinear", align_corners=False, antialias=True
                )[0]
                for im in images
            ]
        )
        b = torch.tensor(
            [
                [[x0 * s / im.shape[1], y0 * s / im.shape[0], x1 * s / im.shape[1], y1 * s / im.shape[0]]]
                for im, (x0, y0, x1, y1) in zip(images, boxes)
            ],
            dtype=torch.float32,
        )
        out = self.model(
            pixel_values=normalize(x).to(self.device, self.dtype),
            input_boxes=b.to(self.device, self.dtype),
            multimask_output=False,
        )
        res = []
        for im, logits, iou in zip(images, out.pred_masks[:, 0, 0], out.iou_scores[:, 0, 0]):
            p = torch.sigmoid(
                F.interpolate(logits[None, None].float(), size=im.shape[:2], mode="bilinear", align_corners=False)
            )[0, 0]
            res.append((p.cpu().numpy().astype(np.float32), float(iou)))
        return res

    @torch.no_grad()
    def predict_logits(
        self,
        boxes: Sequence[Sequence[float] | None],
        points: Sequence[np.ndarray | None] = (),
        labels: Sequence[np.ndarray | None] = (),
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`MaskPredictor.predict_logits` (one prompt at a time): logits P×K×H×W, IoU P×K."""
        if self._emb is None:
            raise UsageError("call set_image(image) before predict")
        h, w = self._hw
        outs, ious = [], []
        for i, b in enumerate(boxes):
            p = points[i] if i < len(points) else None
            q = labels[i] if i < len(labels) else None
            out = self.model(image_embeddings=self._emb, multimask_output=True, **self._prompts(p, q, b))
            outs.append(
                F.interpolate(out.pred_masks[0, 0][None].float(), size=(h, w), mode="bilinear", align_corners=False)[0]
            )
            ious.append(out.iou_scores[0, 0].float())
        return torch.stack(outs).cpu(), torch.stack(ious).clamp(0, 1).cpu()

    @torch.no_grad()
    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        multimask_output: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        if self._emb is None:
            raise UsageError("call set_image(image) before predict")
        h, w = self._hw
        out = self.model(
            image_embeddings=self._emb,
            multimask_output=multimask_output,
            **self._prompts(point_coords, point_labels, box),
        )
        logits = F.interpolate(out.pred_masks[0, 0][None].float(), size=(h, w), mode="bilinear", align_corners=False)
        return (logits[0] > 0).cpu().numpy(), out.iou_scores[0, 0].float().cpu().numpy()


# ---------------------------------------------------------------------------- automatic mode
def automatic_masks(
    predictor: Any,
    image: np.ndarray,
    points_per_side: int = 12,
    pred_iou_thresh: float = 0.7,
    stability_thresh: float = 0.85,
    nms_thresh: float = 0.7,
    min_area: int = 10,
    batch: int = 64,
) -> list[dict[str, Any]]:
    """SAM's automatic mask generator: one positive point at each cell of a ``points_per_side``²
    grid, every hypothesis kept when its predicted IoU ≥ ``pred_iou_thresh`` and its stability
    (IoU of the masks at logit +1 and −1) ≥ ``stability_thresh``, then greedy mask NMS at
    ``nms_thresh``. Returns SAM-style records (segmentation, area, bbox xywh, predicted_iou,
    stability_score, point_coords), best first. A predictor with ``predict_iou`` (the stand-in)
    scores every point first and decodes masks only for the points with a hypothesis at
    ``pred_iou_thresh`` or above (≈ 1 in 8 on SynthRef): the same masks, ≈ 2× faster. The default
    threshold 0.7 (SAM's is 0.88, for SAM's calibration) is the stand-in's operating point chosen on
    SynthRef val by ``benchmarks/auto_mask_sweep.py``: the fewest masks with recall ≥ 80 %."""
    h, w = image.shape[:2]
    predictor.set_image(image)
    g = (np.arange(points_per_side) + 0.5) / points_per_side
    pts = np.stack(np.meshgrid(g * w, g * h), -1).reshape(-1, 2)
    if hasattr(predictor, "predict_iou"):
        scores = torch.cat(
            [
                predictor.predict_iou([None] * len(c), [p[None] for p in c], [np.ones(1)] * len(c))
                for c in (pts[a : a + 4 * batch] for a in range(0, len(pts), 4 * batch))
            ]
        )
        pts = pts[(scores.amax(1) >= pred_iou_thresh).numpy()]
    cands: list[tuple[float, float, np.ndarray, np.ndarray]] = []
    for a in range(0, len(pts), batch):
        chunk = pts[a : a + batch]
        logits, iou = predictor.predict_logits([None] * len(chunk), [p[None] for p in chunk], [np.ones(1)] * len(chunk))
        hi, lo = logits > 1.0, logits > -1.0
        stab = (hi.flatten(2).sum(-1).float() / lo.flatten(2).sum(-1).clamp(min=1).float()).numpy()
        for i in range(len(chunk)):
            for k in range(logits.shape[1]):
                m = (logits[i, k] > 0).numpy()
                if iou[i, k] >= pred_iou_thresh and stab[i, k] >= stability_thresh and m.sum() >= min_area:
                    cands.append((float(iou[i, k]), float(stab[i, k]), m, chunk[i]))
    cands.sort(key=lambda c: -c[0] * c[1])
    kept: list[tuple[float, float, np.ndarray, np.ndarray]] = []
    for c in cands:
        if all(mask_iou(c[2], k[2]) < nms_thresh for k in kept):
            kept.append(c)
    out = []
    for iou_, stab_, m, p in kept:
        ys, xs = np.nonzero(m)
        out.append(
            {
                "segmentation": m,
                "area": int(m.sum()),
                "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)],
                "predicted_iou": iou_,
                "stability_score": stab_,
                "point_coords": [p.tolist()],
            }
        )
    return out
