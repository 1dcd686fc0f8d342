"""Qwen2.5-VL, the real grounder behind the stand-in's interface (:mod:`l2l.foundation.grounder`), as used by
the ``mllm-sam2`` prior (docs/spec.md §3; the paper uses Qwen2.5-VL-7B).

For each (image, sentence) the model is asked for the referred object's box in its grounding
format (JSON with ``bbox_2d`` in pixels of the processed image). The chat prompt is built here
from Qwen's template — ``<|im_start|>`` turns, the image as ``<|vision_start|>`` + one
``<|image_pad|>`` per merged patch + ``<|vision_end|>`` — so that only the slow
``Qwen2VLImageProcessor`` (numpy/PIL) and the model's tokenizer are needed (the fast processor
stack wants torchvision). Generation is greedy, batched with left padding, bf16 on GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import MissingFileError

PROMPT = (
    'Locate "{sentence}" in the image and output its bounding box as JSON '
    '[{{"bbox_2d": [x1, y1, x2, y2], "label": "..."}}].'
)
SYSTEM = "You are a helpful assistant."


class QwenGrounder:
    def __init__(
        self,
        model,
        tokenizer,
        image_processor,
        max_new_tokens: int = 64,
        device: str = "cpu",
        source: str = "config",
        prompt: str = PROMPT,
    ):
        self.model, self.tokenizer, self.ip = model.to(device).eval(), tokenizer, image_processor
        self.max_new_tokens, self.device, self.source, self.prompt = max_new_tokens, device, source, prompt
        self.merge = int(getattr(image_processor, "merge_size", 2))
        self.patch = int(getattr(image_processor, "patch_size", 14))
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or "<|endoftext|>"
        self.tokenizer.padding_side = "left"

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str = "cpu", max_new_tokens: int = 64, max_pixels: int = 1280 * 28 * 28
    ) -> "QwenGrounder":
        from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessor

        path = Path(path)
        if not (path / "config.json").exists():
            raise MissingFileError(f"Qwen2.5-VL: no local Hugging Face folder at {path} (config.json missing)")
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(path), local_files_only=True, dtype=dtype)
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        ip = Qwen2VLImageProcessor.from_pretrained(str(path), local_files_only=True, max_pixels=max_pixels)
        return cls(model, tok, ip, max_new_tokens, device, str(path))

    def config(self) -> dict[str, Any]:
        return {
            "grounder": "qwen2.5-vl",
            "model": self.source,
            "max_new_tokens": self.max_new_tokens,
            "prompt": self.prompt,
            "max_pixels": getattr(self.ip, "max_pixels", None),
        }

    def _text(self, sentence: str, n_image_tokens: int) -> str:
        """The prompt: the tokenizer's own chat template when it has one (real Qwen2.5-VL folders do),
        with the image placeholder expanded to ``n_image_tokens`` pads; else Qwen's format written out."""
        if getattr(self.tokenizer, "chat_template", None):
            messages = [
                {"role": "system", "content": SYSTEM},
                {
                    "role": "user",
                    "content": [{"type": "image"}, {"type": "text", "text": self.prompt.format(sentence=sentence)}],
                },
            ]
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            if isinstance(text, str) and text.count("<|image_pad|>") == 1:
                return text.replace("<|image_pad|>", "<|image_pad|>" * n_image_tokens)
        return (
            f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n<|vision_start|>"
            + "<|image_pad|>" * n_image_tokens
            + f"<|vision_end|>{self.prompt.format(sentence=sentence)}<|im_end|>\n<|im_start|>assistant\n"
        )

    @torch.no_grad()
    def __call__(self, batch: Sequence[Any]) -> list[tuple[str, tuple[int, int]]]:
        """(answer text, processed image (H, W)) per input with ``.image`` and ``.sentence`` (a prior's
        ``PriorInput``)."""
        vis = self.ip(images=[b.image for b in batch], return_tensors="pt")
        grid = vis["image_grid_thw"]  # (B, 3): t, h, w in patches
        n_tok = (grid.prod(-1) // (self.merge**2)).tolist()
        texts = [self._text(b.sentence, n) for b, n in zip(batch, n_tok)]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True)
        gen = self.model.generate(
            input_ids=enc["input_ids"].to(self.device),
            attention_mask=enc["attention_mask"].to(self.device),
            pixel_values=vis["pixel_values"].to(self.device, self.model.dtype),
            image_grid_thw=grid.to(self.device),
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
        )
        new = gen[:, enc["input_ids"].shape[1] :]
        answers = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        sizes = [(int(g[1]) * self.patch, int(g[2]) * self.patch) for g in grid]  # processed image (H, W)
        return list(zip(answers, sizes))
