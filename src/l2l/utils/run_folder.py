"""The layout of a run folder — the one place that knows it (issue 35 step 6).

A training run (``l2l train``, a grid cell, a labeling round, ``l2l ppt train``) writes::

    RUN/config.yaml          the run's config as given      RUN/paths.json   its paths, movable (run_paths)
    RUN/env.json             versions, sizes, the method    RUN/metrics.jsonl  one record per log point
    RUN/label_split.json     the labeled images             RUN/tb/            TensorBoard
    RUN/checkpoints/step_N/  resumable checkpoints          RUN/best/, RUN/last/  saved models
    RUN/eval_<split>.json    the trainer's evaluation       RUN/eval_<split>_<guidance>_<resolution>.json  ``l2l eval``

The trainer, the segmenter's and the teacher prior's loaders, the CLI, the experiment runner and the
reports name these places through :class:`RunFolder`; the checkpoint format inside ``checkpoints/``
is :mod:`l2l.engine.checkpoint`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunFolder:
    root: Path

    def __init__(self, root: str | Path):  # a str is taken too (frozen: set through object)
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def paths(self) -> Path:
        return self.root / "paths.json"

    @property
    def env(self) -> Path:
        return self.root / "env.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def label_split(self) -> Path:
        return self.root / "label_split.json"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tb"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        return self.root / "best"

    @property
    def last(self) -> Path:
        return self.root / "last"

    @staticmethod
    def eval_name(split: str, guidance: str | None = None, resolution: str | None = None) -> str:
        """``eval_<split>.json`` (the trainer's), or with ``guidance`` and ``resolution`` ``l2l eval``'s."""
        if guidance is None and resolution is None:
            return f"eval_{split}.json"
        return f"eval_{split}_{guidance}_{resolution}.json"

    def eval_file(self, split: str, guidance: str | None = None, resolution: str | None = None) -> Path:
        return self.root / self.eval_name(split, guidance, resolution)

    def eval_files(self) -> list[Path]:
        return sorted(self.root.glob("eval_*.json"))

    def is_run(self) -> bool:
        return self.config.exists()

    @classmethod
    def find(cls, path: str | Path | None, levels: int = 2) -> "RunFolder | None":
        """The run folder of ``path`` (a run folder, a model folder inside one such as ``RUN/best``, or a
        checkpoint ``RUN/checkpoints/step_N``): the first of it and its parents that holds ``config.yaml``."""
        if path is None:
            return None
        p = Path(path)
        for q in [p, *p.parents][: levels + 1]:
            if cls(q).is_run():
                return cls(q)
        return None

    @staticmethod
    def saved_model(path: str | Path) -> Path | None:
        """The model folder of ``path`` — itself, else the run's ``best/``, else its ``last/`` — that holds
        ``config.json`` and ``model.safetensors``; None when none does."""
        run = RunFolder(path)
        for q in (run.root, run.best, run.last):
            if (q / "config.json").exists() and (q / "model.safetensors").exists():
                return q
        return None
