"""The one parameter-group helper: named parts of a model at their own learning-rate scale.

Used by the trainer (``optim.visual_lr_scale`` / ``text_lr_scale`` / ``objects_lr_scale``) and by the
stand-ins' training (``encoder_lr_scale``, a frozen encoder left out). Each group's ``lr_scale``
multiplies the schedule's learning rate; a group without it is at 1.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch


def param_groups(
    model: torch.nn.Module, parts: Mapping[str, torch.nn.Module | None], scales: Mapping[str, float | None]
) -> list[dict[str, Any]]:
    """The trainable parameters of ``model``: each part of ``parts`` whose scale differs from 1 in a group
    of its own (in the order of ``scales``; a part at ``None`` left out: frozen), the rest at 1. One group
    without ``lr_scale`` when nothing is scaled. A parameter shared by two parts goes to the first."""
    train = [p for p in model.parameters() if p.requires_grad]
    scaled = [(name, s) for name, s in scales.items() if s != 1.0 and parts.get(name) is not None]
    if not scaled:
        return [{"params": train}]
    groups: list[dict[str, Any]] = []
    taken: set[int] = set()
    for name, scale in scaled:
        part = parts[name]
        assert part is not None
        ids = {id(p) for p in part.parameters()} - taken
        taken |= ids
        if scale is not None:
            groups.append({"params": [p for p in train if id(p) in ids], "lr_scale": scale})
    groups.append({"params": [p for p in train if id(p) not in taken], "lr_scale": 1.0})
    return [g for g in groups if g["params"]]
