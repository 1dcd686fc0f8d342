"""RES metrics against hand-computed intersections and unions, empty masks, and exactly-once gathering."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as tmp

from l2l.evaluation.metrics import RESEvaluator, SampleScore, intersection_union, summarize


def _mask(h, w, box):
    m = torch.zeros(h, w, dtype=torch.bool)
    y0, y1, x0, x1 = box
    m[y0:y1, x0:x1] = True
    return m


def test_hand_computed_values():
    # sample 1: pred 4x4 at (0,0), gt 4x4 at (2,2): I = 4, U = 28
    # sample 2: perfect 2x5: I = U = 10
    # sample 3: empty prediction of a 3x3 target: I = 0, U = 9
    # sample 4: empty prediction of an empty target: I = U = 0 -> IoU 0, adds nothing to oIoU
    pred = torch.stack(
        [_mask(8, 8, (0, 4, 0, 4)), _mask(8, 8, (1, 3, 1, 6)), _mask(8, 8, (0, 0, 0, 0)), _mask(8, 8, (0, 0, 0, 0))]
    )
    gt = torch.stack(
        [_mask(8, 8, (2, 6, 2, 6)), _mask(8, 8, (1, 3, 1, 6)), _mask(8, 8, (5, 8, 5, 8)), _mask(8, 8, (0, 0, 0, 0))]
    )
    inter, union = intersection_union(pred, gt)
    assert inter.tolist() == [4, 10, 0, 0] and union.tolist() == [28, 10, 9, 0]
    ev = RESEvaluator()
    ev.process([1, 2, 3, 4], pred, gt, n_words=[2, 5, 8, 12], kinds=["a", "a", "b", "b"])
    r = ev.evaluate()
    assert r["samples"] == 4
    assert r["oIoU"] == pytest.approx(14 / 47)
    assert r["mIoU"] == pytest.approx((4 / 28 + 1 + 0 + 0) / 4)
    assert r["P@0.5"] == 0.25 and r["P@0.9"] == 0.25
    assert r["oIoU_by_length"] == {
        "1-3": {"oIoU": pytest.approx(4 / 28), "samples": 1},
        "4-6": {"oIoU": 1.0, "samples": 1},
        "7-10": {"oIoU": 0.0, "samples": 1},
        "11+": {"oIoU": 0.0, "samples": 1},
    }
    assert r["oIoU_by_kind"]["a"]["oIoU"] == pytest.approx(14 / 38)


def test_precision_uses_greater_or_equal_and_ignore_pixels():
    s = [SampleScore(0, 5, 10), SampleScore(1, 6, 10), SampleScore(2, 9, 10)]
    r = summarize(s)
    assert r["P@0.5"] == 1.0 and r["P@0.6"] == pytest.approx(2 / 3) and r["P@0.9"] == pytest.approx(1 / 3)
    pred, gt = _mask(4, 4, (0, 4, 0, 2))[None], _mask(4, 4, (0, 4, 0, 1))[None]
    ign = _mask(4, 4, (0, 4, 1, 2))[None]
    i, u = intersection_union(pred, gt, ign)
    assert (i.item(), u.item()) == (4, 4)
    with pytest.raises(ValueError, match="differ in shape"):
        intersection_union(pred, gt[:, :2])


def test_repeated_samples_count_once_and_original_resolution():
    ev = RESEvaluator()
    a, b = _mask(6, 9, (0, 3, 0, 3)), _mask(6, 9, (0, 3, 0, 6))
    ev.process_one(7, a, b, n_words=3)
    ev.process_one(7, a, b, n_words=3)  # a padded duplicate
    ev.process_one(8, _mask(5, 5, (0, 5, 0, 5)), _mask(5, 5, (0, 5, 0, 5)))  # another image size
    r = ev.evaluate()
    assert r["samples"] == 2 and r["oIoU"] == pytest.approx((9 + 25) / (18 + 25))
    ev.reset()
    assert ev.evaluate()["samples"] == 0


def _worker(rank, world, port, out):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    ev = RESEvaluator()
    # 5 samples split over 2 ranks; rank 1 repeats sample 0 as a sampler's padding would
    ids = [0, 2, 4] if rank == 0 else [1, 3, 0]
    for i in ids:
        ev.process_one(i, _mask(4, 4, (0, 2, 0, i % 4 + 1)), _mask(4, 4, (0, 2, 0, 2)), n_words=i + 1)
    out[rank] = ev.evaluate()
    dist.destroy_process_group()


def test_two_process_gather_counts_each_sample_once():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp.Manager().dict()
    tmp.spawn(_worker, args=(2, port, out), nprocs=2, join=True)
    single = RESEvaluator()
    for i in range(5):
        single.process_one(i, _mask(4, 4, (0, 2, 0, i % 4 + 1)), _mask(4, 4, (0, 2, 0, 2)), n_words=i + 1)
    ref = single.evaluate()
    assert out[0] == out[1] == ref and ref["samples"] == 5


def test_mask_box_and_box_iou():
    from l2l.utils.masks import box_iou, mask_box

    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    assert mask_box(m) == [3.0, 2.0, 9.0, 5.0] and mask_box(m, "xywh") == [3.0, 2.0, 6.0, 3.0]
    with pytest.raises(ValueError, match="empty"):
        mask_box(np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="xyxy or xywh"):
        mask_box(m, "cxcywh")
    assert box_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7) and box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0
