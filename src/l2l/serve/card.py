"""The model card shown beside a served model: what it was trained on, how, and how well it did.

Read from the run folder around the checkpoint (``config.yaml``: data, method, steps, resolution,
encoders; ``eval_*.json``: the evaluations made by ``l2l train`` / ``l2l eval``). A bare model
folder (``config.json`` + weights only) gives a card that says its training data is unknown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..utils.run_folder import RunFolder
from ..utils.run_paths import load_run_dict


@dataclass
class ModelCard:
    name: str
    path: str
    dataset: str = "unknown"
    data_root: str | None = None
    label_fraction: str | None = None
    method: str | None = None
    steps: int | None = None
    image_size: int | None = None
    visual: str | None = None
    text: str | None = None
    guidance: bool = False
    metrics: list[dict[str, Any]] = field(default_factory=list)  # one per eval file

    def markdown(self, modes: list[str] | None = None) -> str:
        """The card as a Markdown table; ``modes``: the guidance modes the page offers (default all three)."""
        offered = " / ".join(modes or ["none", "self", "prior"])
        rows = [
            ("trained on", self.dataset + (f" (`{self.data_root}`)" if self.data_root else "")),
            ("labels", self.label_fraction or "unknown"),
            ("method", self.method or "unknown"),
            ("steps", f"{self.steps:,}" if self.steps is not None else "unknown"),
            ("resolution", f"{self.image_size} px" if self.image_size else "unknown"),
            ("encoders", f"{self.visual} + {self.text}"),
            ("guidance (SESM)", f"yes: {offered}" if self.guidance else "no"),
        ]
        out = [f"**{self.name}** — `{self.path}`", "", "| | |", "| --- | --- |"]
        out += [f"| {k} | {v} |" for k, v in rows]
        for m in self.metrics:
            out.append(
                f"| {m['file']} | oIoU {m['oIoU']:.1%} · mIoU {m['mIoU']:.1%} · `P@0.5` {m['P@0.5']:.1%} "
                f"({m['samples']} samples) |"
            )
        if not self.metrics:
            out.append("| evaluation | none found beside the checkpoint |")
        return "\n".join(out)


def model_card(ckpt: str | Path, model: Any, name: str | None = None) -> ModelCard:
    """The card of the checkpoint ``ckpt`` (a run folder or a model folder) whose loaded ``model`` is given."""
    ckpt = Path(ckpt)
    cfg = load_run_dict(ckpt) or {}
    data = cfg.get("data") or {}
    mcfg = model.cfg
    card = ModelCard(
        name=name or ckpt.name,
        path=str(ckpt),
        dataset=(data.get("dataset") or "SynthRef") if data else "unknown",
        data_root=data.get("root"),
        label_fraction=str(data["label_fraction"]) if data.get("label_fraction") is not None else None,
        method=cfg.get("method"),
        steps=cfg.get("total_steps") if isinstance(cfg.get("total_steps"), int) else None,
        image_size=mcfg.image_size,
        visual=_visual_name(mcfg),
        text=_text_name(mcfg.text) if _towers(mcfg) != "clip" else "CLIP text tower",
        guidance=bool(model.uses_guidance),
    )
    run = RunFolder.find(ckpt, levels=1)
    for f in run.eval_files() if run else []:
        try:
            r = json.loads(f.read_text())
            card.metrics.append({"file": f.stem, **{k: r[k] for k in ("oIoU", "mIoU", "P@0.5", "samples")}})
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a damaged or foreign file is left out of the card
    return card


def _towers(mcfg: Any) -> str | None:
    """A CRIS model's tower kind (``clip`` or ``stand-in``), else ``None``."""
    if getattr(mcfg, "arch", "lavt") != "cris":
        return None
    return str((mcfg.cris.towers or {}).get("kind", "stand-in"))


def _visual_name(mcfg: Any) -> str:
    """The image encoder as a reader knows it; a CRIS model by its architecture and the dual encoder it started from."""
    kind = _towers(mcfg)
    if kind is not None:
        src = mcfg.cris.init_from or mcfg.cris.clip
        return f"CRIS on the {'CLIP' if kind == 'clip' else 'stand-in CLIP'} image tower (from {src})"
    return mcfg.visual.name + (f" (from {mcfg.visual.init_from})" if getattr(mcfg.visual, "init_from", None) else "")


def _text_name(tcfg: Any) -> str:
    """The text encoder as a reader knows it: a saved Hugging Face encoder (``hf-config``, the name the
    folder format uses) by its model type and size, e.g. ``bert (6 layers, 384-d)`` for MiniLM-L6."""
    if tcfg.name != "hf-config":
        return str(tcfg.name)
    hf = getattr(tcfg, "hf_config", None) or {}
    kind = hf.get("model_type", "Hugging Face encoder")
    size = ", ".join(
        x
        for x in (
            f"{hf['num_hidden_layers']} layers" if "num_hidden_layers" in hf else "",
            f"{hf['hidden_size']}-d" if "hidden_size" in hf else "",
        )
        if x
    )
    return f"{kind} ({size})" if size else str(kind)
