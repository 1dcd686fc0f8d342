"""The ``supervised`` method: labeled loss only (docs/spec.md §2, ``L_s``).

``L_s = CE_w(f(x, t, g), y)``: 2-class cross-entropy with class weights (0.9, 1.1) [ours: the
LAVT values], pixels with label 255 ignored. ``sup_dice`` > 0 [ours, issue 32] adds
``sup_dice · Dice`` (the soft Dice of :func:`~l2l.semi.losses.dice_on_selected`): on SynthRef the
referred object covers ~2.4 % of the image (RefCOCO's ~15 %), and CE alone spends hundreds of steps
predicting background everywhere. Each sample's loss is the weighted mean over
its own pixels, and the batch loss is the mean over samples [ours], so that N processes with
batch B give exactly the gradient of one process with batch N·B (DDP averages per-process
means).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ...data.augment import IGNORE_INDEX
from ...data.dataset import LabeledBatch
from ...engine.method import DataContext, MethodData, StepOutput, labeled_data, unwrap
from ...models.object_choice import choice_loss_per_sample
from ..losses import dice_on_selected

if TYPE_CHECKING:
    from ...schema import TrainConfig

CLASS_WEIGHTS = (0.9, 1.1)


def weighted_ce_per_sample(
    logits: torch.Tensor, target: torch.Tensor, weights: tuple[float, float] = CLASS_WEIGHTS
) -> torch.Tensor:
    """(B,) weighted CE per sample; ignored pixels excluded; a sample with no valid pixel gives 0."""
    w = torch.tensor(weights, device=logits.device, dtype=logits.dtype)
    valid = target != IGNORE_INDEX
    t = torch.where(valid, target, torch.zeros_like(target))
    nll = F.cross_entropy(logits, t, reduction="none")  # (B, H, W)
    pw = w[t] * valid
    return (nll * pw).flatten(1).sum(1) / pw.flatten(1).sum(1).clamp_min(1e-6)


def labeled_loss_per_sample(logits: torch.Tensor, target: torch.Tensor, dice: float = 0.0) -> torch.Tensor:
    """(B,) ``L_s``: :func:`weighted_ce_per_sample`, plus ``dice`` × the soft Dice when ``dice`` > 0."""
    loss = weighted_ce_per_sample(logits, target)
    return loss + dice * dice_on_selected(logits, target) if dice > 0 else loss


@dataclass
class SupervisedMethod:
    """The labeled loss alone (the :class:`~l2l.engine.method.Method` protocol)."""

    name: str = "supervised"
    needs_unlabeled: bool = False
    needs_priors: bool = False
    priors_path: str | None = None  # a SESM model trained supervised may read labeled priors from here
    unlabeled_batch_size: int | None = None
    model: str = "segmenter"
    dice: float = 0.0  # TrainConfig.sup_dice

    @classmethod
    def from_config(cls, cfg: "TrainConfig", name: str = "supervised") -> "SupervisedMethod":
        return cls(name=name, dice=cfg.sup_dice)

    def loss(self, model, labeled: LabeledBatch, unlabeled=None, ctx=None) -> StepOutput:
        device = ctx.device if ctx is not None else "cpu"
        images = labeled.images.to(device, non_blocking=True)
        masks = labeled.masks.to(device, non_blocking=True)
        priors = labeled.priors.to(device) if labeled.priors is not None else None
        logits = model(images, labeled.texts, priors, labeled.has_prior)
        loss = labeled_loss_per_sample(logits.float(), masks, self.dice).mean()
        choice = choice_loss_per_sample(unwrap(model), masks)
        if choice is None:
            return StepOutput(loss, {"loss_sup": float(loss.detach())})
        total = loss + choice.mean()
        return StepOutput(total, {"loss_sup": float(loss.detach()), "loss_choice": float(choice.mean().detach())})

    # no state besides the model's
    def settings(self) -> dict[str, Any]:
        return {"method": self.name, "sup_dice": self.dice}

    def datasets(self, ctx: DataContext) -> MethodData:
        return labeled_data(ctx)

    def setup(self, ctx) -> None:
        pass

    def hooks(self, trainer) -> list:
        return []

    def flush(self) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        pass

    def save_files(self, folder) -> None:
        pass

    def load_files(self, folder) -> None:
        pass
