"""What the labeling page does, without the page (issue 36, item 2): one tab's view of a project.

A :class:`LabelTab` shows one task at a time — the next unanswered training ref in the project's queue
(``PROJECT/queue.json``, written by ``l2l label rank``; else ref order; skipped ones come last) — with a
start mask: the prior of its first sentence at 0.5 when a prior store is given, else the current model's
mask when a model is given, else none. The person accepts the shown mask (one key), rejects the sentence,
skips, or corrects with positive / negative clicks (and a box, two corner clicks) through the promptable mask model
(:class:`~l2l.label.clicks.ClickCorrection`, the image embedded once per task); every click returns the new
mask at once. ``undo_click`` takes a click back, ``undo_answer`` the tab's last answer. The time from
showing a task to its answer is recorded with the answer.

Each tab keeps the revision of the task it shows; an answer from a tab whose task was answered elsewhere
meanwhile raises :class:`~l2l.label.project.Conflict`, and the tab moves on to the next task.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UsageError
from .clicks import Click, ClickCorrection
from .project import LabelProject, Task


@dataclass
class LabelTab:
    project: LabelProject
    masker: Any  # a SAM2-shaped promptable mask model (set_image / predict)
    priors: Any = None  # a PriorStore (or anything with get(sample_id))
    model: Any = None  # a SegmenterPredictor: its mask is the start when there is no prior
    task: Task | None = None
    rev: int = 0
    start: str = "none"  # where the start mask came from: prior | model | none
    correction: ClickCorrection | None = None
    shown_at: float = 0.0
    history: list[int] = field(default_factory=list)  # ref ids this tab answered, last last
    _image: np.ndarray | None = None
    _corner: tuple[float, float] | None = None  # the first corner of a box being drawn

    # ------------------------------------------------------------------ which task
    def queue(self) -> list[int]:
        path = self.project.folder / "queue.json"
        order = [int(r) for r in json.loads(path.read_text())["refs"]] if path.exists() else []
        seen = set(order)
        return [r for r in order if r in self.project.tasks] + [r for r in sorted(self.project.tasks) if r not in seen]

    def next_task(self) -> Task | None:
        """Show the next unanswered task (skipped ones after all the others); None when all are answered."""
        answers = self.project.annotations()
        order = self.queue()
        todo = [r for r in order if r not in answers] + [
            r for r in order if answers.get(r, {}).get("status") == "skipped"
        ]
        return self.show(todo[0]) if todo else None

    def show(self, ref_id: int) -> Task:
        task = self.project._task(ref_id)
        image = self.project.source.load_image(task.image_id)
        mask, self.start = None, "none"
        if self.priors is not None:
            p = self.priors.get(task.sentences[0][0])
            if p is not None:
                mask, self.start = np.asarray(p) >= 0.5, "prior"
        if mask is None and self.model is not None:
            self.model.set_image(image)
            mask, self.start = self.model.predict(task.sentences[0][1])[0], "model"
        self.task, self.rev, self._image, self._corner = task, self.project.revision(ref_id), image, None
        self.correction = ClickCorrection.start(self.masker, image, mask)
        self.shown_at = time.perf_counter()
        return task

    @property
    def image(self) -> np.ndarray:
        self._need()
        assert self._image is not None
        return self._image

    @property
    def mask(self) -> np.ndarray:
        return self._need().mask

    def _need(self) -> Any:
        if self.correction is None or self.task is None:
            raise UsageError("no task shown: call next_task() first (or every task is answered)")
        return self.correction

    # ------------------------------------------------------------------ clicks
    def click(self, x: float, y: float, positive: bool = True) -> np.ndarray:
        return self._need().add(Click(float(x), float(y), bool(positive)))

    def box_corner(self, x: float, y: float) -> np.ndarray:
        """A box prompt by two corners: the first click is remembered, the second sets the box (beside the
        clicks) and the mask model answers."""
        c = self._need()
        if self._corner is None:
            self._corner = (float(x), float(y))
            return c.mask
        (x0, y0), self._corner = self._corner, None
        c.box = (min(x0, x), min(y0, y), max(x0, x), max(y0, y))
        c.mask = c._predict()
        return c.mask

    def undo_click(self) -> np.ndarray:
        return self._need().undo()

    def restart(self) -> np.ndarray:
        """Forget the clicks and the start mask: an empty mask, the next click starts afresh."""
        c = self._need()
        c.clicks.clear()
        c.box, self._corner = None, None
        c._start = np.zeros_like(c.mask)
        c.mask = c._start.copy()
        return c.mask

    # ------------------------------------------------------------------ answers
    def _answer(self, status: str, mask: np.ndarray | None, sentences: dict[int, str] | None) -> int:
        c, task = self._need(), self.task
        assert task is not None
        clicks = [(k.x, k.y, k.positive) for k in c.clicks]
        try:
            self.project.answer(
                task.ref_id,
                status,
                mask,
                rev=self.rev,
                clicks=clicks,
                seconds=time.perf_counter() - self.shown_at,
                sentences=sentences,
                box=c.box,
            )
        finally:
            self.task, self.correction = None, None
        self.history.append(task.ref_id)
        return task.ref_id

    def accept(self, sentences: dict[int, str] | None = None) -> int:
        """The shown mask is the answer: ``accepted`` when no click changed it, else ``corrected``."""
        c = self._need()
        return self._answer("corrected" if c.clicks or c.box is not None else "accepted", c.mask, sentences)

    def reject(self) -> int:
        return self._answer("rejected", None, None)

    def skip(self) -> int:
        return self._answer("skipped", None, None)

    def undo_answer(self) -> Task | None:
        """Take back this tab's last answer and show its task again."""
        if not self.history:
            return None
        ref_id = self.history.pop()
        self.project.undo(ref_id, rev=self.project.revision(ref_id))
        return self.show(ref_id)
