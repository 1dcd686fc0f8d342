"""L2L (docs/spec.md §3–§5): the prior calibrated by SPM (Eqs. 4–6) and thresholds learned by RPLE (Eqs. 7–14).

Presets:

* ``l2l`` — SPM target, RPLE thresholds per sample, a 3-pixel ignored band (at 480 px, scaled
  to the training size), CE + Dice (Eq. 22);
* ``static-threshold`` — the same with RPLE replaced by static (τ_fg, τ_bg) = (0.70, 0.20):
  Fig. 5's sweep and Table 3's "w/o RPLE" row.

With a SESM segmenter the guidance bank conditions both passes (docs/spec.md §4). The step is
:class:`~l2l.semi.methods.selftrain.SelfTrainingMethod`'s.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .selftrain import SelfTrainingMethod


class L2L(SelfTrainingMethod):
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "static-threshold": dict(
            source="spm", selector="static", tau_fg=0.70, tau_bg=0.20, band=3, loss="ce_dice", prior_guidance=True
        ),
        "l2l": dict(
            source="spm", selector="rple", tau_fg=0.70, tau_bg=0.20, band=3, loss="ce_dice", prior_guidance=True
        ),
    }
