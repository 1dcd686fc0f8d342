"""The click correction and the simulated annotator (l2l.label.clicks, issue 36)."""

from __future__ import annotations

import numpy as np
import pytest

from l2l.errors import UsageError
from l2l.label.clicks import Click, ClickCorrection, next_click, simulate
from l2l.utils.masks import mask_iou


def _square(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_next_click_takes_the_largest_error_at_its_centre():
    truth = _square(20, 20, 2, 9, 2, 9)  # 7×7 object
    empty = np.zeros_like(truth)
    assert next_click(empty, truth) == Click(5.0, 5.0, True)  # the object's centre, positive
    wrong = _square(20, 20, 10, 19, 10, 19)  # a 9×9 false positive beats the 7×7 false negative
    assert next_click(wrong, truth) == Click(14.0, 14.0, False)
    assert next_click(truth, truth) is None
    edge = _square(20, 20, 0, 3, 0, 20)  # along the border: the border counts as the region's edge
    c = next_click(empty, edge)
    assert c is not None and c.positive and c.y == 1.0
    with pytest.raises(UsageError, match="differ in size"):
        next_click(empty[:5], truth)


class _Recorder:
    """A promptable mask model that returns the union of 3×3 squares around its positive points."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.shape = (1, 1)

    def set_image(self, image):
        self.shape = image.shape[:2]

    def predict(self, point_coords=None, point_labels=None, box=None, multimask_output=True):
        self.calls.append((None if point_coords is None else point_coords.copy(), point_labels, box))
        m = np.zeros(self.shape, bool)
        for (x, y), lab in zip(
            point_coords if point_coords is not None else [], [] if point_labels is None else point_labels
        ):
            if lab == 1:
                m[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2] = True
        return m[None], np.array([0.9])


def test_correction_sends_every_click_and_undo():
    rec = _Recorder()
    img = np.zeros((12, 12, 3), np.uint8)
    start = _square(12, 12, 0, 2, 0, 2)
    cc = ClickCorrection.start(rec, img, start)
    assert np.array_equal(cc.mask, start) and not rec.calls  # no click yet: the start mask, no model call
    cc.add(Click(5, 5, True))
    cc.add(Click(8, 8, False))
    pts, labels, box = rec.calls[-1]
    assert pts.tolist() == [[5, 5], [8, 8]] and labels.tolist() == [1, 0] and box is None
    assert cc.mask.sum() == 9 and len(cc.seconds) == 2
    cc.undo()
    assert rec.calls[-1][0].tolist() == [[5, 5]]
    cc.undo()
    assert np.array_equal(cc.mask, start)  # back to the start
    with pytest.raises(UsageError, match="differ in size"):
        ClickCorrection.start(rec, img, start[:4])


def test_simulate_stops_at_the_target_or_the_click_budget():
    rec = _Recorder()
    img = np.zeros((12, 12, 3), np.uint8)
    truth = _square(12, 12, 4, 7, 4, 7)  # exactly one 3×3 square: one positive click at its centre
    out = simulate(rec, img, truth, None, max_clicks=5, target_iou=0.9)
    assert out["ious"] == [0.0, 1.0] and out["clicks"] == [(5.0, 5.0, True)]
    big = _square(12, 12, 0, 12, 0, 12)
    out = simulate(rec, img, big, None, max_clicks=3)
    assert len(out["ious"]) == 4 and all(c[2] for c in out["clicks"])  # three clicks, every one positive
    assert simulate(rec, img, truth, truth)["ious"] == [1.0]  # accepted as it is


def test_stand_in_mask_model_corrects_a_synthref_object(synthref):
    from l2l.foundation.folders import resolve_model_path
    from l2l.foundation.mask_model import MaskPredictor

    pred = MaskPredictor.from_pretrained(resolve_model_path("builtin:synthpool-sam"))
    r = synthref.samples("train")[0]
    image, truth = synthref.load_image(r.image_id), synthref.mask(r.ann_id)
    out = simulate(pred, image, truth, None, max_clicks=3, target_iou=0.99)
    assert out["ious"][0] == 0.0 and max(out["ious"]) > 0.5  # clicks on the object find it
    cc = ClickCorrection.start(pred, image)
    for x, y, p in out["clicks"]:
        cc.add(Click(x, y, p))
    assert mask_iou(cc.mask, truth) == pytest.approx(out["ious"][-1])  # the same clicks, the same mask
