"""The mllm-sam2 path with a real-architecture SAM2 (random weights) and scripted grounding answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from l2l.priors.base import PriorInput
from l2l.priors.mllm_sam2 import EMPTY_CONFIDENCE, MLLMSam2Provider, Sam2BoxSegmenter
from l2l.priors.store import PriorStore


class ScriptedGrounder:
    """Stands in for Qwen2.5-VL: returns fixed answers in its output format (the real wrapper is issue 4)."""

    def __init__(self, answers, processed_hw):
        self.answers, self.processed_hw = answers, processed_hw

    def config(self):
        return {"grounder": "scripted-test"}

    def __call__(self, batch):
        return [(self.answers[b.sample_id], self.processed_hw) for b in batch]


@pytest.fixture(scope="module")
def sam2():
    from transformers import Sam2Config, Sam2Model

    torch.manual_seed(0)
    return Sam2BoxSegmenter(Sam2Model(Sam2Config()))  # the real architecture, random weights


def test_boxes_become_soft_masks_and_failures_empty_priors(sam2, tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    batch = [PriorInput(1, img, "the man on the left"), PriorInput(2, img, "the cup"), PriorInput(3, img, "a dog")]
    answers = {1: 'Sure.\n```json\n[{"bbox_2d": [28, 28, 140, 112], "label": "man"}]\n```',
               2: "I cannot find it.",
               3: '```json\n[{"bbox_2d": [900, 900, 990, 990]}]\n```'}  # outside the processed image
    prov = MLLMSam2Provider(ScriptedGrounder(answers, (112, 168)), sam2)
    a, b, c = prov(batch)
    assert a.prob.shape == (120, 160) and a.prob.dtype == np.float32
    assert 0 <= a.prob.min() and a.prob.max() <= 1 and len(np.unique(a.prob)) > 10  # soft, not thresholded
    x, y, w, h = a.cue["box"]
    assert (x, y, w, h) == pytest.approx((160 / 168 * 28, 120 / 112 * 28, 160 / 168 * 112, 120 / 112 * 84))
    for r in (b, c):
        assert r.prob.max() == 0 and r.confidence == EMPTY_CONFIDENCE and r.provenance["empty_reason"]
    st = PriorStore(tmp_path)
    st.generate(prov, [1, 2, 3], lambda sid: batch[sid - 1], show_progress=False)
    assert len(st) == 3 and st.meta["config"]["grounder"]["grounder"] == "scripted-test"


def test_missing_sam2_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        Sam2BoxSegmenter.from_pretrained(tmp_path)
