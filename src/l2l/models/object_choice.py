"""Object choice [ours, issue 32]: a two-stage grounding branch — find the objects, choose one — whose
choice enters the segmenter at every stage and at the head.

The learning curves and the oracle probe of docs/model.md showed where the single-stage student
fails: given the referred object's box it draws the mask at 84–86 oIoU for every expression kind,
without it it stays at 52–58, lowest on the kinds that compare objects (relation, ordinal). A pixel
with its neighbourhood and the attended words cannot count circles or find "the square left of the
heart"; a transformer over a handful of *object* tokens and the words can (MAttNet, Yu et al. 2018;
the stand-in grounder, ``foundation/object_grounder.py``). This branch is that grounder's network
inside the student:

1. **Objects** (frozen, image only, computed with the visual stem): the grounder's encoder, fused
   1/4 map and CenterNet head give at most ``max_objects`` boxes ``b_k`` per image. Pretrained on the
   pool of generated scenes (the stand-in for a detector pretrained on another dataset); never
   trained on SynthRef.
2. **Choice** (trained with the student): RoI tokens of the boxes, the sentence's word features (the
   student's own frozen MiniLM tokens), a transformer over both, and a softmax over the objects:
   ``π_k = softmax_k(s_k)``. Initialised from the grounder, then trained end to end by the
   segmenter's loss alone (no box or object label: the referring mask is the only supervision).
3. **The choice map** ``O(x) = Σ_k π_k · 1[x ∈ b_k]`` (in [0, 1]) enters

       every stage, before its fusion:   V_l ← V_l + W_l O_l            (W_l 1×1, zero-initialised)
       the head's foreground logit:      logit(x) += α (2 O(x) − 1)     (α learned, starts at ``alpha``)

   so the decoder learns to draw inside the chosen box, and the mask loss reaches the choice through
   ``α`` (pixels of the referred object inside box ``k`` raise ``π_k``; predicted foreground outside
   the object lowers it).
   With ``guide`` (and SESM on), the choice map is also SESM's guidance map ``G`` (Eqs. 1–3) for every
   sample that has no prior — the path the oracle probe of docs/model.md showed the student follows
   at once when ``G`` is the true box; a prior, where one is given, keeps its place.
4. **Optional choice loss** (``choice_loss`` = w > 0): the referring mask also names its object among
   the detections — ``k* = argmax_k IoU(b_k, box(mask))``, kept when that IoU ≥ ``match_iou`` — and
   ``w · (−log π_k*)`` is added to the labeled loss (:func:`choice_loss_per_sample`; samples whose
   object was not detected, or whose mask is empty, add nothing). Still no label beyond the mask.
5. **Optional pre-fit** (``prefit_epochs`` > 0; :func:`prefit_choice`): the detector is frozen, so
   each labeled image's objects are computed once and the choice network alone is trained on every
   labeled sentence with the loss of item 4 for a few epochs (a minute or two on one core) before the
   segmenter's training starts; inside that training the choice gets 16 sentences a step, about an
   eighth of what its pretraining gave it (docs/model.md, "the fifth round").

The paper's structure stays: a hierarchical encoder with language fused at every stage (and SESM's
guidance, when enabled, entering at every stage beside this map). The branch adds an object-level
path, which the paper's Swin-B + BERT student does not have; the RefCOCO configs leave it off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError
from ..foundation.grounder import FORMAT, GrounderConfig, build_grounder
from ..utils.folders import load_folder
from ..utils.masks import label_map_boxes, paired_box_iou

if TYPE_CHECKING:
    from ..data.refer import ReferDataset, SampleRecord


@dataclass
class ObjectsConfig:
    enabled: bool = False
    path: str | None = "builtin:synthpool-grounder"  # a grounder folder (objects body); None: random weights
    grounder: dict = field(default_factory=dict)  # GrounderConfig fields for path=None (a tiny random branch)
    alpha: float = 1.0  # the head's starting weight of the choice map
    stages: bool = True  # the choice map added to every stage before its fusion
    train_choice: bool = (
        True  # False: the segmenter's training leaves the choice as it is (the grounder's, or the pre-fit's)
    )
    guide: bool = False  # the choice map is SESM's guidance G where no prior is given (needs model.sesm)
    choice_loss: float = 0.0  # weight of −log π of the mask's own object in the labeled loss (item 4 above)
    prefit_epochs: int = 0  # epochs of the choice alone on the labeled sentences before training (item 5)
    prefit_lr: float = 3e-4
    prefit_batch: int = 64
    prefit_flip: bool = False  # the pre-fit also sees every image mirrored, its sentence's left/right swapped
    relation_bias: bool = (
        False  # add the grounder's pairwise-geometry attention bias (zero-initialised: starts neutral)
    )
    match_iou: float = 0.5  # a detection names the mask's object when its box IoU with the mask's box is ≥ this

    def __post_init__(self) -> None:
        if self.enabled and self.path is None and not self.grounder:
            raise UsageError("model.objects.path is null: give model.objects.grounder (GrounderConfig fields)")


class ObjectStem(NamedTuple):
    """What :meth:`~l2l.models.segmenter.Segmenter.stem` returns with the branch on: the visual stem and
    the image's objects (the fused 1/4 map the choice reads, boxes B×K×4 in [0, 1], valid B×K)."""

    visual: Any
    dmap: torch.Tensor
    boxes: torch.Tensor
    valid: torch.Tensor


def box_maps(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """B×K×H×W indicators of boxes B×K×4 (x0, y0, x1, y1 in [0, 1]) on an H×W grid of pixel centres."""
    h, w = size
    ys = (torch.arange(h, device=boxes.device, dtype=boxes.dtype) + 0.5) / h
    xs = (torch.arange(w, device=boxes.device, dtype=boxes.dtype) + 0.5) / w
    x0, y0, x1, y1 = (t[..., None] for t in boxes.unbind(-1))
    inx = ((xs >= x0) & (xs <= x1)).to(boxes.dtype)  # B×K×W
    iny = ((ys >= y0) & (ys <= y1)).to(boxes.dtype)  # B×K×H
    return iny[..., :, None] * inx[..., None, :]


class ObjectChoice(nn.Module):
    """The branch (module docstring): ``detect`` (image only) and ``choice_map`` (with the words)."""

    def __init__(self, cfg: ObjectsConfig, stage_channels: tuple[int, ...]):
        super().__init__()
        self.cfg = cfg
        extra = {"relation_bias": True} if cfg.relation_bias else {}
        if cfg.path is not None:
            doc, states = load_folder(cfg.path, FORMAT)
            net = build_grounder(GrounderConfig(**{**doc["model"], "init": None, **extra}))
            missing, unexpected = net.load_state_dict(states["model"], strict=False)
            if unexpected or any(not k.startswith("pair.") for k in missing):  # only a new bias may be missing
                raise UsageError(f"model.objects.path {cfg.path!r}: weights do not fit ({missing or unexpected})")
        else:
            net = build_grounder(GrounderConfig(**{**cfg.grounder, "init": None, "body": "objects", **extra}))
        if getattr(net.cfg, "body", None) != "objects":
            raise UsageError(f"model.objects.path {cfg.path!r}: the grounder must have the objects body")
        self.net: Any = net  # an ObjectGrounderNet (build_grounder's union type: checked above)
        for frozen in self.detector_parts():  # stage 1 stays the pool's detector
            frozen.requires_grad_(False)
        self.set_choice_trainable(cfg.train_choice)
        self.stage_in = None
        if cfg.stages:
            convs = [nn.Conv2d(1, ch, 1) for ch in stage_channels]
            for conv in convs:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)  # type: ignore[arg-type]
            self.stage_in = nn.ModuleList(convs)
        self.alpha = nn.Parameter(torch.tensor(float(cfg.alpha)))
        self.last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # (π, boxes, valid) of the last pass

    def detector_parts(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        """The grounder's stage 1 (encoder, fused map, detection head): frozen, always in eval mode."""
        return self.net.encoder, self.net.fuse, self.net.det

    def choice_parameters(self) -> list[nn.Parameter]:
        """The choice network's parameters: the grounder's, less its frozen detector (encoder, fused map, head)."""
        frozen = {id(p) for part in self.detector_parts() for p in part.parameters()}
        return [p for p in self.net.parameters() if id(p) not in frozen]

    def set_choice_trainable(self, on: bool) -> None:
        for p in self.choice_parameters():
            p.requires_grad_(on)

    @property
    def text_dim(self) -> int:
        return int(self.net.cfg.text_dim)

    def train(self, mode: bool = True) -> "ObjectChoice":
        super().train(mode)
        for part in self.detector_parts():  # frozen parts keep eval behaviour
            part.eval()
        return self

    @torch.no_grad()
    def detect(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(fused map, boxes, valid) of images B×3×H×W in [0, 1] (resized to the grounder's input size)."""
        s = self.net.cfg.image_size
        if images.shape[-2:] != (s, s):
            images = F.interpolate(images, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        dmap = self.net.dense(images)
        boxes, _, valid = self.net.detect(dmap)
        return dmap, boxes, valid

    def choice(self, stem: ObjectStem, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """π: B×K probabilities over the detected objects (0 where not valid)."""
        toks, _ = self.net.tokens(stem.dmap, stem.boxes)
        prob = self.net.choose(toks, stem.valid, words, word_mask, stem.boxes).softmax(-1)
        self.last = (prob, stem.boxes, stem.valid)  # read by choice_loss_per_sample after the same pass
        return prob

    def choice_map(self, stem: ObjectStem, prob: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """O: B×1×H×W, Σ_k π_k · 1[x ∈ b_k]."""
        return torch.einsum("bk,bkhw->bhw", prob, box_maps(stem.boxes, size))[:, None]

    def into_stage(self, i: int, v: torch.Tensor, stem: ObjectStem, prob: torch.Tensor) -> torch.Tensor:
        if self.stage_in is None:
            return v
        h, w = v.shape[-2:]
        return v + self.stage_in[i](self.choice_map(stem, prob, (h, w)).to(v.dtype))

    def logit(self, stem: ObjectStem, prob: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """B×1×H×W: α (2 O − 1), added to the foreground logit."""
        return self.alpha * (2 * self.choice_map(stem, prob, size) - 1)


def choice_loss_per_sample(model: nn.Module, masks: torch.Tensor, rows: int | None = None) -> torch.Tensor | None:
    """(B,) ``choice_loss · (−log π_k*)`` of the model's last pass for label maps B×H×W (the first ``rows``
    rows of that pass: the labeled part of a mixed batch), or None when the model has no branch or the
    weight is 0. ``k*``: module docstring, item 4; a sample without a matched detection gives 0."""
    objects = getattr(model, "objects", None)
    if objects is None or objects.cfg.choice_loss <= 0 or objects.last is None:
        return None
    prob, boxes, valid = objects.last
    n = masks.shape[0] if rows is None else rows
    prob, boxes, valid = prob[:n], boxes[:n], valid[:n]
    target, has = label_map_boxes(masks[:n].to(boxes.device))
    k, matched = target_objects(boxes, valid, target, objects.cfg.match_iou)
    use = has & matched
    nll = -prob.gather(1, k[:, None])[:, 0].clamp(min=1e-6).log()
    return objects.cfg.choice_loss * nll * use.to(nll.dtype)


def target_objects(boxes: torch.Tensor, valid: torch.Tensor, target: torch.Tensor, match_iou: float):
    """(k*, use): the detection of boxes B×K×4 that best boxes each target box B×4, and whether its IoU
    reaches ``match_iou`` (the sample names a detected object)."""
    iou = paired_box_iou(boxes, target).masked_fill(~valid, -1.0)
    best, k = iou.max(-1)
    return k, best >= match_iou


@dataclass
class ExtraChoiceItems:
    """Sentences from outside the labeled set, mixed into every pre-fit epoch (``benchmarks/choice_fit.py
    --pool``: pool scenes of the pretraining world): ``objects[key]`` = (fused map, boxes, valid) of the
    frozen detector, ``items`` = [(key, sentence, target box x0, y0, x1, y1 in [0, 1])], of which
    ``per_epoch`` drawn at random join each epoch."""

    objects: dict[Any, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    items: list[tuple[Any, str, tuple[float, float, float, float]]]
    per_epoch: int


def prefit_choice(
    model: nn.Module,
    ds: "ReferDataset",
    records: Sequence["SampleRecord"],
    size: int,
    seed: int,
    epochs: int | None = None,
    after_epoch: Callable[[int, float], None] | None = None,
    show_progress: bool = False,
    extra: ExtraChoiceItems | None = None,
) -> list[float]:
    """Train ``model.objects``' choice alone on ``records`` (module docstring, item 5): the mean loss per
    epoch. The images' objects are detected once; each sentence's target is the detection that boxes its
    annotation (box IoU ≥ ``match_iou``), sentences without one are left out. ``after_epoch(epoch, loss)``
    (a benchmark's evaluation) runs after every epoch; ``extra`` adds other sentences to every epoch."""
    from ..models.domain import model_input
    from ..utils.progress import progress

    objects: ObjectChoice | None = getattr(model, "objects", None)
    if objects is None:
        raise UsageError("prefit_choice needs a model with model.objects")
    n_epochs = objects.cfg.prefit_epochs if epochs is None else epochs
    if n_epochs <= 0 or not records:
        return []
    objects.set_choice_trainable(True)  # also with train_choice=false: the pre-fit is the choice's one training
    params = objects.choice_parameters()
    dev = next(model.parameters()).device
    text: Any = model.text
    from ..data.text_augment import flip_directions

    image_ids = sorted({r.image_id for r in records})
    views = (False, True) if objects.cfg.prefit_flip else (False,)
    objs: dict[tuple[int, bool], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    sizes: dict[int, tuple[int, int]] = {}
    for i in progress(range(0, len(image_ids), 64), desc="objects of the labeled images", disable=not show_progress):
        ids = image_ids[i : i + 64]
        imgs = [ds.load_image(j) for j in ids]
        x = torch.cat([model_input(im, size, dev) for im in imgs])
        for flip in views:
            dmap, boxes, valid = objects.detect(torch.flip(x, dims=[-1]) if flip else x)
            for k, (j, im) in enumerate(zip(ids, imgs)):
                objs[j, flip], sizes[j] = (dmap[k], boxes[k], valid[k]), im.shape[:2]
    items: list[tuple[Any, str, tuple[float, float, float, float]]] = []  # (image key, sentence, target box)
    for r in records:
        h, w = sizes[r.image_id]
        x0, y0, bw, bh = ds.box(r.ann_id)
        box = (x0 / w, y0 / h, (x0 + bw) / w, (y0 + bh) / h)
        items.append(((r.image_id, False), r.sentence, box))
        if objects.cfg.prefit_flip:
            items.append(((r.image_id, True), flip_directions(r.sentence), (1 - box[2], box[1], 1 - box[0], box[3])))
    opt = torch.optim.AdamW(params, lr=objects.cfg.prefit_lr, weight_decay=1e-2)
    gen = torch.Generator().manual_seed(seed)
    was = objects.training
    objects.train()
    out = []
    b = objects.cfg.prefit_batch
    if extra is not None:
        objs = {**objs, **extra.objects}
    for epoch in progress(range(1, n_epochs + 1), desc="pre-fit of the object choice", disable=not show_progress):
        epoch_items = items
        if extra is not None:
            pick = torch.randperm(len(extra.items), generator=gen)[: extra.per_epoch].tolist()
            epoch_items = items + [extra.items[j] for j in pick]
        order = torch.randperm(len(epoch_items), generator=gen).tolist()
        losses = []
        for i in range(0, len(order), b):
            rs = [epoch_items[j] for j in order[i : i + b]]
            n = max(int(objs[key][1].shape[0]) for key, _, _ in rs)
            stem = ObjectStem(
                None,
                torch.stack([objs[key][0].float() for key, _, _ in rs]),
                torch.stack([objs[key][1][:n] for key, _, _ in rs]),
                torch.stack([objs[key][2][:n] for key, _, _ in rs]),
            )
            prob = objects.choice(stem, *text.encode([t for _, t, _ in rs], dev))
            k, use = target_objects(
                stem.boxes, stem.valid, torch.tensor([box for _, _, box in rs]).to(dev), objects.cfg.match_iou
            )
            nll = -prob.gather(1, k[:, None])[:, 0].clamp(min=1e-6).log()
            loss = (nll * use).sum() / use.sum().clamp(min=1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        out.append(float(sum(losses) / max(len(losses), 1)))
        if after_epoch is not None:
            after_epoch(epoch, out[-1])
    objects.last = None
    objects.train(was)
    for p in params:
        p.grad = None
    objects.set_choice_trainable(objects.cfg.train_choice)
    return out
