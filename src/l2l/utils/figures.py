"""Grids of image panels with titles, saved as PNG (used by every figure-making command)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Sequence

Panel = tuple[Any, str, dict]  # (image array, title, extra imshow keyword arguments)


def wrap(text: str, width: int = 32) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def save_panel_grid(
    rows: Sequence[Sequence[Panel]],
    out: str | Path,
    panel_w: float = 2.8,
    panel_h: float = 3.0,
    dpi: int = 90,
    title_size: float = 8,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(panel_w * n_cols, panel_h * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            if c < len(row):
                im, title, kw = row[c]
                ax.imshow(im, **{"interpolation": "nearest", **kw})
                ax.set_title(title, fontsize=title_size)
            ax.axis("off")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
