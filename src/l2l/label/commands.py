"""The ``l2l label`` commands (issue 36, item 4): init, serve, rank, train, status.

``train`` is one round of the loop: train the chosen method on what is labeled so far (the project's
dataset and split; a semi-supervised method sees the unlabeled rest with its priors), write the round's
val oIoU to ``PROJECT/rounds.jsonl`` (the page's status panel reads it), and, with ``--strategy``, rank the
unlabeled images with the new model into ``PROJECT/queue.json`` so that the page continues with them.
"""

from __future__ import annotations

import json
import time
from typing import Any, Sequence

from ..errors import UsageError
from ..utils.io import atomic_write_text
from ..utils.jsonl import append_record
from ..utils.run_folder import RunFolder
from .project import LabelProject


def init(
    folder: str,
    data: str | None = None,
    images: str | None = None,
    sentences: str | None = None,
    dataset: str | None = None,
    split_by: str | None = None,
    image_dir: str | None = None,
) -> LabelProject:
    if (data is None) == (images is None):
        raise UsageError("l2l label init: give --data DATASET (SynthRef / REFER) or --images DIR --sentences FILE")
    if images is not None:
        if sentences is None:
            raise UsageError("l2l label init --images needs --sentences FILE (JSON lines or IMAGE<TAB>SENTENCE)")
        return LabelProject.from_images(folder, images, sentences)
    assert data is not None
    return LabelProject.create(folder, data, dataset, split_by, image_dir)


def rank(
    project: LabelProject,
    model: str,
    strategy: str,
    k: int,
    priors: str | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Rank the unlabeled images with ``model`` (a run or model folder) and write ``PROJECT/queue.json``."""
    from ..models.predictor import SegmenterPredictor
    from ..priors.store import PriorStore
    from .strategies import candidates, image_feature, rank_images

    labeled = set(project.labeled_images())
    rest = sorted({t.image_id for t in project.tasks.values()} - labeled)
    if not rest:
        raise UsageError(f"{project.folder}: every image is labeled; nothing to rank")
    pred = SegmenterPredictor.from_pretrained(model, device, domain_check=False)
    store = PriorStore(priors) if priors else None
    needs_prior = strategy in ("disagreement", "rple-state", "disagreement+diversity")
    if needs_prior and store is None:
        raise UsageError(f"strategy {strategy!r} reads the priors: give --priors STORE")
    cands = (
        candidates(pred, project.source, rest, store)
        if strategy != "random"
        else [_bare(t) for t in project.tasks.values() if t.image_id in set(rest)]
    )
    feats = []
    if "diversity" in strategy:
        for i in sorted(labeled):
            pred.set_image(project.source.load_image(i))
            feats.append(image_feature(pred._stem))
    picks = rank_images(cands, strategy, k, seed, feats)
    order = {i: n for n, i in enumerate(picks)}
    refs = sorted(
        (t for t in project.tasks.values() if t.image_id in order), key=lambda t: (order[t.image_id], t.ref_id)
    )
    doc = {
        "strategy": strategy,
        "model": str(model),
        "k": k,
        "images": picks,
        "refs": [t.ref_id for t in refs],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    atomic_write_text(project.folder / "queue.json", json.dumps(doc, indent=1) + "\n")
    return doc


def _bare(task):
    from .strategies import Candidate

    return Candidate(task.sentences[0][0], task.image_id)


def train(
    project: LabelProject,
    config: str | None,
    out: str,
    overrides: Sequence[str] = (),
    method: str | None = None,
    strategy: str | None = None,
    k: int = 8,
    priors: str | None = None,
    resume: bool = True,
) -> dict[str, Any]:
    """One round: train on the project's dataset, record the round, rank the next images (``strategy``)."""
    from ..config import load_config
    from ..engine.trainer import TrainConfig, Trainer

    project.export(project.folder / "dataset")  # the dataset as of now (a crash after the last answer)
    if project.status()["labeled_images"] == 0:
        raise UsageError(f"{project.folder}: no image is labeled yet (every training ref of an image answered)")
    ov = [*overrides, *project.train_overrides()] + ([f"method={method}"] if method else [])
    cfg = load_config(TrainConfig, config, ov)
    if cfg.data.eval_split != "none" and cfg.data.eval_split not in project.source.splits:
        raise UsageError(
            f"{project.folder}: the source has no {cfg.data.eval_split!r} split to evaluate a round on "
            f"(it has {project.source.splits}); give data.eval_split=SPLIT, or data.eval_split=none to train "
            "without one"
        )
    res = Trainer(cfg, out).fit(resume=resume)
    split = cfg.data.eval_split
    r = res["results"] or (None if split == "none" else json.loads(RunFolder(out).eval_file(split).read_text()))
    rounds = project.folder / "rounds.jsonl"
    n = sum(1 for _ in rounds.open()) + 1 if rounds.exists() else 1
    st = project.status()
    row = {
        "round": n,
        "run": str(out),
        "method": cfg.method,
        "labeled_images": st["labeled_images"],
        "answered": st["answered"],
        "clicks": st["clicks"],
        "seconds": st["seconds"],
        "eval_split": split,
        "oIoU": None if r is None else round(100 * r["oIoU"], 2),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    append_record(rounds, row)
    if strategy:
        row["queue"] = rank(project, str(RunFolder(out).last), strategy, k, priors)["images"]
    return row
