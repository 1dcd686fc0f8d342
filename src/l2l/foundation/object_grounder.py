"""The grounder's two-stage body (``model.body=objects``): find every object, then pick the one the
sentence refers to.

The dense bodies of :mod:`l2l.foundation.grounder` must learn, cell by cell, what an object is,
where its neighbours are and which of them the words mean, all from one box target per sentence.
This body splits the work as two-stage referring-expression models do (MAttNet, Yu et al. 2018:
proposals, then a language-conditioned choice among them, with an attribute branch):

1. **Objects** (CenterNet, Zhou et al. 2019). The pool-pretrained conv encoder's four stages are
   fused at 1/4 of the input (24×24 at 96 px); a head predicts, per cell, the logit that an
   object's centre lies there and its box (centre offset, log width and height, in cells).
   Trained on *every* visible object of each pool scene (focal loss on a Gaussian heat map, L1 on
   the box at the centre cell). Inference: 3×3 peak picking, at most ``max_objects`` peaks above
   ``det_thresh`` (always at least one).
2. **Object tokens.** Each box is read from the fused map on an ``roi``×``roi`` grid of bilinear
   samples (RoIAlign without torchvision) → an appearance vector; an attribute head on it predicts
   the object's shape, colour, size and texture (the pool's labels; MAttNet's attribute branch) so
   that appearance is learned fast; the box's coordinates give a geometry vector.
3. **Choice.** Object tokens and the sentence's frozen MiniLM-L6 word features go through a
   transformer together (location, ordinal and relation sentences compare objects' coordinates);
   each object gets a score (plus a direct object–sentence match) and a softmax over the objects
   picks one. Trained with the ground-truth boxes of the scene (jittered) and the cross-entropy of
   the referred object. Optional (``relation_bias``, off: it did not help, docs/foundation.md):
   object–object attention biased by the boxes' relative geometry (:func:`relative_geometry`).

The box answered is the chosen object's detected box; the confidence is its softmax probability
times its detection score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import normalize
from ..data.vocab import COLORS, SHAPE_WORDS, SIZES, TEXTURES
from ..nets.backbones import ConvEncoder
from ..utils.tensors import image_tensor

if TYPE_CHECKING:
    from .grounder import GrounderConfig

# the attribute branch's classes (the pool's objects carry these canonical values)
OBJECT_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": tuple(sorted(SHAPE_WORDS)),
    "color": tuple(sorted(COLORS)),
    "size": tuple(sorted(SIZES)),
    "texture": tuple(sorted(TEXTURES)),
}


def attribute_indices(obj) -> list[int]:
    """The class index of each of ``obj``'s attributes (a ``SceneObject``), in OBJECT_ATTRIBUTES order."""
    return [names.index(getattr(obj, a)) for a, names in OBJECT_ATTRIBUTES.items()]


class ObjectGrounderNet(nn.Module):
    def __init__(self, cfg: "GrounderConfig"):
        super().__init__()
        self.cfg = cfg
        c, d, e = cfg.conv_channels, cfg.dim, cfg.dense_dim
        self.encoder = ConvEncoder(c)
        self.fuse = nn.Sequential(
            nn.Conv2d(sum(c), e, 1),
            nn.GELU(),
            nn.Conv2d(e, e, 3, padding=1),
            nn.GroupNorm(8, e),
            nn.GELU(),
            nn.Conv2d(e, e, 3, padding=2, dilation=2),
            nn.GroupNorm(8, e),
            nn.GELU(),
        )
        self.det = nn.Conv2d(e, 5, 1)  # centre logit, dx, dy, log w, log h (cells of the 1/4 map)
        nn.init.constant_(self.det.bias, 0.0)  # type: ignore[arg-type]
        self.det.bias.data[0] = -2.19  # type: ignore[union-attr]  # CenterNet's prior: a cell is a centre with probability ≈ 0.1
        self.appearance = nn.Sequential(nn.Linear(e * cfg.roi * cfg.roi, d), nn.GELU(), nn.Linear(d, d))
        self.attributes = nn.ModuleDict({k: nn.Linear(d, len(v)) for k, v in OBJECT_ATTRIBUTES.items()})
        self.geometry = nn.Sequential(nn.Linear(7, d), nn.GELU(), nn.Linear(d, d))
        self.text_proj = nn.Linear(cfg.text_dim, d)
        self.kind = nn.Parameter(torch.zeros(2, d))
        layer = nn.TransformerEncoderLayer(d, cfg.heads, 2 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.score = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 1))
        self.match_txt = nn.Linear(cfg.text_dim, d)
        self.pair: nn.Module | None = None
        if cfg.relation_bias:  # per-head attention bias from the boxes' relative geometry (starts neutral)
            self.pair = nn.Sequential(nn.Linear(6, 32), nn.GELU(), nn.Linear(32, cfg.heads))
            nn.init.zeros_(self.pair[2].weight)  # type: ignore[arg-type]
            nn.init.zeros_(self.pair[2].bias)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- stage 1: objects
    def dense(self, images: torch.Tensor) -> torch.Tensor:
        """The fused 1/4 map B×E×G×G of images B×3×S×S in [0, 1]."""
        feats = self.encoder(normalize(images))
        size = feats[0].shape[-2:]
        up = [feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats[1:]]
        return self.fuse(torch.cat(up, 1))

    def detect(self, dmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The objects of fused maps: :func:`decode_peaks` of the detection head."""
        return decode_peaks(self.det(dmap), self.cfg.max_objects, self.cfg.det_thresh)

    # ---------------------------------------------------------------- stage 2: tokens and choice
    def tokens(self, dmap: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Object tokens B×N×D and appearance vectors B×N×D of boxes B×N×4 (x0, y0, x1, y1 in [0, 1])."""
        b, n, r = boxes.shape[0], boxes.shape[1], self.cfg.roi
        t = (torch.arange(r, dtype=boxes.dtype, device=boxes.device) + 0.5) / r
        x0, y0, x1, y1 = boxes.unbind(-1)
        xs = x0[..., None] + t * (x1 - x0)[..., None]  # B×N×r
        ys = y0[..., None] + t * (y1 - y0)[..., None]
        grid = torch.stack([xs[:, :, None, :].expand(b, n, r, r), ys[:, :, :, None].expand(b, n, r, r)], -1)
        sampled = F.grid_sample(dmap, grid.reshape(b, n * r, r, 2) * 2 - 1, align_corners=False)  # B×E×N·r×r
        sampled = sampled.reshape(b, -1, n, r * r).permute(0, 2, 1, 3).flatten(2)
        app = self.appearance(sampled)
        w, h = x1 - x0, y1 - y0
        geo = torch.stack([x0, y0, x1, y1, (x0 + x1) / 2, (y0 + y1) / 2, (w * h).clamp(min=0).sqrt()], -1)
        return app + self.geometry(geo * 2 - 1), app

    def choose(
        self,
        toks: torch.Tensor,
        valid: torch.Tensor,
        words: torch.Tensor,
        word_mask: torch.Tensor,
        boxes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits B×N over the objects (−inf where not ``valid``); ``boxes`` B×N×4 feed the relation bias
        (``relation_bias``: object i attends to object j with a learned per-head bias of where j lies
        relative to i, as in relation networks, Hu et al. 2018)."""
        seq = torch.cat([toks + self.kind[0], self.text_proj(words) + self.kind[1]], 1)
        pad = torch.cat([~valid, ~word_mask], 1)
        if self.pair is None:
            h = self.body(seq, src_key_padding_mask=pad)[:, : toks.shape[1]]
        else:
            if boxes is None:
                raise ValueError("relation_bias needs the objects' boxes")
            b, n, length = toks.shape[0], toks.shape[1], seq.shape[1]
            bias = seq.new_zeros(b, self.cfg.heads, length, length)
            bias[:, :, :n, :n] = self.pair(relative_geometry(boxes)).permute(0, 3, 1, 2)
            h = seq
            for layer in self.body.layers:  # nn.TransformerEncoder's eval fast path breaks on per-head masks
                h = biased_layer(layer, h, bias.masked_fill(pad[:, None, None, :], float("-inf")))
            h = h[:, :n]
        m = word_mask.unsqueeze(-1).float()
        sentence = (words * m).sum(1) / m.sum(1).clamp(min=1)
        match = (h * self.match_txt(sentence).unsqueeze(1)).sum(-1) / self.cfg.dim**0.5
        return (self.score(h)[..., 0] + match).masked_fill(~valid, float("-inf"))

    @torch.no_grad()
    def predict(
        self, images: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The chosen boxes B×4 (in [0, 1]) and confidences B."""
        dmap = self.dense(images)
        boxes, det, valid = self.detect(dmap)
        toks, _ = self.tokens(dmap, boxes)
        prob = self.choose(toks, valid, words, word_mask, boxes).softmax(-1)
        p, k = prob.max(-1)
        ar = torch.arange(len(k))
        return boxes[ar, k], p * det[ar, k]


def biased_layer(layer: nn.TransformerEncoderLayer, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """One pre-norm ``layer`` (no dropout) on ``x`` B×L×D with an additive attention bias B×H×L×L, computed
    from the layer's own weights (so that a body trained with the bias keeps nn.TransformerEncoder's
    state dict)."""
    att = layer.self_attn
    b, length, d = x.shape
    heads = att.num_heads
    q, k, v = F.linear(layer.norm1(x), att.in_proj_weight, att.in_proj_bias).chunk(3, -1)
    q, k, v = (t.reshape(b, length, heads, d // heads).transpose(1, 2) for t in (q, k, v))
    a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).reshape(b, length, d)
    x = x + att.out_proj(a)
    return x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))


def relative_geometry(boxes: torch.Tensor) -> torch.Tensor:
    """Pairwise features B×N×N×6 of boxes B×N×4 (x0, y0, x1, y1 in [0, 1]): where box j's centre lies
    from box i's (in image sides, ×4, and in box sizes of i, squashed) and j's log size ratio."""
    cx, cy = (boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2
    w, h = (boxes[..., 2] - boxes[..., 0]).clamp(min=1e-3), (boxes[..., 3] - boxes[..., 1]).clamp(min=1e-3)
    dx, dy = cx[:, None, :] - cx[:, :, None], cy[:, None, :] - cy[:, :, None]
    return torch.stack(
        [
            4 * dx,
            4 * dy,
            torch.tanh(dx / w[:, :, None]),
            torch.tanh(dy / h[:, :, None]),
            (w[:, None, :] / w[:, :, None]).log(),
            (h[:, None, :] / h[:, :, None]).log(),
        ],
        -1,
    )


def decode_peaks(raw: torch.Tensor, max_objects: int, thresh: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Detection head output B×5×G×G → boxes B×K×4 (x0, y0, x1, y1 in [0, 1]), scores B×K and valid B×K:
    the 3×3 peaks of the centre map, at most ``max_objects``, those below ``thresh`` not valid (the
    best one always is)."""
    heat = raw[:, 0].sigmoid()
    b, g = heat.shape[0], heat.shape[-1]
    peaks = heat * (heat == F.max_pool2d(heat[:, None], 3, 1, 1)[:, 0])
    k = min(max_objects, g * g)
    score, idx = peaks.flatten(1).topk(k, -1)
    valid = score >= thresh
    valid[:, 0] = True  # always one candidate
    reg = raw[:, 1:].flatten(2).gather(2, idx[:, None].expand(b, 4, k))  # B×4×K
    row, col = (idx // g).float(), (idx % g).float()
    cx, cy = (col + 0.5 + reg[:, 0]) / g, (row + 0.5 + reg[:, 1]) / g
    w, h = reg[:, 2].clamp(-3, 4).exp() / g, reg[:, 3].clamp(-3, 4).exp() / g
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1).clamp(0, 1)
    return boxes, score, valid


def centre_targets(boxes: torch.Tensor, valid: torch.Tensor, g: int):
    """What the detection head should answer for boxes B×N×4 in [0, 1] on a G×G map: the Gaussian heat
    map B×G×G (σ from each box's size), the one-hot centre map, each valid object's (image, row,
    column) and its regression target M×4 (centre offset in its cell, log width and height in cells)."""
    c = torch.arange(g, dtype=boxes.dtype) + 0.5
    cx, cy = (boxes[..., 0] + boxes[..., 2]) / 2 * g, (boxes[..., 1] + boxes[..., 3]) / 2 * g  # B×N, cells
    w, h = (boxes[..., 2] - boxes[..., 0]) * g, (boxes[..., 3] - boxes[..., 1]) * g
    sigma = ((w * h).clamp(min=1e-4).sqrt() / 6).clamp(min=0.5)
    d2 = (c[None, None, None, :] - cx[..., None, None]) ** 2 + (c[None, None, :, None] - cy[..., None, None]) ** 2
    heat = (torch.exp(-d2 / (2 * sigma[..., None, None] ** 2)) * valid[..., None, None]).amax(1)  # B×G×G
    col, row = cx.long().clamp(0, g - 1), cy.long().clamp(0, g - 1)
    bi = torch.arange(len(boxes))[:, None].expand_as(col)
    where = (bi[valid], row[valid], col[valid])
    centre = torch.zeros_like(heat)
    centre[where] = 1.0
    want = torch.stack(
        [
            cx[valid] - col[valid] - 0.5,
            cy[valid] - row[valid] - 0.5,
            w[valid].clamp(min=1e-3).log(),
            h[valid].clamp(min=1e-3).log(),
        ],
        -1,
    )
    return torch.maximum(heat, centre), centre, where, want


# -------------------------------------------------------------------------------- training
def pad_objects(objs: Sequence[tuple[np.ndarray, np.ndarray]], size: int) -> tuple[torch.Tensor, ...]:
    """Per-image (boxes n×4 in pixels, attributes n×4) → boxes B×N×4 in [0, 1], attributes B×N×4, valid B×N."""
    n = max(len(o[0]) for o in objs)
    boxes = torch.zeros(len(objs), n, 4)
    attrs = torch.zeros(len(objs), n, 4, dtype=torch.long)
    valid = torch.zeros(len(objs), n, dtype=torch.bool)
    for i, (b, a) in enumerate(objs):
        boxes[i, : len(b)] = torch.from_numpy(b).float() / size
        attrs[i, : len(a)] = torch.from_numpy(a).long()
        valid[i, : len(b)] = True
    return boxes, attrs, valid


def detection_loss(raw: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CenterNet's focal loss on the centre map (Gaussian targets, σ from each box's size) and the L1 of
    the box at each object's centre cell; ``raw`` B×5×G×G, ``boxes`` B×N×4 in [0, 1]."""
    target, centre, where, want = centre_targets(boxes, valid, raw.shape[-1])
    p = raw[:, 0].sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = -((1 - p) ** 2) * p.log() * centre
    neg = -((1 - target) ** 4) * p**2 * (1 - p).log() * (1 - centre)
    focal = (pos.sum() + neg.sum()) / valid.sum().clamp(min=1)
    reg = raw[:, 1:][where[0], :, where[1], where[2]]  # M×4
    return focal, (reg - want).abs().sum(-1).mean()


def object_grounder_loss(
    net: ObjectGrounderNet,
    images: torch.Tensor,
    words: torch.Tensor,
    word_mask: torch.Tensor,
    objs: Sequence[tuple[np.ndarray, np.ndarray]],
    targets: Sequence[int],
    jitter: float,
    det_weight: float,
    attr_weight: float,
    gen: torch.Generator,
    rows: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Detection + attribute + choice losses of one batch: ``objs[i]`` the visible objects of
    ``images[i]``; sentence j refers to object ``targets[j]`` of image ``rows[j]`` (default: image j),
    so that an image's sentences share its encoding."""
    boxes, attrs, valid = pad_objects(objs, images.shape[-1])
    dmap = net.dense(images)
    focal, l1 = detection_loss(net.det(dmap), boxes, valid)
    wh = (boxes[..., 2:] - boxes[..., :2]).repeat(1, 1, 2)
    noisy = (boxes + torch.randn(boxes.shape, generator=gen) * jitter * wh).clamp(0, 1)
    toks, app = net.tokens(dmap, noisy)
    attr_ce: torch.Tensor = sum(  # type: ignore[assignment]
        F.cross_entropy(head(app[valid]), attrs[valid][:, i]) for i, head in enumerate(net.attributes.values())
    ) / len(net.attributes)
    if rows is not None:
        toks, valid, noisy = toks[rows], valid[rows], noisy[rows]
    logits = net.choose(toks, valid, words, word_mask, noisy)
    ce = F.cross_entropy(logits, torch.tensor(list(targets)))
    loss = ce + det_weight * (focal + l1) + attr_weight * attr_ce
    parts = {
        "ce": float(ce.detach()),
        "det": float(focal.detach()),
        "l1": float(l1.detach()),
        "attr": float(attr_ce.detach()),
    }
    return loss, parts


@torch.no_grad()
def detection_recall(net: ObjectGrounderNet, images: np.ndarray, objs, iou: float = 0.5) -> float:
    """Share of the visible objects of ``images`` (N×S×S×3 uint8) matched by a detected box at ``iou``."""
    from ..utils.masks import box_iou

    hits, total = 0, 0
    for a in range(0, len(images), 64):
        x = image_tensor(images[a : a + 64])
        boxes, _, valid = net.detect(net.dense(x))
        for i, (gt, _) in enumerate(objs[a : a + 64]):
            det = boxes[i][valid[i]].tolist()
            for g in (np.asarray(gt) / images.shape[1]).tolist():
                hits += any(box_iou(g, d) >= iou for d in det)
                total += 1
    return hits / max(total, 1)
