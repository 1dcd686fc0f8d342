"""Trainable parameters of the paper-scale configuration (random weights), vs. the paper's App. B.4 Table 12.

    python benchmarks/param_count.py
Swin-B (embed 128, depths 2-2-18-2, heads 4-8-16-32, window 12) at 480² + BERT-base (12 layers, 768).
"""

from __future__ import annotations

import json

from l2l.config import load_config
from l2l.models.segmenter import ModelConfig, Segmenter

PAPER = {"baseline": 227.740, "sesm": 237.093}
SWIN_B = {
    "image_size": 480,
    "patch_size": 4,
    "embed_dim": 128,
    "depths": [2, 2, 18, 2],
    "num_heads": [4, 8, 16, 32],
    "window_size": 12,
}
BERT_BASE = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
}


def paper_config(sesm: bool, decoder_dim: int = 256) -> ModelConfig:
    cfg = load_config(
        ModelConfig,
        None,
        [
            "visual.name=swin",
            "visual.pretrained=false",
            "text.name=hf-config",
            f"sesm.enabled={str(sesm).lower()}",
            f"decoder_dim={decoder_dim}",
            "image_size=480",
        ],
    )
    cfg.visual.swin = dict(SWIN_B)
    cfg.text.hf_config = dict(BERT_BASE)
    return cfg


def count(model) -> dict[str, float]:
    parts = {"visual": model.visual, "text": model.text, "fusion": model.fusions, "decoder": model.decoder}
    out = {k: sum(p.numel() for p in m.parameters() if p.requires_grad) / 1e6 for k, m in parts.items()}
    out["total"] = sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6
    return {k: round(v, 3) for k, v in out.items()}


def main() -> None:
    res = {}
    for name, sesm in (("baseline", False), ("sesm", True)):
        res[name] = count(Segmenter(paper_config(sesm)))
        res[name]["paper_total"] = PAPER[name]
        res[name]["gap_pct"] = round(100 * (res[name]["total"] - PAPER[name]) / PAPER[name], 2)
    res["sesm_added"] = round(res["sesm"]["total"] - res["baseline"]["total"], 3)
    res["paper_sesm_added"] = round(PAPER["sesm"] - PAPER["baseline"], 3)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
