"""PPT configuration; the paper's values as defaults where it gives them (§4.1), ours marked [ours]."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from .localize import SurgeryConfig


@dataclass
class GeneratorConfig:
    """§3.1.1, Eqs. 1–2. The paper gives no K, M, width or depth: ours [ours]."""

    queries: int = 8  # K point queries
    points: int = 8  # M points per query
    dim: int = 128
    heads: int = 4
    stages: tuple[int, ...] = (1, 2, 3)  # which encoder stages (0-based) the queries visit, in order
    reference_points: bool = True  # [ours] points as offsets from an attended reference point (generator.py)


@dataclass
class LossConfig:
    """Eq. 4 weights [ours: the paper gives none] and the matching cost."""

    mask_bce: float = 1.0
    mask_dice: float = 1.0
    point_l1: float = 5.0
    point_bce: float = 1.0
    score_bce: float = 1.0
    # [ours] unmatched queries learn c = 0 (DETR's "no object"); False: the paper's Eq. 4 only
    unmatched_score: bool = True
    # [ours] the inner point matching weighs the label BCE too (docs/ppt.md); False: position only
    point_label_matching: bool = True


@dataclass
class ObjectCentricConfig:
    """§3.2: D_sem ("the [class] in the middle", pseudo masks from dual encoder → mask model) and D_ref
    (composition and fusion composites with spatial sentences). The paper draws 2,836 Mini-ImageNet
    images; we render single-object scenes of the pretraining world (pool seed ``pool_seed``)."""

    images: int = 1000  # D_sem size
    composites: int = 1000  # D_ref size (half composition, half fusion)
    pool_seed: int = 5  # a pool seed the stand-ins were not trained on [ours]
    context: tuple[float, float] = (
        2.6,
        4.0,
    )  # crop side / object diameter [ours, measured: docs/ppt.md]


@dataclass
class CurriculumConfig:
    """§3.3 and §4.1: 50 epochs = 10 semantic alignment + 30 RIS learning + 10 domain refinement.

    ``epoch_fraction`` scales every epoch (a share of the stage's samples per epoch) so that the
    paper's schedule fits a CPU; ``ris_split`` is how many of the 30 RIS epochs train θ_refD before
    H_ref is selected (Eq. 6: the paper does not say) [ours]."""

    epochs: tuple[int, int, int] = (10, 30, 10)
    ris_split: int = 10
    epoch_fraction: float = 1.0
    enabled: bool = True  # False: no curriculum — every source from the start, H_ref re-selected each epoch
    last_stage: int = 3  # 1: semantic alignment only (Table 3 row 3); 2: + RIS learning (row 4); 3: full
    use_d_sem: bool = True  # False: Table 3 row 8 ("w/o free IMG")
    use_d_ref: bool = True  # False: row 7 ("w/o augmented IMG")


@dataclass
class PPTConfig:
    dual_encoder: str = "builtin:synthpool-clip"
    mask_model: str = "builtin:synthpool-sam"
    image_size: int = 128
    proposal_grid: int = 12  # mask-model automatic mode on H images: points per side (Pseudo-RIS's default)
    object_grid: int = 8  # … on D_sem images (one centred object: a coarser grid suffices) [ours]
    # where D_sem's and H's pseudo masks come from: proposals = the dual encoder ranks the mask model's
    # automatic proposals [ours, the default: measured better, docs/ppt.md]; surgery = the paper's CLIP
    # Surgery → SAM (ppt/localize.py)
    mask_source: str = "proposals"
    surgery: SurgeryConfig = field(default_factory=SurgeryConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    objects: ObjectCentricConfig = field(default_factory=ObjectCentricConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    batch_size: int = 64  # §4.1
    lr: float = 1e-3  # §4.1, Adam
    seed: int = 0
    threads: int = 0  # 0 = the thread policy (one thread; utils/threads.py)
    ckpt_every: int = 200
    log_every: int = 25

    def __post_init__(self) -> None:
        for name, sub in (
            ("generator", GeneratorConfig),
            ("loss", LossConfig),
            ("objects", ObjectCentricConfig),
            ("curriculum", CurriculumConfig),
            ("surgery", SurgeryConfig),
        ):
            if isinstance(getattr(self, name), dict):
                setattr(self, name, sub(**getattr(self, name)))
        g, c, o = self.generator, self.curriculum, self.objects
        g.stages = tuple(g.stages)
        c.epochs = tuple(c.epochs)  # type: ignore[assignment]
        o.context = tuple(o.context)  # type: ignore[assignment]
        if g.queries < 1 or g.points < 1 or g.dim % g.heads or not g.stages:
            raise UsageError(f"generator: queries, points ≥ 1, dim divisible by heads, stages given; got {g}")
        if len(c.epochs) != 3 or min(c.epochs) < 0 or not 0 <= c.ris_split <= c.epochs[1]:
            raise UsageError(f"curriculum.epochs must be 3 counts ≥ 0 and 0 ≤ ris_split ≤ epochs[1], got {c}")
        if not 0 < c.epoch_fraction <= 1 or c.last_stage not in (1, 2, 3):
            raise UsageError("curriculum: epoch_fraction in (0, 1], last_stage 1, 2 or 3")
        if self.mask_source not in ("proposals", "surgery"):
            raise UsageError(f"mask_source must be proposals or surgery, got {self.mask_source!r}")
        if self.batch_size < 1 or self.lr <= 0 or self.image_size % 32:
            raise UsageError("batch_size ≥ 1, lr > 0 and image_size a multiple of 32")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))
