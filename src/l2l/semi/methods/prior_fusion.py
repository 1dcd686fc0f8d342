"""Self-training with the foundation-model prior fused linearly (L2L Table 1, "Baseline (w/ MLLM)").

``q = w P† + (1 − w) p_w`` (``semi.fusion_weight`` w = 0.5; Table 14 sweeps it). Presets by
how pseudo-label pixels are selected:

* ``prior-fusion`` — static (τ_fg, τ_bg) = (0.95, 0.05);
* ``agreement-filter`` — the same thresholds, and only samples on which the weak prediction and
  the prior agree (Table 4's filter);
* ``catm`` — class-adaptive thresholds from the target's own confidence (Table 4).

The step is :class:`~l2l.semi.methods.selftrain.SelfTrainingMethod`'s.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .selftrain import SelfTrainingMethod


class PriorFusion(SelfTrainingMethod):
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "prior-fusion": dict(
            source="linear", selector="static", tau_fg=0.95, tau_bg=0.05, band=0, loss="ce", prior_guidance=True
        ),
        "agreement-filter": dict(
            source="linear", selector="agreement", tau_fg=0.95, tau_bg=0.05, band=0, loss="ce", prior_guidance=True
        ),
        "catm": dict(
            source="linear", selector="catm", tau_fg=0.95, tau_bg=0.05, band=0, loss="ce", prior_guidance=True
        ),
    }
