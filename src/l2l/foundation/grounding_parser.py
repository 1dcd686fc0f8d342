"""Parse an MLLM's grounding answer into boxes (for the ``mllm-sam2`` provider, docs/spec.md §3).

Qwen2.5-VL answers a grounding prompt with JSON such as::

    ```json
    [{"bbox_2d": [84, 120, 310, 402], "label": "the man in red"}]
    ```

in **absolute pixel coordinates of the image as the processor resized it** (sides multiples
of 28). Real outputs stray from that: prose around the JSON, no code fence, single quotes,
trailing commas, a bare dict or a bare list of four numbers, ``bbox`` instead of ``bbox_2d``,
several boxes, swapped corners, coordinates outside the image, Qwen2-VL's
``<|box_start|>(x1,y1),(x2,y2)<|box_end|>`` tokens on a 0–1000 grid, or no box at all.
:func:`parse_boxes` accepts all of these; :func:`map_box` takes a box back to the original
image. An answer without a usable box yields no box (the provider then stores an empty,
low-confidence prior and logs it).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

Box = tuple[float, float, float, float]  # x0, y0, x1, y1

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_QWEN2_BOX = re.compile(
    r"<\|box_start\|>\s*\(\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\)\s*,\s*\(\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\)\s*<\|box_end\|>"
)
_FOUR = re.compile(
    r"\[\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\]"
)
_BOX_KEYS = ("bbox_2d", "bbox", "box", "box_2d", "bounding_box")


@dataclass
class ParseResult:
    boxes: list[Box] = field(default_factory=list)  # valid boxes in the answer's coordinates, in answer order
    points: list[tuple[float, float]] = field(default_factory=list)
    frame: str = "pixels"  # pixels | qwen2-1000 (Qwen2-VL box tokens on a 0..1000 grid)
    issues: list[str] = field(default_factory=list)  # what was repaired or dropped, for the log

    @property
    def box(self) -> Box | None:
        """The answer's first box: the MLLM's own ranking of the referent."""
        return self.boxes[0] if self.boxes else None


def _loads(text: str) -> Any:
    text = text.strip()
    for attempt in (text, re.sub(r",\s*([\]}])", r"\1", text)):  # trailing commas
        try:
            return json.loads(attempt)
        except (json.JSONDecodeError, ValueError):
            pass
        try:
            return ast.literal_eval(attempt)  # single quotes, Python literals; never executes code
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
    return None


def _json_candidates(text: str) -> list[str]:
    out = [m.group(1) for m in _FENCE.finditer(text)]
    # bare JSON: the outermost [...] or {...} spans
    for open_, close in (("[", "]"), ("{", "}")):
        start = text.find(open_)
        end = text.rfind(close)
        if 0 <= start < end:
            out.append(text[start : end + 1])
    return out


def _collect(obj: Any, res: ParseResult) -> None:
    if isinstance(obj, dict):
        for k in _BOX_KEYS:
            if k in obj:
                _add_box(obj[k], res)
                break
        for k in ("point_2d", "point"):
            v = obj.get(k)
            if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(t, (int, float)) for t in v):
                res.points.append((float(v[0]), float(v[1])))
        for v in obj.values():
            if isinstance(v, (dict, list)) and not (isinstance(v, list) and _is_four(v)):
                _collect(v, res)
    elif isinstance(obj, (list, tuple)):
        if _is_four(obj):
            _add_box(obj, res)
        else:
            for v in obj:
                _collect(v, res)


def _is_four(v: Any) -> bool:
    return (
        isinstance(v, (list, tuple))
        and len(v) == 4
        and all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in v)
    )


def _add_box(v: Any, res: ParseResult) -> None:
    if isinstance(v, (list, tuple)) and len(v) == 1 and _is_four(v[0]):
        v = v[0]
    if not _is_four(v):
        res.issues.append(f"ignored malformed box {v!r}")
        return
    x0, y0, x1, y1 = (float(t) for t in v)
    if x1 < x0 or y1 < y0:
        res.issues.append("swapped corners")
        x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
    if x1 - x0 < 1 or y1 - y0 < 1:
        res.issues.append(f"dropped degenerate box {v!r}")
        return
    box = (x0, y0, x1, y1)
    if box not in res.boxes:
        res.boxes.append(box)


def parse_boxes(answer: str) -> ParseResult:
    """Boxes (and points) from an MLLM's grounding answer; see the module docstring."""
    res = ParseResult()
    if not answer or not answer.strip():
        res.issues.append("empty answer")
        return res
    q2 = _QWEN2_BOX.findall(answer)
    if q2:
        res.frame = "qwen2-1000"
        for t in q2:
            _add_box([float(x) for x in t], res)
        return res
    for cand in _json_candidates(answer):
        obj = _loads(cand)
        if obj is not None:
            _collect(obj, res)
            if res.boxes:
                return res
    for m in _FOUR.finditer(answer):  # last resort: any [a, b, c, d] in prose
        _add_box([float(x) for x in m.groups()], res)
    if res.boxes:
        res.issues.append("box found in prose, not in JSON")
    else:
        res.issues.append("no box in the answer")
    return res


def map_box(box: Box, processed_hw: tuple[int, int], original_hw: tuple[int, int], frame: str = "pixels") -> Box | None:
    """A box from the answer's frame to original-image pixels, clipped; None if nothing is left."""
    ph, pw = processed_hw
    oh, ow = original_hw
    x0, y0, x1, y1 = box
    if frame == "qwen2-1000":
        sx, sy = ow / 1000.0, oh / 1000.0
    else:
        sx, sy = ow / pw, oh / ph
    x0, x1 = max(0.0, min(ow, x0 * sx)), max(0.0, min(ow, x1 * sx))
    y0, y1 = max(0.0, min(oh, y0 * sy)), max(0.0, min(oh, y1 * sy))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return (x0, y0, x1, y1)
