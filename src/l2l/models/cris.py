"""CRIS (Wang et al., CVPR 2022), the target model Pseudo-RIS trains "without modifications" (issue 34).

CRIS carries CLIP's image–text alignment down to pixels. Its parts, as the CRIS paper describes them
(§3.1–3.4), on the dual-encoder interface (the stand-in CLIP, or a real CLIP folder):

* **Encoders.** Image: the dual encoder's image tower, three scales F_v2, F_v3, F_v4 (strides 8, 16, 32).
  Text: word features F_t (L×C) and the sentence feature F_s (CLIP's [EOS] state through its projection).
  Stand-in: the conv tower's stages 2–4; the frozen MiniLM-L6 words and the dual encoder's trained text
  projection of their mean for F_s. Real CLIP (``transformers.CLIPModel``, a ViT): patch tokens of three
  evenly spaced layers as a grid, resampled to strides 8 / 16 / 32 (ViTDet's simple pyramid [ours: the
  CRIS paper's towers are ResNets, and Hugging Face holds ViT CLIPs]); the text transformer's last hidden
  state and its projected pooled state.
* **Cross-modal neck** (§3.2): ``F_m4 = Up(σ(F_v4 W_v4) ⊙ σ(F_s W_s))``,
  ``F_m3 = [σ(F_m4 W_m4), σ(F_v3 W_v3)]``, ``F_m2 = [σ(F_m3 W_m3), σ(Avg(F_v2) W_v2)]``,
  ``F_m = Conv([F_m2, F_m3, F_m4])``, ``F_v = Conv([F_m, F_coord])`` (σ: BatchNorm + ReLU; every map at
  stride 16; F_coord the 2-D pixel coordinates). ``model.cris.fuse_stride=8`` [ours] works at stride 8
  instead (F_v3 upsampled rather than F_v2 pooled): at 96 px the stride-16 grid is 6×6 cells.
* **Vision–language decoder** (§3.3): n layers of self-attention over the visual tokens (sine positions),
  cross-attention to the words, FFN — pre-norm, residual, a final LayerNorm → F_c.
* **Text-to-pixel contrastive learning** (§3.4): ``z_v = Conv(Up(F_c))`` at stride 4 (D channels),
  ``z_t = F_s W_t + b`` reshaped into a K×K×D kernel and a bias; the score map is ``z_v ⊛ z_t`` and the
  loss the pixel-wise binary cross-entropy of σ(score) against the mask.

The score is returned as the 2-class logits ``[0, score]`` that every l2l segmenter returns, so that the
softmax's foreground probability is σ(score) and the trainer's 2-class cross-entropy is CRIS's binary
cross-entropy (with l2l's class weights (0.9, 1.1) [ours]; the supervised method's loss). A CRIS model takes
no guidance (``uses_guidance`` is false): it is a target model, not an SESM segmenter.

Sizes [ours, for a 2-core CPU]: the CRIS paper's neck is 512 wide with a 512-wide decoder of 3 layers
(8 heads, FFN 2048) and a 256-wide projector; the defaults here are 128 / 3 layers, 4 heads, FFN 256, 64.
CRIS fine-tunes CLIP at a tenth of the learning rate (``optim.visual_lr_scale`` / ``text_lr_scale``); the
stand-in's MiniLM words stay frozen and cached, as in the LAVT-style student.

API: built by :func:`l2l.models.segmenter.build_segmenter` when ``model.arch=cris``; saved and loaded by
:class:`~l2l.models.segmenter.Segmenter`'s ``save_pretrained`` / ``from_pretrained`` (this class is one).
"""

from __future__ import annotations

import math
import typing
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import normalize
from ..errors import MissingFileError, UsageError
from ..nets.backbones import VisualEncoder
from .cris_config import CRISConfig
from .segmenter import ModelConfig, Segmenter, build_text_encoder, coord_grid
from .sentence_paths import pooled

TOKENIZER_FOLDER = "clip_tokenizer"  # inside a saved model's folder (a real CLIP's tokenizer)


class CRISStem(NamedTuple):
    """What depends on the image alone: the tower's stem output (``visual``, read by the domain check) and
    the three scales F_v2, F_v3, F_v4 — CRIS meets language only after its image encoder."""

    visual: Any
    maps: tuple[torch.Tensor, ...]


# ----------------------------------------------------------------------------- towers
class ClipVisual(VisualEncoder):
    """A CLIP ViT's vision tower as four stages of layers (evenly spaced); ``stage`` returns tokens."""

    MEAN = (0.48145466, 0.4578275, 0.40821073)
    STD = (0.26862954, 0.26130258, 0.27577711)

    def __init__(self, vision_model: nn.Module):
        super().__init__()
        self.vision = vision_model
        cfg = typing.cast(Any, vision_model).config
        n = int(cfg.num_hidden_layers)
        ends = [max(1, round(n * (i + 1) / 4)) for i in range(4)]
        self.ranges = [(0 if i == 0 else ends[i - 1], ends[i]) for i in range(4)]
        self.channels = (int(cfg.hidden_size),) * 4
        self.vision.post_layernorm = nn.Identity()  # type: ignore[assignment]  # not used: the pooled output's norm

    def stem(self, x):
        mean = torch.tensor(self.MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        v = typing.cast(Any, self.vision)
        return v.pre_layrnorm(v.embeddings((x - mean) / std, interpolate_pos_encoding=True))

    def stage(self, i, x):
        a, b = self.ranges[i]
        for layer in typing.cast(Any, self.vision).encoder.layers[a:b]:
            x = layer(x, None)
            x = x[0] if isinstance(x, tuple) else x
        return x

    @staticmethod
    def grid(tokens: torch.Tensor) -> torch.Tensor:
        """Patch tokens (B, 1 + h·w, C) → (B, C, h, w) (the class token dropped)."""
        t = tokens[:, 1:]
        side = int(round(t.shape[1] ** 0.5))
        return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], side, side)


class ClipText(nn.Module):
    """CLIP's text tower: words (B, L, C), their mask, and F_s (the projected pooled state)."""

    def __init__(self, text_model: nn.Module, projection: nn.Module, tokenizer: Any, max_length: int = 77):
        super().__init__()
        self.model, self.projection, self.tokenizer, self.max_length = text_model, projection, tokenizer, max_length
        self.dim = int(typing.cast(Any, text_model).config.hidden_size)
        self.sentence_dim = int(typing.cast(Any, projection).out_features)
        self.frozen = self.use_cache = False

    def encode_all(self, texts: Sequence[str], device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tok = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        ids, mask = tok["input_ids"].to(device), tok["attention_mask"].to(device)
        out = self.model(input_ids=ids, attention_mask=mask)
        return out.last_hidden_state, mask.bool(), self.projection(out.pooler_output)

    def encode(self, texts: Sequence[str], device) -> tuple[torch.Tensor, torch.Tensor]:
        words, mask, _ = self.encode_all(texts, device)
        return words, mask


def _stand_in_net(cris: CRISConfig) -> Any:
    from ..foundation.dual_encoder import DualEncoderConfig, DualEncoderNet

    if cris.pretrained:
        from ..foundation.dual_encoder import DualEncoder

        return DualEncoder.from_pretrained(cris.clip, text=False).net
    return DualEncoderNet(DualEncoderConfig(**{**cris.towers.get("config", {}), "init": None}))


def tower_kind(cris: CRISConfig) -> str:
    """``clip`` (a real ``transformers`` CLIP) or ``stand-in``, from the folder's own fields when pretrained."""
    if not cris.pretrained:
        kind = str(cris.towers.get("kind", "stand-in"))
        if kind not in ("clip", "stand-in"):
            raise UsageError(f"model.cris.towers.kind must be clip or stand-in, got {kind!r}")
        return kind
    from ..utils.folders import is_real_folder

    return "clip" if is_real_folder(cris.clip) else "stand-in"


# ----------------------------------------------------------------------------- parts
def _bn_relu_conv(cin: int, cout: int, k: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def sine_1d(n: int, dim: int, device, dtype) -> torch.Tensor:
    """(n, dim) sine–cosine positions (the Transformer's)."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    out = torch.zeros(n, dim, device=device)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return out.to(dtype)


def sine_2d(h: int, w: int, dim: int, device, dtype) -> torch.Tensor:
    """(h·w, dim): half the channels encode the row, half the column."""
    half = dim // 2
    rows, cols = sine_1d(h, half, device, dtype), sine_1d(w, dim - half, device, dtype)
    return torch.cat([rows[:, None].expand(h, w, half), cols[None].expand(h, w, dim - half)], -1).reshape(h * w, dim)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``x`` at ``size``: itself, average-pooled down (CRIS's Avg) or bilinearly up."""
    if tuple(x.shape[-2:]) == size:
        return x
    if x.shape[-2] >= size[0]:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class CrossModalNeck(nn.Module):
    """§3.2: three visual scales and the sentence → F_v at stride 16 (module docstring)."""

    def __init__(self, channels: Sequence[int], sentence_dim: int, neck: int, out: int, stride: int = 16):
        super().__init__()
        self.stride = stride
        c2, c3, c4 = channels
        self.v4 = _bn_relu_conv(c4, neck)
        self.s = nn.Sequential(nn.Linear(sentence_dim, neck), nn.BatchNorm1d(neck), nn.ReLU(inplace=True))
        self.m4_norm = nn.Sequential(nn.BatchNorm2d(neck), nn.ReLU(inplace=True))
        self.v3, self.m4 = _bn_relu_conv(c3, neck), _bn_relu_conv(neck, neck)
        self.cat3 = _bn_relu_conv(2 * neck, neck, 3)
        self.v2, self.m3 = _bn_relu_conv(c2, neck), _bn_relu_conv(neck, neck)
        self.cat2 = _bn_relu_conv(2 * neck, neck, 3)
        self.aggregate = _bn_relu_conv(3 * neck, neck)
        self.coord = _bn_relu_conv(neck + 2, out, 3)

    def forward(self, maps: Sequence[torch.Tensor], sentence: torch.Tensor) -> torch.Tensor:
        f2, f3, f4 = maps
        size = (int(f3.shape[-2]), int(f3.shape[-1])) if self.stride == 16 else (int(f2.shape[-2]), int(f2.shape[-1]))
        m4 = self.m4_norm(self.v4(f4) * self.s(sentence)[..., None, None])
        m4 = F.interpolate(m4, size=size, mode="bilinear", align_corners=False)
        m3 = self.cat3(torch.cat([self.m4(m4), self.v3(_resize(f3, size))], 1))
        m2 = self.cat2(torch.cat([self.m3(m3), self.v2(_resize(f2, size))], 1))
        fm = self.aggregate(torch.cat([m2, m3, m4], 1))
        return self.coord(torch.cat([fm, coord_grid(fm).expand(fm.shape[0], -1, -1, -1)], 1))  # F_coord


class DecoderLayer(nn.Module):
    """§3.3: self-attention over the visual tokens, cross-attention to the words, FFN (pre-norm)."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.n1, self.n2, self.n3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(ffn, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, v, vpos, words, wpos, pad):
        q = self.n1(v)
        v = v + self.drop(self.self_attn(q + vpos, q + vpos, q, need_weights=False)[0])
        q = self.n2(v)
        v = v + self.drop(self.cross_attn(q + vpos, words + wpos, words, key_padding_mask=pad, need_weights=False)[0])
        return v + self.drop(self.ffn(self.n3(v)))


class VisionLanguageDecoder(nn.Module):
    def __init__(self, dim: int, word_dim: int, cfg: CRISConfig):
        super().__init__()
        self.words = nn.Linear(word_dim, dim)
        self.layers = nn.ModuleList([DecoderLayer(dim, cfg.heads, cfg.ffn, cfg.dropout) for _ in range(cfg.layers)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, fv: torch.Tensor, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, h, w = fv.shape
        v = fv.flatten(2).transpose(1, 2)
        vpos = sine_2d(h, w, c, v.device, v.dtype)[None]
        t = self.words(words)
        wpos = sine_1d(t.shape[1], c, t.device, t.dtype)[None]
        pad = ~mask.bool()
        for layer in self.layers:
            v = layer(v, vpos, t, wpos, pad)
        return self.norm(v).transpose(1, 2).reshape(b, c, h, w)


class TextToPixel(nn.Module):
    """§3.4: z_v at stride 4, z_t a per-sentence K×K kernel and bias; the score ``z_v ⊛ z_t``."""

    def __init__(self, dim: int, sentence_dim: int, proj_dim: int, kernel: int):
        super().__init__()
        self.at8, self.at4 = _bn_relu_conv(dim, dim, 3), _bn_relu_conv(dim, proj_dim, 3)
        self.out = nn.Conv2d(proj_dim, proj_dim, 1)
        self.txt = nn.Linear(sentence_dim, proj_dim * kernel * kernel + 1)
        self.proj_dim, self.kernel = proj_dim, kernel

    def forward(self, fc: torch.Tensor, sentence: torch.Tensor, size4: tuple[int, int]) -> torch.Tensor:
        """Scores (B, 1, *size4) at stride 4 from F_c (stride 16 or 8): up to stride 8, conv, up to 4, conv."""
        zv = self.at8(_resize(fc, (size4[0] // 2, size4[1] // 2)))
        zv = self.out(self.at4(_resize(zv, size4)))
        b, d, h, w = zv.shape
        zt = self.txt(sentence)
        weight = zt[:, :-1].reshape(b, d, self.kernel, self.kernel)
        score = F.conv2d(zv.reshape(1, b * d, h, w), weight, zt[:, -1], padding=self.kernel // 2, groups=b)
        return score.reshape(b, 1, h, w)


# ----------------------------------------------------------------------------- the model
class CRIS(Segmenter):
    """CRIS on the dual-encoder interface (module docstring). ``forward`` → 2-class logits (B, 2, H, W)."""

    def __init__(self, cfg: ModelConfig):
        nn.Module.__init__(self)  # not Segmenter.__init__: none of the LAVT parts; its predict / segment / save / load
        self.cfg = cfg
        c = cfg.cris
        self.kind = tower_kind(c)
        self.coords = self.scene = self.query = self.sentence = self.objects = self.null_map = None
        if self.kind == "clip":
            clip = self._clip_model(c)
            self.visual = ClipVisual(clip.vision_model)
            text = ClipText(clip.text_model, clip.text_projection, self._clip_tokenizer(c))
            self.text = typing.cast(Any, text)  # not a BERT-type reader: CLIP's own text tower
            channels, word_dim, sentence_dim = self.visual.channels[1:], text.dim, text.sentence_dim
            self.sentence_proj = None
        else:
            net = _stand_in_net(c)
            self.visual = net.encoder
            self.text = build_text_encoder(cfg.text)
            if self.text.dim != int(net.cfg.text_dim):
                raise UsageError(
                    f"model.cris: the stand-in dual encoder {c.clip!r} reads {net.cfg.text_dim}-d word features, "
                    f"model.text ({cfg.text.name}) gives {self.text.dim}-d; it was trained on MiniLM-L6 (text.name=minilm)"
                )
            self.sentence_proj = net.text_proj  # F_s: the dual encoder's trained projection of the pooled words
            self._text_queries = net.text_query if int(net.cfg.text_queries) else None
            self._tower_config = net.cfg.to_dict()
            channels, word_dim, sentence_dim = tuple(net.cfg.conv_channels[1:]), self.text.dim, int(net.cfg.embed_dim)
        self.neck = CrossModalNeck(channels, sentence_dim, c.neck_dim, c.dim, c.fuse_stride)
        self.vl_decoder = VisionLanguageDecoder(c.dim, word_dim, c)
        self.projector = TextToPixel(c.dim, sentence_dim, c.proj_dim, c.kernel)

    # ------------------------------------------------------------------ towers
    @staticmethod
    def _clip_model(c: CRISConfig) -> Any:
        from transformers import CLIPConfig, CLIPModel

        if not c.pretrained:
            return CLIPModel(CLIPConfig(**c.towers.get("config", {})))
        if not (Path(c.clip) / "config.json").exists():
            raise MissingFileError(f"CRIS: no local Hugging Face CLIP folder at {c.clip} (config.json missing)")
        return CLIPModel.from_pretrained(c.clip, local_files_only=True)

    @staticmethod
    def _clip_tokenizer(c: CRISConfig) -> Any:
        from transformers import AutoTokenizer

        where = c.clip if c.pretrained else c.tokenizer
        if not where:
            raise MissingFileError("CRIS with a CLIP built from its config needs model.cris.tokenizer (a local folder)")
        return AutoTokenizer.from_pretrained(str(where), local_files_only=True)

    def _language(self, texts: Sequence[str], device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """F_t, its mask and F_s."""
        if isinstance(self.text, ClipText):
            return self.text.encode_all(texts, device)
        words, mask = self.text.encode(texts, device)
        s = pooled(words, mask)
        if self._text_queries is not None:  # the dual encoder's query pooling (DualEncoderNet.text_features)
            a = (words @ self._text_queries.t()).masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).softmax(1)
            s = torch.cat([s, torch.einsum("blq,bld->bqd", a, words).flatten(1)], 1)
        assert self.sentence_proj is not None
        return words, mask, self.sentence_proj(s)

    # ------------------------------------------------------------------ forward
    def stem(self, images: torch.Tensor) -> CRISStem:
        """The whole image encoder (CRIS fuses language after it): computed once per image by a predictor."""
        if self.kind == "clip":
            x = first = self.visual.stem(images)
            tokens = []
            for i in range(4):
                x = self.visual.stage(i, x)
                tokens.append(ClipVisual.grid(x))
            g = tokens[1:]
            maps = (
                F.interpolate(g[0], scale_factor=2.0, mode="bilinear", align_corners=False),
                g[1],
                F.max_pool2d(g[2], 2, ceil_mode=True),
            )
            return CRISStem(first, maps)
        v = first = self.visual.stem(normalize(images))
        feats = []
        for i in range(4):
            v = self.visual.stage(i, v)
            feats.append(v)
            v = self.visual.to_next(i, v)
        return CRISStem(first, tuple(feats[1:]))

    def forward_from_stem(
        self,
        x: Any,
        size: tuple[int, int],
        texts: Sequence[str],
        guidance: torch.Tensor | None = None,
        has_guidance: torch.Tensor | None = None,
        guidance_dropout: bool = True,
    ) -> torch.Tensor:
        if guidance is not None:
            raise UsageError("a CRIS model takes no guidance (it has no SESM input)")
        if not isinstance(x, CRISStem):
            raise UsageError("CRIS.forward_from_stem needs the stem() of the same model (a CRISStem)")
        dev = x.maps[0].device
        words, mask, sentence = self._language(texts, dev)
        words, sentence = words.to(x.maps[0].dtype), sentence.to(x.maps[0].dtype)
        fv = self.neck(x.maps, sentence)
        fc = self.vl_decoder(fv, words, mask)
        h8, w8 = x.maps[0].shape[-2:]
        score = self.projector(fc, sentence, (2 * int(h8), 2 * int(w8)))
        score = F.interpolate(score, size=size, mode="bilinear", align_corners=False)
        return torch.cat([torch.zeros_like(score), score], 1)

    def prefit(self, ds: Any, records: Sequence[Any], size: int, seed: int, show_progress: bool = False) -> list[float]:
        return []

    # ------------------------------------------------------------------ persistence
    def config_dict(self) -> dict[str, Any]:
        """The config with the towers recorded as architectures (rebuildable without the CLIP folder)."""
        cfg = super().config_dict()
        c = cfg["cris"]
        if c["pretrained"]:
            c.update(pretrained=False, init_from=c["clip"])
        if self.kind == "clip":
            clip_cfg = {
                "text_config": typing.cast(Any, self.text.model).config.to_dict(),
                "vision_config": typing.cast(Any, self.visual.vision).config.to_dict(),
                "projection_dim": int(typing.cast(Any, self.text.projection).out_features),
            }
            c.update(towers={"kind": "clip", "config": clip_cfg}, tokenizer=TOKENIZER_FOLDER)
        else:
            c["towers"] = {"kind": "stand-in", "config": self._tower_config}
        return cfg

    def save_pretrained(self, path: str | Path) -> Path:
        if isinstance(self.text, ClipText):  # the tokenizer travels with the weights
            self.text.tokenizer.save_pretrained(str(Path(path) / TOKENIZER_FOLDER))
        return super().save_pretrained(path)
