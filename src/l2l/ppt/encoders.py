"""The frozen parts of PPT (§3.1.1): the image and text encoders (CLIP, or its stand-in) and the
mask decoder (SAM, or its stand-in), behind two small adapters the point generator trains through.

* :class:`FrozenDualEncoder` — ``dense(images)``: visual features {V_n} at the encoder's stages
  (B×C_n×h_n×w_n); ``words(texts)``: word-level text features T (B×L×D) and their mask;
  ``response(images, texts)``: the dense image–text similarity map the naive "CLIP + SAM" baseline
  prompts with (MaskCLIP-style: the image projection applied at every location).
  Stand-in: the dual encoder's conv stages and frozen MiniLM word features. Real: CLIP's vision
  transformer hidden states at evenly spaced layers (patch tokens as a grid) and its text
  transformer's last hidden state.
* :class:`FrozenMaskDecoder` — ``embed(images)`` once per batch, then ``decode(state, index,
  points, labels)``: one mask-logit map per prompt, **differentiable in the point coordinates**
  (labels are hard, as SAM's are: a learned embedding per label). Stand-in: the promptable mask
  model (best hypothesis by predicted IoU). Real: ``transformers.Sam2Model`` (single-mask output).

Both are frozen: ``requires_grad`` off, eval mode, never in an optimizer.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..data.augment import normalize


def _freeze(module: torch.nn.Module) -> None:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)


class FrozenDualEncoder:
    """Dense visual stages and word features of the dual encoder (module docstring)."""

    def __init__(self, enc: Any):
        from ..foundation.dual_encoder import ClipDualEncoder

        self.enc = enc
        self.real = isinstance(enc, ClipDualEncoder)
        if self.real:
            _freeze(enc.model)
            vc = enc.model.config.vision_config
            n = int(vc.num_hidden_layers)
            self.layers = sorted({max(1, round(n * (i + 1) / 4)) for i in range(4)})
            self.channels = [int(vc.hidden_size)] * len(self.layers)
            self.word_dim = int(enc.model.config.text_config.hidden_size)
        else:
            _freeze(enc.net)
            c = list(enc.net.cfg.conv_channels)
            self.channels = c
            self.word_dim = int(enc.net.cfg.text_dim)

    @classmethod
    def load(cls, path: str, device: str = "cpu") -> "FrozenDualEncoder":
        from ..foundation.loaders import load_dual_encoder

        return cls(load_dual_encoder(path, device))

    def config(self) -> dict[str, Any]:
        return self.enc.config()

    def prefill(self, texts: Sequence[str]) -> None:
        """Encode every sentence a run will see, once, in a fixed order (the stand-in caches frozen word
        features: filled in the order batches arrive, a sentence's features would depend on which
        sentences shared its first batch, and a resumed run would drift from an uninterrupted one)."""
        if not self.real:
            self.enc.text.precompute(sorted(set(texts)))

    @torch.no_grad()
    def dense(self, images: torch.Tensor) -> list[torch.Tensor]:
        """{V_n}: one B×C_n×h_n×w_n map per stage of images B×3×S×S in [0, 1]."""
        if not self.real:
            return list(self.enc.net.encoder(normalize(images)))
        m = self.enc.model
        size = self.enc.size
        x = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        mean = torch.tensor(self.enc.MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.enc.STD, device=x.device).view(1, 3, 1, 1)
        out = m.vision_model(pixel_values=(x - mean) / std, output_hidden_states=True)
        g = size // int(m.config.vision_config.patch_size)
        feats = []
        for layer in self.layers:
            h = out.hidden_states[layer][:, 1:]  # patch tokens
            feats.append(h.transpose(1, 2).reshape(h.shape[0], h.shape[2], g, g))
        return feats

    @torch.no_grad()
    def words(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """T: word features B×L×D and their mask B×L (True = a word)."""
        if not self.real:
            w, mask = self.enc.text.encode(list(texts), "cpu")
            return w.float(), mask.bool()
        tok = self.enc.tokenizer(list(texts), padding=True, truncation=True, max_length=77, return_tensors="pt")
        out = self.enc.model.text_model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        return out.last_hidden_state.float(), tok["attention_mask"].bool()

    @torch.no_grad()
    def response(self, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """Dense cosine map B×h×w between each location's projected feature and the text embedding."""
        t = self.enc.encode_text(list(texts)).to(images.device)  # B×E, unit
        if self.real:
            m = self.enc.model
            feats = self.dense(images)[-1]  # B×C×g×g
            tokens = m.vision_model.post_layernorm(feats.flatten(2).transpose(1, 2))
            v = F.normalize(m.visual_projection(tokens), dim=-1)
            g = feats.shape[-1]
            return torch.einsum("bnd,bd->bn", v, t).view(-1, g, g)
        net = self.enc.net
        f = net.encoder(normalize(images))
        a, b = f[2], F.interpolate(f[3], size=f[2].shape[-2:], mode="bilinear", align_corners=False)
        v = F.normalize(net.image_proj(torch.cat([a, b], 1).permute(0, 2, 3, 1)), dim=-1)  # B×h×w×E
        return torch.einsum("bhwd,bd->bhw", v, t)


class FrozenMaskDecoder:
    """The mask model as PPT's decoder: a batch embedding, then differentiable point-prompt decoding."""

    def __init__(self, pred: Any, image_size: int):
        from ..foundation.mask_model import Sam2MaskPredictor

        self.pred = pred
        self.real = isinstance(pred, Sam2MaskPredictor)
        self.image_size = image_size
        _freeze(pred.model)

    @classmethod
    def load(cls, path: str, image_size: int, device: str = "cpu") -> "FrozenMaskDecoder":
        from ..foundation.loaders import load_mask_model

        return cls(load_mask_model(path, device), image_size)

    def config(self) -> dict[str, Any]:
        return self.pred.config()

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> Any:
        """The image embedding of a batch B×3×S×S in [0, 1] (S = ``image_size``)."""
        if self.real:
            size = self.pred.size
            x = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
            return self.pred.model.get_image_embeddings(normalize(x))
        size = self.pred.model.cfg.image_size
        x = (
            images
            if images.shape[-1] == size
            else F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        )
        return self.pred.model.embed(x)

    def decode(self, state: Any, index: torch.Tensor, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mask logits P×S×S for P prompts: ``points`` P×M×2 normalised xy in [0, 1] (gradients flow to
        them), ``labels`` P×M (1 positive, 0 negative) on images ``index`` of the embedded batch."""
        s = self.image_size
        if self.real:
            size = self.pred.size
            emb = [e[index] for e in state]
            out = self.pred.model(
                image_embeddings=emb,
                input_points=(points * size)[:, None],
                input_labels=labels.long()[:, None],
                multimask_output=False,
            )
            logits = out.pred_masks[:, 0, :1].float()
            return F.interpolate(logits, size=(s, s), mode="bilinear", align_corners=False)[:, 0]
        model = self.pred.model
        size = model.cfg.image_size
        emb, skip = state
        n = points.shape[0]
        boxes = torch.zeros(n, 4, device=points.device)
        logits, iou = model.decode(
            emb,
            skip,
            index,
            boxes,
            torch.zeros(n, dtype=torch.bool, device=points.device),
            points * size,
            labels.long(),
        )
        best = logits[torch.arange(n), iou.detach().argmax(1)]
        return (
            best if size == s else F.interpolate(best[:, None], size=(s, s), mode="bilinear", align_corners=False)[:, 0]
        )
