"""The mllm-sam2 path with a real-architecture SAM2 (random weights) and scripted grounding answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from l2l.foundation.mask_model import Sam2MaskPredictor
from l2l.priors.base import PriorInput
from l2l.priors.mllm_sam2 import EMPTY_CONFIDENCE, MLLMSam2Provider
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
    return Sam2MaskPredictor(Sam2Model(Sam2Config()))  # the real architecture, random weights


def test_boxes_become_soft_masks_and_failures_empty_priors(sam2, tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    batch = [PriorInput(1, img, "the man on the left"), PriorInput(2, img, "the cup"), PriorInput(3, img, "a dog")]
    answers = {
        1: 'Sure.\n```json\n[{"bbox_2d": [28, 28, 140, 112], "label": "man"}]\n```',
        2: "I cannot find it.",
        3: '```json\n[{"bbox_2d": [900, 900, 990, 990]}]\n```',
    }  # outside the processed image
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
        Sam2MaskPredictor.from_pretrained(tmp_path)


def _tiny_qwen(tmp_path):
    """A tiny random Qwen2.5-VL with a tiny tokenizer that knows Qwen's special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"]
    words = [
        "system",
        "user",
        "assistant",
        "you",
        "are",
        "a",
        "helpful",
        "locate",
        "the",
        "in",
        "image",
        "and",
        "output",
        "its",
        "bounding",
        "box",
        "as",
        "json",
        "bbox_2d",
        "label",
        "x1",
        "y1",
        "x2",
        "y2",
        "red",
        "ball",
        "[",
        "]",
        "{",
        "}",
        '"',
        ":",
        ",",
        ".",
        "...",
    ] + [str(i) for i in range(10)]
    vocab = {t: i for i, t in enumerate(special + ["[UNK]"] + words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        unk_token="[UNK]",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=special[1:],
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in special}
    cfg = Qwen2_5_VLConfig(
        text_config=dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=len(vocab),
            rope_scaling={"type": "mrope", "mrope_section": [4, 2, 2]},
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, fullatt_block_indexes=[1]
        ),
        image_token_id=ids["<|image_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    return Qwen2_5_VLForConditionalGeneration(cfg), tok


def test_qwen_grounder_end_to_end_with_tiny_models(sam2, tmp_path):
    from transformers import Qwen2VLImageProcessor

    from l2l.foundation.qwen_grounder import QwenGrounder

    model, tok = _tiny_qwen(tmp_path)
    g = QwenGrounder(
        model, tok, Qwen2VLImageProcessor(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16), max_new_tokens=8
    )
    img = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    batch = [PriorInput(1, img, "the red ball"), PriorInput(2, img[:100], "the ball")]
    answers = g(batch)
    assert len(answers) == 2 and all(isinstance(a, str) for a, _ in answers)
    assert all(h % 28 == 0 and w % 28 == 0 for _, (h, w) in answers)  # processed sizes: multiples of 28
    recs = MLLMSam2Provider(g, sam2)(batch)  # random weights answer no box: empty, logged priors
    assert [r.prob.shape for r in recs] == [(120, 160), (100, 160)]
    assert all(r.confidence == EMPTY_CONFIDENCE or r.prob.max() > 0 for r in recs)
    assert "qwen2.5-vl" == MLLMSam2Provider(g, sam2).config()["grounder"]["grounder"]


def test_qwen_prompt_uses_the_tokenizers_chat_template(tmp_path):
    from transformers import Qwen2VLImageProcessor

    from l2l.foundation.qwen_grounder import QwenGrounder

    model, tok = _tiny_qwen(tmp_path)
    g = QwenGrounder(model, tok, Qwen2VLImageProcessor(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16))
    tok.chat_template = None
    written_out = g._text("the red ball", 3)
    # the shape of Qwen2.5-VL's template: system turn, user turn with the image then the text, assistant prompt
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
        "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    assert g._text("the red ball", 3) == written_out
    assert written_out.count("<|image_pad|>") == 3
