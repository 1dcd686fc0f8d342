"""Text encoders: real MiniLM offline, a tiny random BERT from a config, the hashed tiny encoder."""

from __future__ import annotations

import pytest
import torch

from l2l.nets.text_encoders import HFTextEncoder, TinyTextEncoder

TEXTS = ["the man on the left", "a red ball", ""]


def test_minilm_real_weights_token_features():
    enc = HFTextEncoder.from_pretrained().eval()
    with torch.no_grad():
        tok, mask = enc.encode(TEXTS)
    assert enc.dim == 384 and tok.shape[0] == 3 and tok.shape[-1] == 384 and mask.shape == tok.shape[:2]
    assert mask[0].sum() > mask[1].sum() > mask[2].sum() >= 2  # [CLS] ... [SEP]
    with torch.no_grad():
        again, _ = enc.encode(TEXTS[:1])
    assert torch.allclose(again[0], tok[0, : again.shape[1]], atol=1e-4)  # padding does not change tokens


def test_tiny_random_bert_from_config_and_gradients():
    from transformers import BertConfig

    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    enc = HFTextEncoder.from_config(cfg)
    tok, mask = enc.encode(TEXTS)
    assert tok.shape[-1] == 32 and enc.dim == 32
    tok[mask].sum().backward()
    assert enc.model.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="vocab_size"):
        HFTextEncoder.from_config(
            BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
        )


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        HFTextEncoder.from_pretrained(tmp_path)


def test_tiny_encoder_shapes_masks_and_stability():
    torch.manual_seed(0)
    enc = TinyTextEncoder(dim=32)
    tok, mask = enc.encode(TEXTS)
    assert tok.shape == (3, 5, 32) and mask.tolist()[1] == [True, True, True, False, False]
    assert mask[2, 0] and not mask[2, 1:].any()
    assert enc._ids("red ball") == TinyTextEncoder(dim=32)._ids("red ball")  # no per-process hashing
    # padding does not leak into real tokens
    t1, _ = enc.encode(TEXTS[1:2])
    assert torch.allclose(t1[0], tok[1, :3], atol=1e-5)
