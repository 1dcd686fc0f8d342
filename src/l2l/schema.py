"""The typed configuration of a training run (``l2l train --config FILE key=value …``).

:class:`TrainConfig` composes each package's own settings — :class:`~l2l.models.segmenter.ModelConfig`,
:class:`DataConfig`, :class:`OptimConfig` — and the method family's section ``semi``, whose dataclass
(:class:`~l2l.semi.config.SemiConfig`) the family registers in :data:`l2l.registry.CONFIG_SECTIONS`:
this module imports no method family (docs/architecture.md, "Floors"). The trainer reads
``model``/``data``/``optim`` and the run's own fields, and hands the whole config to the method it
builds (``semi.*`` is the method's business, validated by the section's own ``validate``).
Values marked [paper] are the L2L paper's, [ours] are choices of this implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .models.segmenter import ModelConfig
from .registry import CONFIG_SECTIONS


def section(name: str) -> Any:
    """A field holding the dataclass registered as section ``name`` (its defaults); the field's
    ``metadata["section"]`` names that class for :func:`l2l.config.from_dict`, looked up on use."""
    return field(
        default_factory=lambda: CONFIG_SECTIONS.get(name)(), metadata={"section": lambda: CONFIG_SECTIONS.get(name)}
    )


@dataclass
class DataConfig:
    root: str = "runs/data/synthref"  # a SynthRef folder, or the REFER data root with `dataset`
    dataset: str | None = None  # None = SynthRef; refcoco | refcoco+ | refcocog
    split_by: str | None = None
    image_dir: str | None = None
    label_fraction: str = "100%"  # share of training images that keep their masks
    split_seed: int = 22
    label_count: str = "floor"  # labeled max(1, floor(fraction·n)) [paper: 16/16/21 at 0.1 %]; round: the old rule
    split_file: str | None = None  # a split written by `l2l data split` (content-hashed); None = hash-ranked by seed
    size: int = 128  # training resolution (the paper's: 480)
    scale_range: tuple[float, float] = (1.0, 1.0)
    hflip_prob: float = 0.5
    workers: int = 2
    eval_split: str = "val"  # none: no evaluation (a dataset without a labeled split to measure on)
    eval_resolution: str = "original"  # original | train
    eval_max_samples: int | None = None  # evaluate on the first N samples only (quick runs)
    strong_text: bool = True  # EDA strong sentence for unlabeled samples (docs/spec.md §2)
    eda_cache: str | None = None  # EDA pool cache file; None = <user cache>/eda/eda_pools_<dataset>.json


@dataclass
class OptimConfig:
    lr: float = 5e-5  # [ours: LAVT]
    weight_decay: float = 1e-2  # [ours: LAVT]
    poly_power: float = 0.9  # [paper: polynomial decay]
    grad_clip: float = 0.0  # 0 = off
    visual_lr_scale: float = 1.0  # [ours] lr of the visual encoder = lr × this (a pretrained encoder: < 1)
    text_lr_scale: float = 1.0  # [ours] lr of the text encoder = lr × this (a trained text encoder)
    objects_lr_scale: float = 1.0  # [ours] lr of model.objects' pretrained choice network = lr × this
    optimizer: str = "adamw"  # [ours: LAVT] adamw | sgd (linear in the gradient: the DDP test uses it)
    momentum: float = 0.0  # sgd only
    fused: bool = True  # [ours] one fused AdamW kernel over all parameters (CPU and GPU) instead of a loop per tensor


# What a run folder's config.yaml means for a key it lacks because the key came later, where the key's
# default is not the behaviour of the version that wrote it: the old value, and the methods (or
# semi.selector values) whose runs it changes (None: every run). A resume and the grid read an old folder
# with these values, so it is not passed off as made with the new default.
LEGACY_DEFAULTS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "data.label_count": ("round", None),
    "semi.band_regions": ("foreground", ("l2l", "static-threshold", "rple")),
    "semi.rple.lr": ("null", ("l2l", "rple")),
    "semi.rple.next_state": ("batch", ("l2l", "rple")),
    "semi.rple.reward_scale": ("none", ("l2l", "rple")),
}


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    method: str = "supervised"
    epochs: int = 40  # [paper]
    total_steps: int | None = None  # a step budget instead of epochs (same updates at every label fraction)
    batch_size: int = 4  # per process [paper: 4 per GPU on 4 GPUs]
    seed: int = 22  # [paper]
    device: str = "auto"  # auto | cpu | cuda
    amp: str = "auto"  # auto (bf16 on a GPU, fp32 on a CPU) | bf16 (refused on a CPU without AMX/AVX-512 BF16) | off
    channels_last: bool = False
    compile: bool = False
    threads: int = 0  # torch threads of the run; 0 = the process's policy (--threads, $L2L_THREADS, else 1)
    eval_every: int = 1  # epochs; 0 = only at the end
    ckpt_every: int = 500  # steps
    keep_last: int = 2
    log_every: int = 20  # steps
    max_steps: int | None = None  # stop after this many steps (the schedule still spans all epochs)
    telemetry_every: int = 1  # steps between telemetry visits (0 = off); hidden masks, never the loss
    telemetry_log_every: int = 0  # steps between telemetry records; 0 = one per epoch (Fig. 9)
    telemetry_landscape_every: int = 0  # steps between reward-landscape probes (semi/telemetry.py); 0 = off
    sup_dice: float = 0.0  # [ours] weight of a soft Dice term in the labeled loss L_s (semi/methods/supervised.py)
    init_from: str | None = None  # a run or model folder whose weights start this run (fine-tuning; not on resume)
    semi: Any = section("semi")  # l2l.semi.config.SemiConfig (registered: CONFIG_SECTIONS)

    def validate(self) -> "TrainConfig":
        """Refuse values that would run but compute nonsense (a negative step budget, an empty batch…)."""
        from .errors import UsageError

        def need(ok: bool, what: str) -> None:
            if not ok:
                raise UsageError(what)

        need(self.batch_size >= 1, f"batch_size must be ≥ 1, got {self.batch_size}")
        need(
            self.total_steps is None or self.total_steps >= 1,
            f"total_steps must be ≥ 1 (or null), got {self.total_steps}",
        )
        need(self.epochs >= 1, f"epochs must be ≥ 1, got {self.epochs}")
        need(self.max_steps is None or self.max_steps >= 0, f"max_steps must be ≥ 0 (or null), got {self.max_steps}")
        for key in ("log_every", "ckpt_every", "keep_last"):
            need(getattr(self, key) >= 1, f"{key} must be ≥ 1, got {getattr(self, key)}")
        need(self.eval_every >= 0, f"eval_every must be ≥ 0, got {self.eval_every}")
        need(self.optim.lr > 0, f"optim.lr must be > 0, got {self.optim.lr}")
        need(self.data.size >= 16, f"data.size must be ≥ 16 pixels, got {self.data.size}")
        need(self.data.workers >= 0, f"data.workers must be ≥ 0, got {self.data.workers}")
        need(
            self.data.eval_max_samples is None or self.data.eval_max_samples >= 1,
            f"data.eval_max_samples must be ≥ 1 (or null for all), got {self.data.eval_max_samples}",
        )
        need(self.threads >= 0, f"threads must be ≥ 0 (0 = the thread policy), got {self.threads}")
        need(self.amp in ("auto", "bf16", "off"), f"amp must be auto, bf16 or off, got {self.amp!r}")
        m = self.model
        need(m.image_size >= 16, f"model.image_size must be ≥ 16, got {m.image_size}")
        need(m.decoder_dim >= 1, f"model.decoder_dim must be ≥ 1, got {m.decoder_dim}")
        need(0 <= m.sesm.prior_dropout <= 1, f"model.sesm.prior_dropout must lie in [0, 1], got {m.sesm.prior_dropout}")
        need(m.text.max_length >= 2, f"model.text.max_length must be ≥ 2, got {m.text.max_length}")
        need(0 <= self.optim.weight_decay, f"optim.weight_decay must be ≥ 0, got {self.optim.weight_decay}")
        need(
            self.optim.optimizer in ("adamw", "sgd"),
            f"optim.optimizer must be adamw or sgd, got {self.optim.optimizer!r}",
        )
        need(0 <= self.optim.momentum < 1, f"optim.momentum must lie in [0, 1), got {self.optim.momentum}")
        need(0 <= self.optim.visual_lr_scale, f"optim.visual_lr_scale must be ≥ 0, got {self.optim.visual_lr_scale}")
        need(0 <= self.optim.text_lr_scale, f"optim.text_lr_scale must be ≥ 0, got {self.optim.text_lr_scale}")
        need(0 <= self.optim.objects_lr_scale, f"optim.objects_lr_scale must be ≥ 0, got {self.optim.objects_lr_scale}")
        lo, hi = self.data.scale_range
        need(0 < lo <= hi, f"data.scale_range must be (low, high) with 0 < low ≤ high, got {self.data.scale_range}")
        need(0 <= self.data.hflip_prob <= 1, f"data.hflip_prob must lie in [0, 1], got {self.data.hflip_prob}")
        check = getattr(self.semi, "validate", None)
        if callable(check):
            check()
        return self
