"""How far the object branch's choice can learn from SynthRef's labels alone (issue 32, model.objects).

The branch's detector is frozen, so every training image's objects (the fused map, the boxes) can be
computed once and cached; the choice network (object tokens + transformer with the words) is then
trained on every labeled sentence with the choice loss alone (−log π of the detection that boxes the
referred object), many epochs a minute. This measures the choice's own learning curve — its val
accuracy (the most probable detection at box IoU ≥ 0.5 with the referred object) by expression kind,
against epochs and seconds — apart from the segmenter, whose training gives it 16 sentences a step.

    python benchmarks/choice_fit.py --epochs 8 --out runs/choice_fit/fit.jsonl

Each row also gives the detector's recall on val (the same for every epoch: the detector is frozen):
the share of sentences whose referred object has a detection at box IoU ≥ 0.5 (the choice's ceiling),
the share of all annotated objects detected, and the share of images with every object detected
(ordinal and relation sentences count and compare the *other* objects too).

Designs of the choice's training measured with it (docs/model.md, the fifth round): ``--flip``,
``--relation-bias``, ``--lr``; ``--dropout P`` (the choice transformer's dropout during the pre-fit);
``--tta`` (evaluation with test-time flip averaging); ``--pool N --pool-ratio R`` (N pool scenes of the pretraining world, indices after the grounder's own
training and evaluation scenes, their shifted-dialect sentences mixed into every epoch, R per labeled
sentence: continued pretraining beside the fit, against memorising SynthRef's labels).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from l2l.data.refer import ReferDataset
from l2l.data.splits import LabelSplit, make_split
from l2l.models.domain import model_input
from l2l.models.object_choice import (
    ExtraChoiceItems,
    ObjectChoice,
    ObjectsConfig,
    ObjectStem,
    prefit_choice,
)
from l2l.nets.text_encoders import HFTextEncoder
from l2l.utils import threads as thread_policy
from l2l.utils.masks import paired_box_iou

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import cpu_name  # noqa: E402


@torch.no_grad()
def cache(branch: ObjectChoice, ds: ReferDataset, image_ids: list[int], size: int, batch: int = 64, flip: bool = False):
    """image_id → (fused map, boxes, valid) of the frozen detector (on the mirrored images with ``flip``)."""
    out = {}
    for i in range(0, len(image_ids), batch):
        ids = image_ids[i : i + batch]
        x = torch.cat([model_input(ds.load_image(j), size) for j in ids])
        dmap, boxes, valid = branch.detect(x.flip(-1) if flip else x)
        for k, j in enumerate(ids):
            out[j] = (dmap[k], boxes[k], valid[k])
    return out


def stack(objs, recs, boxes_gt):
    dmap = torch.stack([objs[r.image_id][0] for r in recs])
    n = max(int(objs[r.image_id][1].shape[0]) for r in recs)
    boxes = torch.stack([objs[r.image_id][1][:n] for r in recs])
    valid = torch.stack([objs[r.image_id][2][:n] for r in recs])
    return ObjectStem(None, dmap, boxes, valid), torch.tensor([boxes_gt[r.sample_id] for r in recs])


def detection_recall(ds: ReferDataset, objs, recs, boxes_gt) -> dict:
    """The frozen detector's recall on ``recs``' images (module docstring), in %."""
    target = []
    for r in recs:
        _, boxes, valid = objs[r.image_id]
        iou = paired_box_iou(boxes[None], torch.tensor([boxes_gt[r.sample_id]])).masked_fill(~valid[None], -1.0)
        target.append(float(iou.max() >= 0.5))
    found, whole = [], []
    for j in sorted({r.image_id for r in recs}):
        h, w = ds.load_image(j).shape[:2]
        _, boxes, valid = objs[j]
        hits = []
        for a in ds.image_anns(j):
            x, y, bw, bh = ds.box(a)
            gt = torch.tensor([[x / w, y / h, (x + bw) / w, (y + bh) / h]])
            hits.append(float(paired_box_iou(boxes[None], gt).masked_fill(~valid[None], -1.0).max() >= 0.5))
        found += hits
        whole.append(float(all(hits)))
    return {
        "referred": round(100 * float(np.mean(target)), 2),
        "objects": round(100 * float(np.mean(found)), 2),
        "images_all_found": round(100 * float(np.mean(whole)), 2),
    }


@torch.no_grad()
def pool_items(branch: ObjectChoice, count: int, batch: int = 64) -> ExtraChoiceItems:
    """The sentences of ``count`` pool scenes after the shipped grounder's training and evaluation
    scenes (its card's indices), with the frozen detector's objects (fused maps kept in float16)."""
    from l2l.pretrain.grounder import GrounderTrainConfig, grounding_pool
    from l2l.utils.folders import resolve_model_path

    card = json.loads((resolve_model_path(branch.cfg.path) / "card.json").read_text())
    start = card["training_data"]["eval_indices"][1] + 1
    images, exprs, _ = grounding_pool(GrounderTrainConfig(**card["config"]), start, count)
    objects = {}
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i : i + batch]).permute(0, 3, 1, 2).float() / 255
        dmap, boxes, valid = branch.detect(x)
        for k in range(len(x)):
            objects["pool", i + k] = (dmap[k].half(), boxes[k], valid[k])
    s = images.shape[1]
    items = [(("pool", i), text, tuple(c / s for c in box)) for i, _, text, box, _ in exprs]
    return ExtraChoiceItems(objects, items, 0)


def mirrored_votes(
    prob_m: torch.Tensor, boxes_m: torch.Tensor, valid_m: torch.Tensor, boxes: torch.Tensor
) -> torch.Tensor:
    """B×K: the choice on the mirrored image (its boxes mapped back), given to each original detection
    from the mirrored detection that overlaps it most (box IoU ≥ 0.5; else 0)."""
    back = torch.stack([1 - boxes_m[..., 2], boxes_m[..., 1], 1 - boxes_m[..., 0], boxes_m[..., 3]], -1)
    iou = torch.stack([paired_box_iou(back, boxes[:, k]) for k in range(boxes.shape[1])], 1)  # B×K×L
    best, idx = iou.masked_fill(~valid_m[:, None, :], -1.0).max(-1)
    return torch.where(best >= 0.5, prob_m.gather(1, idx), torch.zeros_like(best))


def evaluate(branch, text, objs, recs, boxes_gt, batch: int = 128, mirrored=None) -> dict:
    """Choice accuracy on ``recs``; with ``mirrored`` (the detector's objects of the mirrored images),
    also test-time flip averaging: π + the mirrored image's choice for the sentence with left and right
    swapped (``tta_acc``)."""
    from l2l.data.text_augment import flip_directions

    branch.eval()
    tta: list[float] = []
    right: dict[str, list[float]] = {}
    missed: dict[str, int] = {}  # wrong choices while the referred object was detected, by kind
    with torch.no_grad():
        for i in range(0, len(recs), batch):
            rs = recs[i : i + batch]
            stem, gt = stack(objs, rs, boxes_gt)
            prob = branch.choice(stem, *text.encode([r.sentence for r in rs]))
            iou = paired_box_iou(stem.boxes, gt).masked_fill(~stem.valid, -1.0)
            hit = (iou.gather(1, prob.argmax(-1, keepdim=True))[:, 0] >= 0.5).tolist()
            found = (iou.max(-1).values >= 0.5).tolist()
            if mirrored is not None:
                stem_m, _ = stack(mirrored, rs, boxes_gt)
                prob_m = branch.choice(stem_m, *text.encode([flip_directions(r.sentence) for r in rs]))
                both = (prob + mirrored_votes(prob_m, stem_m.boxes, stem_m.valid, stem.boxes)) * stem.valid
                tta += (iou.gather(1, both.argmax(-1, keepdim=True))[:, 0] >= 0.5).float().tolist()
            for r, h, f in zip(rs, hit, found):
                right.setdefault(r.kind, []).append(float(h))
                right.setdefault("_all", []).append(float(h))
                if f and not h:
                    missed[r.kind] = missed.get(r.kind, 0) + 1
    branch.train()
    return {
        "acc": round(100 * float(np.mean(right.pop("_all"))), 2),
        "by_kind": {k: round(100 * float(np.mean(v)), 2) for k, v in sorted(right.items())},
        "wrong_with_object_detected": dict(sorted(missed.items())),
        **({"tta_acc": round(100 * float(np.mean(tta)), 2)} if tta else {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="runs/data/synthref")
    ap.add_argument("--grounder", default="builtin:synthpool-grounder")
    ap.add_argument("--fraction", default="100%", help="labeled share of the training images (split seed 22)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--flip", action="store_true", help="model.objects.prefit_flip: mirrored images too")
    ap.add_argument("--relation-bias", action="store_true", help="model.objects.relation_bias")
    ap.add_argument("--dropout", type=float, default=0.0, help="the choice transformer's dropout during the fit")
    ap.add_argument("--pool", type=int, default=0, help="pool scenes whose sentences join every epoch (0: none)")
    ap.add_argument("--pool-ratio", type=float, default=1.0, help="pool sentences per labeled sentence per epoch")
    ap.add_argument("--tta", action="store_true", help="also evaluate with test-time flip averaging (tta_acc)")
    ap.add_argument("--out", default="runs/choice_fit/fit.jsonl")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the l2l policy, 1)")
    a = ap.parse_args()
    thread_policy.apply(a.threads)
    torch.manual_seed(0)
    ds = ReferDataset.synthref(a.data)
    branch = ObjectChoice(
        ObjectsConfig(enabled=True, path=a.grounder, stages=False, prefit_flip=a.flip, relation_bias=a.relation_bias),
        (1, 1, 1, 1),
    )
    for layer in branch.net.body.layers:  # nn.TransformerEncoderLayer: attention and feed-forward dropout
        layer.dropout.p = layer.dropout1.p = layer.dropout2.p = a.dropout
        layer.self_attn.dropout = a.dropout
    text = HFTextEncoder.from_pretrained().freeze(cache=True)
    split: LabelSplit = make_split(ds.name, ds.image_ids("train"), a.fraction, 22)
    labeled = set(split.labeled)
    train = [r for r in ds.samples("train") if r.image_id in labeled]
    val = ds.samples("val")
    t0 = time.perf_counter()
    objs = cache(branch, ds, sorted({r.image_id for r in val}), a.size)  # prefit_choice caches the training images
    mirrored = cache(branch, ds, sorted({r.image_id for r in val}), a.size, flip=True) if a.tta else None
    sizes = {j: ds.load_image(j).shape[:2] for j in objs}
    boxes_gt = {}
    for r in val:
        h, w = sizes[r.image_id]
        x, y, bw, bh = ds.box(r.ann_id)
        boxes_gt[r.sample_id] = [x / w, y / h, (x + bw) / w, (y + bh) / h]
    t_cache = time.perf_counter() - t0
    recall = detection_recall(ds, objs, val, boxes_gt)
    extra = None
    if a.pool:
        extra = pool_items(branch, a.pool)
        extra.per_epoch = int(a.pool_ratio * len(train))
    holder = torch.nn.Module()  # what prefit_choice reads: .objects, .text and a parameter's device
    holder.objects, holder.text = branch, text
    branch.cfg.prefit_lr, branch.cfg.prefit_batch = a.lr, a.batch
    clock = {"t": time.perf_counter(), "busy": 0.0}

    def report(epoch: int, loss: float | None) -> None:
        clock["busy"] += time.perf_counter() - clock["t"]
        row = {
            "fraction": a.fraction,
            "flip": a.flip,
            "relation_bias": a.relation_bias,
            "dropout": a.dropout,
            "pool": a.pool,
            "pool_ratio": a.pool_ratio if a.pool else None,
            "epoch": epoch,
            "train_sentences": len(train),
            "val": evaluate(branch, text, objs, val, boxes_gt, mirrored=mirrored),
            "val_detection_recall": recall,
            "loss": None if loss is None else round(loss, 4),
            "train_s": round(clock["busy"], 1) if epoch else 0.0,
            "val_cache_s": round(t_cache, 1),
            "lr": a.lr,
            "batch": a.batch,
            "cpu": cpu_name(),
            "date": time.strftime("%Y-%m-%d"),
        }
        print(json.dumps(row), flush=True)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        with open(a.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        clock["t"] = time.perf_counter()

    report(0, None)
    clock["busy"] = 0.0
    prefit_choice(holder, ds, train, a.size, seed=0, epochs=a.epochs, after_epoch=report, extra=extra)


if __name__ == "__main__":
    main()
