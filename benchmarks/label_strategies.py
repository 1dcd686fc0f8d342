"""The labeling loop with a simulated annotator (issue 36, item 5): which strategy spends the labels best.

    python benchmarks/label_strategies.py --strategy disagreement --seed 22 --out runs/labelsim/rows.jsonl

One chain per (strategy, seed), through the toolkit's own pieces: a :class:`~l2l.label.project.LabelProject`
over SynthRef's training refs; round 0 labels ``--start`` images in the hash order of ``--seed`` (the
same images for every strategy of a seed); then, each round, for every training ref of the new images the
simulated annotator (:func:`l2l.label.clicks.simulate`, the stand-in mask model) starts from the prior's mask
and clicks until IoU ≥ 0.9 or 5 clicks, and the project saves the answer (``accepted`` without a click,
else ``corrected``) — the *clicked* mask is the label, not the true one; ``l2l train`` trains the
supervised student from scratch on the project's dataset (``--steps`` × ``--batch``, one thread); the trained
model and the priors score the unlabeled images (:mod:`l2l.label.strategies`) and the strategy picks the
next ones. Rows (one per round: labeled images and sentences, clicks so far, the labels' mean IoU with the
truth, val oIoU) are appended to ``--out``; a rerun continues where a chain stopped (the project, the run
folders and the rows persist).

``--plot FILE`` draws val oIoU against labeled images, labeled sentences and clicks from the rows of
``--out``; ``--table`` prints them as a markdown table (mean ± std over seeds).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from l2l.data.splits import rank_key
from l2l.data.synthref_lang import KINDS
from l2l.foundation.mask_model import MaskPredictor
from l2l.label.clicks import simulate
from l2l.label.project import LabelProject
from l2l.label.strategies import STRATEGIES, candidates, image_feature, rank_images
from l2l.models.predictor import SegmenterPredictor
from l2l.priors.store import PriorStore
from l2l.utils import threads as thread_policy
from l2l.utils.folders import resolve_model_path
from l2l.utils.jsonl import append_record, read_records

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import cpu_name  # noqa: E402


def annotate(project: LabelProject, images: list[int], masker, priors: PriorStore | None, max_clicks: int) -> None:
    """The simulated annotator answers every unanswered training ref of ``images``."""
    done = project.annotations()
    for t in (t for t in project.tasks.values() if t.image_id in set(images) and t.ref_id not in done):
        image, truth = project.source.load_image(t.image_id), project.source.mask(t.ann_id)
        p = None if priors is None else priors.get(t.sentences[0][0])
        start = None if p is None else p >= 0.5
        t0 = time.perf_counter()
        out = simulate(masker, image, truth, start, max_clicks, 0.9)
        mask = out["mask"]
        status = "accepted" if not out["clicks"] else "corrected"
        if not mask.any():  # nothing the mask model could draw: a person would draw it; the truth stands in
            mask, status = truth, "corrected"
        project.answer(
            t.ref_id,
            status,
            mask,
            rev=project.revision(t.ref_id),
            clicks=out["clicks"],
            seconds=time.perf_counter() - t0,
            source="simulated",
        )


def label_iou(project: LabelProject) -> float:
    from l2l.utils.masks import mask_iou

    ious = [mask_iou(project.mask(r), project.source.mask(project.tasks[r].ann_id)) for r in project.annotations()]
    return float(np.mean(ious)) if ious else 0.0


def train(project: LabelProject, run: Path, a: argparse.Namespace) -> dict:
    if not (run / "eval_val.json").exists():
        cmd = [
            sys.executable,
            "-m",
            "l2l.cli",
            "train",
            "--config",
            a.config,
            "--out",
            str(run),
            f"total_steps={a.steps}",
            f"batch_size={a.batch}",
            f"seed={a.seed}",
            f"ckpt_every={a.steps}",
            *project.train_overrides(),
        ]
        env = {**os.environ, "L2L_THREADS": "1", "OMP_NUM_THREADS": "1"}
        with open(run.parent / f"{run.name}.log", "w") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    return json.loads((run / "eval_val.json").read_text())


def first_round(a: argparse.Namespace, masker, priors: PriorStore, n0: int) -> Path:
    """Round 0 of a seed, shared by every strategy's chain: ``n0`` images in the seed's hash order,
    annotated and trained once (under a lock, so that parallel chains wait for it)."""
    start = Path(a.work) / f"start_s{a.seed}"
    start.mkdir(parents=True, exist_ok=True)
    with open(start / ".lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        if not (start / "done").exists():
            project = (
                LabelProject(start / "project")
                if (start / "project" / "project.json").exists()
                else LabelProject.create(start / "project", a.data)
            )
            images = sorted({t.image_id for t in project.tasks.values()}, key=lambda i: rank_key(a.seed, i))[:n0]
            annotate(project, images, masker, priors, a.max_clicks)
            train(project, start / f"round_{len(project.labeled_images())}", a)
            (start / "done").write_text("")
    return start


def chain(a: argparse.Namespace) -> None:
    root = Path(a.work) / f"{a.strategy}_s{a.seed}"
    masker = MaskPredictor.from_pretrained(resolve_model_path(a.mask_model))
    priors = PriorStore(a.priors)
    sizes = [int(s) for s in a.sizes.split(",")]
    if not (root / "project" / "project.json").exists():
        shutil.copytree(
            first_round(a, masker, priors, sizes[0]),
            root,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(".lock", "done"),
        )
    project = LabelProject(root / "project")
    train_images = sorted({t.image_id for t in project.tasks.values()})
    rows = [r for r in read_records(a.out) if r.get("chain") == root.name] if Path(a.out).exists() else []
    labeled = project.labeled_images()
    for n in sizes:
        if any(r["labeled_images"] == n for r in rows):
            continue
        if len(labeled) < n:  # pick with the model of the round before
            prev = root / f"round_{len(labeled)}"
            pred = SegmenterPredictor.from_pretrained(prev / "last", domain_check=False)
            rest = [i for i in train_images if i not in set(labeled)]
            cands = candidates(pred, project.source, rest, priors)
            feats = []
            if "diversity" in a.strategy:
                for i in labeled:
                    pred.set_image(project.source.load_image(i))
                    feats.append(image_feature(pred._stem))
            picks = rank_images(cands, a.strategy, n - len(labeled), seed=a.seed, labeled_features=feats)
            annotate(project, picks, masker, priors, a.max_clicks)
            labeled = project.labeled_images()
        t0 = time.time()
        ev = train(project, root / f"round_{len(labeled)}", a)
        st = project.status()
        row = {
            "chain": root.name,
            "strategy": a.strategy,
            "seed": a.seed,
            "labeled_images": len(labeled),
            "labeled_sentences": sum(len(t.sentences) for t in project.tasks.values() if t.image_id in set(labeled)),
            "clicks": st["clicks"],
            "accepted": st["accepted"],
            "corrected": st["corrected"],
            "label_iou": round(label_iou(project), 4),
            "val_oIoU": round(100 * ev["oIoU"], 2),
            "val_mIoU": round(100 * ev["mIoU"], 2),
            "steps": a.steps,
            "batch": a.batch,
            "train_s": round(time.time() - t0, 1),
            "cpu": cpu_name(),
            "date": time.strftime("%Y-%m-%d"),
        }
        append_record(a.out, row)
        rows.append(row)
        print(json.dumps(row), flush=True)


def plot(rows: list[dict], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for strat in sorted({r["strategy"] for r in rows}):
        for ax, x in zip(axes, ("labeled_images", "labeled_sentences", "clicks")):
            by_n: dict[int, list[dict]] = {}
            for r in rows:
                if r["strategy"] == strat:
                    by_n.setdefault(r["labeled_images"], []).append(r)
            ns = sorted(by_n)
            xs = [np.mean([r[x] for r in by_n[n]]) for n in ns]
            ys = [np.mean([r["val_oIoU"] for r in by_n[n]]) for n in ns]
            ax.plot(
                xs, ys, marker="o", label=f"{strat} ({len({r['seed'] for r in rows if r['strategy'] == strat})} seeds)"
            )
    for ax, x in zip(axes, ("labeled images", "labeled sentences", "clicks (simulated annotator)")):
        ax.set_xlabel(x)
        ax.set_ylabel("val oIoU (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("SynthRef, supervised student trained on the clicked labels")
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def table(rows: list[dict]) -> str:
    """Markdown: val oIoU (mean ± std over seeds, n) per strategy and labeled-image count, with the mean
    labeled sentences and clicks."""
    sizes = sorted({r["labeled_images"] for r in rows})
    out = ["| strategy | " + " | ".join(f"{n} images" for n in sizes) + " |", "| --- |" + " --- |" * len(sizes)]
    for strat in sorted({r["strategy"] for r in rows}, key=lambda s: (s != "random", s)):
        cells = []
        for n in sizes:
            rs = [r for r in rows if r["strategy"] == strat and r["labeled_images"] == n]
            if not rs:
                cells.append("–")
                continue
            v = np.array([r["val_oIoU"] for r in rs])
            sd = f" ± {v.std(ddof=1):.2f}" if len(v) > 1 else ""
            sents = np.mean([r["labeled_sentences"] for r in rs])
            clicks = np.mean([r["clicks"] for r in rs])
            cells.append(f"{v.mean():.2f}{sd} ({len(v)}; {sents:.0f} sent., {clicks:.0f} clicks)")
        out.append(f"| {strat} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def scenes(work: str) -> str:
    """Markdown: what each chain's labeled images hold — objects and training refs per image, and the share
    of each expression kind among their refs (SynthRef's instance annotations: analysis only)."""
    out = [
        "| chain | labeled images | objects / image | refs / image | " + " | ".join(KINDS) + " |",
        "| --- | --- | --- | --- |" + " --- |" * len(KINDS),
    ]
    ds = None
    for d in sorted(Path(work).glob("*_s*")):
        if d.name.startswith("start") or not (d / "project" / "project.json").exists():
            continue
        p = LabelProject(d / "project")
        ds = p.source
        lab = set(p.labeled_images())
        refs = [t for t in p.tasks.values() if t.image_id in lab]
        kinds = [str(ds.refs[t.ref_id].get("kind", "")) for t in refs]
        shares = " | ".join(f"{kinds.count(k) / max(1, len(kinds)):.2f}" for k in KINDS)
        out.append(
            f"| {d.name} | {len(lab)} | {np.mean([len(ds.image_anns(i)) for i in lab]):.2f} | "
            f"{len(refs) / max(1, len(lab)):.2f} | {shares} |"
        )
    if ds is not None:
        train = ds.image_ids("train")
        refs_all = [r for r in ds.refs.values() if r["split"] == "train"]
        kinds = [str(r.get("kind", "")) for r in refs_all]
        shares = " | ".join(f"{kinds.count(k) / len(kinds):.2f}" for k in KINDS)
        out.append(
            f"| all training images | {len(train)} | {np.mean([len(ds.image_anns(i)) for i in train]):.2f} | "
            f"{len(refs_all) / len(train):.2f} | {shares} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategy", choices=STRATEGIES)
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--data", default="runs/data/synthref")
    ap.add_argument("--priors", default="runs/data/synthref_priors")
    ap.add_argument("--config", default="configs/synthref_supervised.yaml")
    ap.add_argument("--mask-model", default="builtin:synthpool-sam")
    ap.add_argument("--sizes", default="8,16,24,40", help="labeled images after each round (the first: random)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-clicks", type=int, default=5)
    ap.add_argument("--work", default="runs/labelsim")
    ap.add_argument("--out", required=True)
    ap.add_argument("--plot", default=None, help="draw the rows of --out into this PNG")
    ap.add_argument("--table", action="store_true", help="print the rows of --out as a markdown table")
    ap.add_argument("--scenes", action="store_true", help="print what each chain's labeled images hold (--work)")
    a = ap.parse_args()
    if a.scenes:
        print(scenes(a.work))
        return
    if a.plot or a.table:
        if a.plot:
            plot(read_records(a.out), a.plot)
        if a.table:
            print(table(read_records(a.out)))
        return
    if not a.strategy:
        ap.error("--strategy is required (or --plot)")
    thread_policy.apply()
    chain(a)


if __name__ == "__main__":
    main()
