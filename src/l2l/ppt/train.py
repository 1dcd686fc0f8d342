"""``l2l ppt train``: the point generator trained through the curriculum, resumable exactly.

Every draw is a function of (seed, phase, epoch, step): the epoch's sample order, the points P̂ drawn
in each pseudo mask's box, D_sem's flips. A checkpoint (``OUT/checkpoints/step_*``: the generator's
weights, Adam's state, the H_ref selection and which epoch it was made for) therefore resumes to the
same losses as an uninterrupted run. Losses go to ``OUT/log.jsonl``; the frozen encoders and mask
decoder are loaded by path (``dual_encoder``, ``mask_model``), never saved.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.vocab import SHAPE_WORDS
from ..engine import checkpoint as ckpt
from ..errors import UsageError
from ..utils.io import atomic_write_text
from ..utils.jsonl import cut_torn_tail, keep_records, read_records
from ..utils.progress import progress
from ..utils.run_folder import RunFolder
from ..utils.tensors import image_tensor
from ..utils.threads import torch_threads
from .config import PPTConfig
from .curriculum import Phase, plan, select
from .data import Labels, Pair, load_labels, square_mask, to_square
from .encoders import FrozenDualEncoder, FrozenMaskDecoder
from .generator import PPTModel
from .loss import Target, ppt_loss


def build_model(cfg: PPTConfig, device: str = "cpu") -> PPTModel:
    enc = FrozenDualEncoder.load(cfg.dual_encoder, device)
    dec = FrozenMaskDecoder.load(cfg.mask_model, cfg.image_size, device)
    return PPTModel(cfg.generator, enc, dec).to(device)


class Sources:
    """The four sources as pairs at the training size (images squared, H masks from the proposals)."""

    def __init__(self, labels: Labels, ds: Any, size: int, show_progress: bool = False):
        self.labels, self.size = labels, size
        self.h_sem = [i for i, h in enumerate(labels.h) if len(h.candidates) == 1]
        self.h_ref = [i for i, h in enumerate(labels.h) if len(h.candidates) > 1]
        self.images: dict[int, np.ndarray] = {}
        for iid in progress(sorted({h.image_id for h in labels.h}), desc="RES images", disable=not show_progress):
            x, _ = to_square(ds.load_image(iid), size)
            self.images[iid] = (x[0].permute(1, 2, 0) * 255).round().byte().numpy()
        self._masks: dict[tuple[int, int], np.ndarray] = {}
        self.selection = [-1] * len(self.h_ref)  # chosen candidate per H_ref pair (-1: not yet selected)

    def texts(self) -> list[str]:
        """Every sentence the sources can produce (D_sem's for every name of every shape)."""
        o = self.labels.objects
        out = [h.text for h in self.labels.h] + [o.ref(j).text for j in range(self.count("d_ref"))]
        return out + [f"the {w} in the middle" for ws in SHAPE_WORDS.values() for w in ws]

    def count(self, source: str) -> int:
        o = self.labels.objects
        return {
            "h_sem": len(self.h_sem),
            "h_ref": len(self.h_ref),
            "d_sem": len(o),
            "d_ref": o.composites if len(o) >= 4 else 0,
        }[source]

    def candidate_masks(self, h_index: int) -> list[np.ndarray]:
        h = self.labels.h[h_index]
        out = []
        for k in h.candidates:
            key = (h.image_id, k)
            if key not in self._masks:
                self._masks[key] = square_mask(self.labels.mask(h.image_id, k), self.size).numpy() > 0.5
            out.append(self._masks[key])
        return out

    def pair(self, source: str, i: int, rng: np.random.Generator) -> Pair:
        o = self.labels.objects
        if source == "d_sem":
            return o.sem(i, rng)
        if source == "d_ref":
            return o.ref(i)
        hi = self.h_sem[i] if source == "h_sem" else self.h_ref[i]
        h = self.labels.h[hi]
        masks = self.candidate_masks(hi)
        if source == "h_sem":
            scores = [1.0]
        else:
            sel = self.selection[i]
            scores = [1.0 if k == sel else 0.0 for k in range(len(masks))]
        return Pair(self.images[h.image_id], h.text, masks, scores)


def sample_points(mask: np.ndarray, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """§3.2: M points uniform in the mask's box, normalised to [0, 1]; labels: inside the mask."""
    s = mask.shape[0]
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        pts = rng.uniform(0, 1, (m, 2))
        return pts.astype(np.float32), np.zeros(m, np.float32)
    x = rng.uniform(xs.min(), xs.max() + 1, m)
    y = rng.uniform(ys.min(), ys.max() + 1, m)
    lab = mask[np.clip(y.astype(int), 0, s - 1), np.clip(x.astype(int), 0, s - 1)]
    return np.stack([x / s, y / s], 1).astype(np.float32), lab.astype(np.float32)


def make_batch(pairs: list[Pair], m: int, rng: np.random.Generator) -> tuple[torch.Tensor, list[str], list[Target]]:
    images = image_tensor(np.stack([p.image for p in pairs]))
    targets = []
    for p in pairs:
        pts, labs = zip(*(sample_points(mk, m, rng) for mk in p.masks))
        targets.append(
            Target(
                torch.from_numpy(np.stack(p.masks).astype(np.float32)),
                torch.from_numpy(np.stack(pts)),
                torch.from_numpy(np.stack(labs)),
                torch.tensor(p.scores),
            )
        )
    return images, [p.text for p in pairs], targets


class Schedule:
    """Global steps ↔ (phase, epoch, step in epoch), and each epoch's sample order."""

    def __init__(self, cfg: PPTConfig, sources: Sources):
        self.cfg, self.sources = cfg, sources
        self.phases = plan(cfg.curriculum)
        self.epochs: list[tuple[int, int, int, int]] = []  # (phase, epoch, first step, steps)
        step = 0
        for pi, ph in enumerate(self.phases):
            n = sum(sources.count(s) for s in ph.sources)
            steps = math.ceil(math.ceil(n * cfg.curriculum.epoch_fraction) / cfg.batch_size) if n else 0
            for e in range(ph.epochs):
                self.epochs.append((pi, e, step, steps))
                step += steps
        self.total = step

    def locate(self, step: int) -> tuple[int, int, int, int]:
        for pi, e, first, steps in self.epochs:
            if first <= step < first + steps:
                return pi, e, step - first, steps
        raise IndexError(step)

    def order(self, pi: int, epoch: int) -> list[tuple[str, int]]:
        ph = self.phases[pi]
        items = [(s, i) for s in ph.sources for i in range(self.sources.count(s))]
        perm = np.random.default_rng([self.cfg.seed, pi, epoch, 3]).permutation(len(items))
        keep = math.ceil(len(items) * self.cfg.curriculum.epoch_fraction)
        return [items[j] for j in perm[:keep]]


@torch.no_grad()
def run_select(model: PPTModel, sources: Sources, batch: int = 64) -> dict[str, Any]:
    """Select over H_ref (Eqs. 6–7) with the current model; returns how many referents changed."""
    was = model.training
    model.eval()
    before = list(sources.selection)
    for a in range(0, len(sources.h_ref), batch):
        idx = list(range(a, min(a + batch, len(sources.h_ref))))
        pairs = [sources.pair("h_ref", i, np.random.default_rng(0)) for i in idx]
        images = image_tensor(np.stack([p.image for p in pairs]))
        answers = model.predict(images, [p.text for p in pairs]) > 0.5
        chosen = select(list(answers), [torch.from_numpy(np.stack(p.masks)) for p in pairs])
        for i, c in zip(idx, chosen):
            sources.selection[i] = c
    model.train(was)
    return {"selected": len(before), "changed": sum(a != b for a, b in zip(before, sources.selection))}


def _same_run(config: dict[str, Any]) -> dict[str, Any]:
    """The config fields that define a run: the CPU thread count may change on resume."""
    return {k: v for k, v in config.items() if k != "threads"}


def train(
    cfg: PPTConfig,
    labels_dir: str | Path,
    ds: Any,
    out: str | Path,
    device: str = "cpu",
    max_steps: int | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume) a PPT run in ``out``; ``max_steps`` stops early (tests: an interrupted run)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_file = out / "config.json"
    doc = {"config": cfg.to_dict(), "labels": str(labels_dir)}
    if cfg_file.exists() and _same_run(json.loads(cfg_file.read_text())["config"]) != _same_run(cfg.to_dict()):
        raise UsageError(f"{out} holds a PPT run with another config ({cfg_file}); use another --out")
    atomic_write_text(cfg_file, json.dumps(doc, indent=2))
    with torch_threads(cfg.threads):
        labels = load_labels(labels_dir, cfg, show_progress)
        if labels.meta["fingerprint"] != ds.fingerprint():
            raise UsageError(f"{labels_dir} was prepared from another dataset than {ds.name}")
        sources = Sources(labels, ds, cfg.image_size, show_progress)
        torch.manual_seed(cfg.seed)
        model = build_model(cfg, device)
        model.encoders.prefill(sources.texts())
        opt = torch.optim.Adam(model.generator.parameters(), lr=cfg.lr, fused=True)
        sched = Schedule(cfg, sources)
        step, selected_for, before = 0, None, 0.0
        last = ckpt.latest(RunFolder(out).checkpoints)
        if last is not None:
            st = ckpt.load(last, model, opt)
            step = st["step"]
            sources.selection = list(st["extra"]["selection"])
            selected_for = tuple(st["extra"]["selected_for"]) if st["extra"]["selected_for"] else None
            before = float(st["extra"].get("elapsed", 0.0))
        end = sched.total if max_steps is None else min(sched.total, max_steps)
        # records logged after the checkpoint are logged again by the resumed steps (a selection at
        # step S runs after checkpoint S was saved); a torn last line is cut before appending
        keep_records(
            out / "log.jsonl", lambda r: r.get("step", 0) < step or (r.get("step", 0) == step and "select" not in r)
        )
        cut_torn_tail(out / "log.jsonl")
        log = (out / "log.jsonl").open("a")
        bar = progress(None, total=sched.total, initial=step, desc="ppt", disable=not show_progress)
        model.train()
        t0, first = time.time(), step
        order: list[tuple[str, int]] = []
        cur: tuple[int, int] | None = None
        while step < end:
            pi, epoch, k, steps = sched.locate(step)
            ph: Phase = sched.phases[pi]
            if cur != (pi, epoch):
                cur, order = (pi, epoch), sched.order(pi, epoch)
                if (ph.select == "epoch" or (ph.select == "start" and epoch == 0)) and selected_for != (pi, epoch):
                    info = run_select(model, sources)
                    selected_for = (pi, epoch)
                    log.write(json.dumps({"step": step, "phase": ph.name, "epoch": epoch, "select": info}) + "\n")
            rng = np.random.default_rng([cfg.seed, step, 5])
            items = order[k * cfg.batch_size : (k + 1) * cfg.batch_size]
            pairs = [sources.pair(s, i, rng) for s, i in items]
            images, texts, targets = make_batch(pairs, cfg.generator.points, rng)
            out_, state = model(images.to(device), texts)
            loss, logs = ppt_loss(model, state, out_, targets, cfg.loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == end:
                log.write(
                    json.dumps(
                        {
                            "step": step,
                            "phase": ph.name,
                            "epoch": epoch,
                            **{k2: round(v, 5) for k2, v in logs.items()},
                            "sec_per_step": round((time.time() - t0) / max(1, step - first), 4),
                            "elapsed": round(before + time.time() - t0, 1),
                        }
                    )
                    + "\n"
                )
                log.flush()
            if k == steps - 1 and epoch == ph.epochs - 1:  # the phase's last step
                log.write(
                    json.dumps({"step": step, "phase_end": ph.name, "elapsed": round(before + time.time() - t0, 1)})
                    + "\n"
                )
            if step % cfg.ckpt_every == 0 or step == end or k == steps - 1:
                ckpt.save(
                    RunFolder(out).checkpoints,
                    step,
                    model,
                    opt,
                    extra={
                        "selection": sources.selection,
                        "selected_for": list(selected_for or []),
                        "elapsed": before + time.time() - t0,
                    },
                    meta={"phase": ph.name, "epoch": epoch},
                )
                ckpt.prune(RunFolder(out).checkpoints, keep_last=2)
        bar.close()
        log.close()
    done = step >= sched.total
    ends = [r for r in read_records(out / "log.jsonl") if "phase_end" in r]
    prev, seconds = 0.0, {}
    for e in ends:
        seconds[e["phase_end"]] = round(e["elapsed"] - prev, 1)
        prev = e["elapsed"]
    res = {
        "steps": step,
        "total_steps": sched.total,
        "done": done,
        "phases": [{"name": p.name, "epochs": p.epochs, "sources": list(p.sources)} for p in sched.phases],
        "sources": {s: sources.count(s) for s in ("h_sem", "h_ref", "d_sem", "d_ref")},
        "seconds_per_phase": seconds,
        "threads": cfg.threads or torch.get_num_threads(),
    }
    if done:
        atomic_write_text(out / "done.json", json.dumps(res, indent=2))
    return res


def load_run(run: str | Path, device: str = "cpu") -> PPTModel:
    """The trained PPT model of a run folder (its newest checkpoint; frozen parts from their paths)."""
    run = Path(run)
    if not (run / "config.json").exists():
        raise UsageError(f"{run}: not a PPT run (config.json missing)")
    cfg = PPTConfig(**json.loads((run / "config.json").read_text())["config"])
    model = build_model(cfg, device)
    last = ckpt.latest(RunFolder(run).checkpoints)
    if last is None:
        raise UsageError(f"{run}: no checkpoint yet")
    ckpt.load(last, model, restore_rng=False)
    return model.eval()
