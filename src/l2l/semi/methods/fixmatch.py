"""FixMatch for RES: weak-to-strong self-training without a prior (L2L Table 1, "Baseline (w/o MLLM)").

The weak prediction is its own target (``source = weak``); pixels whose confidence passes the
static thresholds (τ_fg, τ_bg) = (0.95, 0.05) become pseudo-labels for the strong view; masked
cross-entropy. The step is :class:`~l2l.semi.methods.selftrain.SelfTrainingMethod`'s.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .selftrain import SelfTrainingMethod


class FixMatch(SelfTrainingMethod):
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "fixmatch": dict(
            source="weak", selector="static", tau_fg=0.95, tau_bg=0.05, band=0, loss="ce", prior_guidance=False
        ),
    }
