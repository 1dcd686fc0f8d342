"""Learning curves of competing student designs (issue 32): val oIoU overall and by expression kind at
several step counts, and seconds per step, on the same data, label budget and schedule.

    python benchmarks/student_curves.py --design base \\
        --design scene2=model.scene.enabled=true --fraction 100% --steps 500,1000,2000,3000 \\
        --out runs/curves/full.jsonl
    python benchmarks/student_curves.py --design oracle_box=model.sesm.enabled=true --oracle box ...

Every design is ``NAME`` or ``NAME=key=value,key=value`` (overrides of ``--config``, the SynthRef supervised
default). Each trains one run of ``max(--steps)`` steps (the poly schedule over that length: a point
at step 500 of a 3,000-step run is the model mid-schedule, not a 500-step run) through the trainer's own
``prepare`` and ``train_step``, and is evaluated at every step of ``--steps`` on ``--split`` at the
image's original resolution. Designs run one after the other in this process; run two processes for
two designs at once (one thread each, the default thread policy).

``--oracle box``: the model (with SESM's guidance input) receives the referred object's ground-truth
box as its guidance map, in training and at evaluation. It separates "finds the object" from "draws its
mask": with the box given, what is left is the mask inside it.

One JSON line per (design, step) goes to ``--out`` (appended; ``--plot`` draws the curves from it).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from l2l.config import load_config
from l2l.data.dataset import seed_worker
from l2l.data.refer import ReferDataset
from l2l.engine.stream import identity
from l2l.engine.trainer import TrainConfig, Trainer
from l2l.evaluation.inference import inference_on_dataset
from l2l.utils import threads as thread_policy


def box_lookup(ds: ReferDataset):
    """sample_id → the referred object's ground-truth box as a {0, 1} map at the image's size."""
    ann_of = {r.sample_id: r.ann_id for r in ds.samples()}

    def get(sample_id: int) -> np.ndarray:
        ann = ann_of[sample_id]
        h, w = ds.mask(ann).shape
        x, y, bw, bh = ds.box(ann)
        m = np.zeros((h, w), np.float32)
        m[int(y) : int(np.ceil(y + bh)), int(x) : int(np.ceil(x + bw))] = 1.0
        return m

    return get


@torch.no_grad()
def choice_accuracy(model, ds: ReferDataset, records, size: int, batch: int = 32) -> dict | None:
    """For a model with ``model.objects``: how often its choice (the most probable detection) boxes the
    referred object (box IoU ≥ 0.5 with the ground-truth box), how often any detection does ("found"),
    overall and by kind; None for other models."""
    from l2l.models.domain import model_input
    from l2l.utils.masks import paired_box_iou

    if getattr(model, "objects", None) is None:
        return None
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    right: dict[str, list[float]] = {}
    found: list[float] = []
    for i in range(0, len(records), batch):
        recs = records[i : i + batch]
        imgs = [ds.load_image(r.image_id) for r in recs]
        x = torch.cat([model_input(im, size, dev) for im in imgs])
        gt = torch.tensor(
            [
                [b[0] / im.shape[1], b[1] / im.shape[0], (b[0] + b[2]) / im.shape[1], (b[1] + b[3]) / im.shape[0]]
                for b, im in ((ds.box(r.ann_id), im) for r, im in zip(recs, imgs))
            ]
        )
        stem = model.stem(x)
        prob = model.objects.choice(stem, *model.text.encode([r.sentence for r in recs], dev))
        iou = paired_box_iou(stem.boxes, gt.to(dev)).masked_fill(~stem.valid, -1.0)
        hit = iou.gather(1, prob.argmax(-1, keepdim=True))[:, 0] >= 0.5
        found += (iou.amax(-1) >= 0.5).float().tolist()
        for r, h in zip(recs, hit.tolist()):
            right.setdefault(r.kind or "all", []).append(float(h))
            right.setdefault("_all", []).append(float(h))
    model.train(was)
    return {
        "choice_acc": round(100 * float(np.mean(right.pop("_all"))), 2),
        "found": round(100 * float(np.mean(found)), 2),
        "choice_by_kind": {k: round(100 * float(np.mean(v)), 2) for k, v in sorted(right.items())},
    }


@torch.no_grad()
def by_choice(ckpt: str, data: str, split: str, batch: int = 32) -> dict:
    """A saved model with ``model.objects`` on ``split``: oIoU and mIoU of the sentences whose choice is
    right (its most probable detection boxes the referred object at IoU ≥ 0.5) and of the others — how
    well the student draws once it has chosen, apart from how often it chooses well."""
    import torch.nn.functional as F

    from l2l.models.domain import model_input
    from l2l.models.segmenter import Segmenter
    from l2l.utils.masks import paired_box_iou

    m = Segmenter.from_pretrained(ckpt).eval()
    if m.objects is None:
        raise SystemExit(f"{ckpt}: the model has no object branch (model.objects)")
    ds = ReferDataset.synthref(data)
    recs = ds.samples(split)
    size = m.cfg.image_size
    acc: dict[bool, list] = {True: [0, 0, []], False: [0, 0, []]}
    for i in range(0, len(recs), batch):
        rs = recs[i : i + batch]
        imgs = [ds.load_image(r.image_id) for r in rs]
        x = torch.cat([model_input(im, size) for im in imgs])
        stem = m.stem(x)
        texts = [r.sentence for r in rs]
        prob = m.objects.choice(stem, *m.text.encode(texts))
        gt = torch.tensor(
            [
                [b[0] / im.shape[1], b[1] / im.shape[0], (b[0] + b[2]) / im.shape[1], (b[1] + b[3]) / im.shape[0]]
                for b, im in ((ds.box(r.ann_id), im) for r, im in zip(rs, imgs))
            ]
        )
        iou = paired_box_iou(stem.boxes, gt).masked_fill(~stem.valid, -1.0)
        right = (iou.gather(1, prob.argmax(-1, keepdim=True))[:, 0] >= 0.5).tolist()
        fg = m.forward_from_stem(stem, (size, size), texts).softmax(1)[:, 1:]
        for k, (r, im) in enumerate(zip(rs, imgs)):
            p = F.interpolate(fg[k : k + 1], size=im.shape[:2], mode="bilinear", align_corners=False)[0, 0] >= 0.5
            gtm = torch.from_numpy(ds.mask(r.ann_id) > 0)
            inter, union = int((gtm & p).sum()), int((gtm | p).sum())
            a = acc[bool(right[k])]
            a[0], a[1] = a[0] + inter, a[1] + union
            a[2].append(inter / max(union, 1))
    out = {"ckpt": ckpt, "split": split}
    for k, name in ((True, "choice_right"), (False, "choice_wrong")):
        i_, u_, per = acc[k]
        out[name] = {
            "sentences": len(per),
            "oIoU": round(100 * i_ / max(u_, 1), 2),
            "mIoU": round(100 * float(np.mean(per)) if per else 0.0, 2),
        }
    return out


def parse_design(text: str) -> tuple[str, list[str]]:
    name, _, rest = text.partition("=")
    return name, [o for o in rest.split(",") if o] if rest else []


def run_design(a, name: str, overrides: list[str]) -> None:
    steps = sorted({int(s) for s in a.steps.split(",")})
    cfg = load_config(
        TrainConfig,
        a.config,
        [
            f"data.root={a.data}",
            f"data.label_fraction={a.fraction}",
            f"total_steps={steps[-1]}",
            f"seed={a.seed}",
            "ckpt_every=1000000",
            *overrides,
        ],
    )
    run_dir = Path(a.work) / f"{name}_{a.fraction.replace('%', 'pct')}_s{a.seed}"
    tr = Trainer(cfg, run_dir, show_progress=False)
    tr.prepare(resume=False)
    ds = tr.dataset
    lookup = None
    if a.oracle == "box":
        if not getattr(tr.model, "uses_guidance", False):
            raise SystemExit(f"--oracle box needs a model with a guidance input (model.sesm.enabled=true): {name}")
        lookup = box_lookup(ds)
        tr.stream.labeled.prior_lookup = lookup
    splits = [x for x in a.split.split(",") if x]
    eval_sets = {sp: ds.samples(sp)[: a.eval_n] if a.eval_n else ds.samples(sp) for sp in splits}
    loader = DataLoader(
        tr.stream,
        batch_size=None,
        sampler=range(0, steps[-1]),
        collate_fn=identity,
        num_workers=cfg.data.workers,
        worker_init_fn=seed_worker,
        prefetch_factor=4 if cfg.data.workers > 0 else None,
    )
    if a.zero_shot and getattr(tr.model, "objects", None) is not None:  # the branch before any training
        for split, records in eval_sets.items():
            print(
                json.dumps(
                    {
                        "design": name,
                        "seed": a.seed,
                        "step": 0,
                        "split": split,
                        **(choice_accuracy(tr.model, ds, records, cfg.data.size) or {}),
                    }
                ),
                flush=True,
            )
    tr.model.train()
    step, busy, t_start = 0, 0.0, time.perf_counter()
    for lab, unl in loader:
        t0 = time.perf_counter()
        out, _ = tr.train_step(lab, unl)
        busy += time.perf_counter() - t0
        tr.state.step = step = step + 1
        if step in steps:
            for split, records in eval_sets.items():
                te = time.perf_counter()
                res = inference_on_dataset(
                    tr.model,
                    ds,
                    records,
                    cfg.data.size,
                    tr.device,
                    guidance="prior" if lookup is not None else "none",
                    prior_lookup=lookup,
                    show_progress=False,
                )
                choice = choice_accuracy(tr.model, ds, records, cfg.data.size)
                row = {
                    "design": name,
                    "overrides": overrides,
                    "oracle": a.oracle,
                    "fraction": a.fraction,
                    "seed": a.seed,
                    "step": step,
                    "split": split,
                    "samples": res["samples"],
                    "oIoU": round(100 * res["oIoU"], 2),
                    "mIoU": round(100 * res["mIoU"], 2),
                    "by_kind": {k: round(100 * v["oIoU"], 2) for k, v in res.get("oIoU_by_kind", {}).items()},
                    **(choice or {}),
                    "loss": round(float(out.loss.detach()), 4),
                    "s_per_step": round(busy / step, 4),
                    "wall_s": round(time.perf_counter() - t_start, 1),
                    "eval_s": round(time.perf_counter() - te, 1),
                    "params_M": round(sum(p.numel() for p in tr.model.parameters() if p.requires_grad) / 1e6, 3),
                    "cpu": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads(),
                    "date": time.strftime("%Y-%m-%d"),
                }
                print(json.dumps(row), flush=True)
                Path(a.out).parent.mkdir(parents=True, exist_ok=True)
                with open(a.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
            tr.model.train()
    if a.save:
        tr.model.save_pretrained(run_dir / "last")


def plot(path: str, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in open(path) if line.strip()]
    series: dict[str, list[dict]] = {}
    for r in rows:
        on = "" if r.get("split", "val") == "val" else f", {r['split']}"
        series.setdefault(f"{r['design']} ({r['fraction']}, seed {r['seed']}{on})", []).append(r)
    kinds = sorted({k for r in rows for k in r["by_kind"]})
    fig, axes = plt.subplots(1, 1 + len(kinds), figsize=(3.2 * (1 + len(kinds)), 3.2), sharey=True)
    for label, rs in sorted(series.items()):
        rs = sorted(rs, key=lambda r: r["step"])
        axes[0].plot([r["step"] for r in rs], [r["oIoU"] for r in rs], marker="o", label=label)
        for ax, k in zip(axes[1:], kinds):
            ax.plot([r["step"] for r in rs], [r["by_kind"].get(k, np.nan) for r in rs], marker=".")
    axes[0].set_title("oIoU (all)")
    axes[0].set_ylabel("oIoU, %")
    for ax, k in zip(axes[1:], kinds):
        ax.set_title(k)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/synthref_supervised.yaml")
    ap.add_argument("--data", default="runs/data/synthref")
    ap.add_argument("--design", action="append", default=[], help="NAME or NAME=key=value,key=value")
    ap.add_argument("--fraction", default="100%")
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--steps", default="500,1000,2000,3000")
    ap.add_argument(
        "--split", default="val", help="split(s) to evaluate, comma-separated (val,train: the generalisation gap)"
    )
    ap.add_argument("--eval-n", type=int, default=0, help="evaluate on each split's first N sentences (0: all)")
    ap.add_argument("--oracle", choices=("none", "box"), default="none")
    ap.add_argument(
        "--zero-shot", action="store_true", help="model.objects: print the branch's choice accuracy before training"
    )
    ap.add_argument("--work", default="runs/curves/work")
    ap.add_argument("--out", default="runs/curves/curves.jsonl")
    ap.add_argument("--save", action="store_true", help="keep each design's final model in WORK/<run>/last")
    ap.add_argument("--plot", metavar="PNG", help="draw the curves in --out into PNG and exit")
    ap.add_argument(
        "--by-choice",
        metavar="CKPT",
        help="a saved model with model.objects: oIoU where its choice is right and where it is wrong (--split), then exit",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the l2l policy, 1)")
    a = ap.parse_args()
    thread_policy.apply(a.threads)
    if a.plot:
        plot(a.out, a.plot)
        return
    if a.by_choice:
        for split in a.split.split(","):
            print(json.dumps(by_choice(a.by_choice, a.data, split)))
        return
    for d in a.design or ["base"]:
        run_design(a, *parse_design(d))


if __name__ == "__main__":
    main()
