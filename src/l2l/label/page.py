"""``l2l label serve PROJECT``: the labeling page (Gradio, like ``l2l serve``), one :class:`LabelTab` per
browser tab over the project on disk (issue 36, item 2).

The page shows one (image, sentences) task with the current mask over it (green). Click the image to
correct: a positive click (default) or, with "negative" chosen, a negative one, or a box (two corner
clicks); the mask model answers at once. **Accept** (key ``a``) saves the shown mask — ``accepted`` without a click, ``corrected`` with — and
shows the next task; **Reject** (``r``) says the sentence does not fit the image; **Skip** (``s``) leaves it
for later; **Undo click** (``z``), **Start over** (an empty mask), **Undo answer** (the tab's last answer).
The sentences are editable (one per line); an edited line is saved beside the original. The status panel
gives the labeled count, the time spent, and the val oIoU of each ``l2l label train`` round
(``PROJECT/rounds.jsonl``).

Element ids the browser test drives: ``task-image``, ``sentences``, ``click-kind``, ``accept``,
``reject``, ``skip``, ``undo-click``, ``restart``, ``undo-answer``, ``mask-out``, ``info``, ``status``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ..errors import L2LError
from ..serve.app import enlarge, port_is_free
from .session import LabelTab

KEYS_JS = """
() => {
  document.addEventListener('keydown', (e) => {
    if (['TEXTAREA', 'INPUT'].includes(document.activeElement.tagName)) return;
    const id = {a: 'accept', r: 'reject', s: 'skip', z: 'undo-click'}[e.key];
    if (id) { const b = document.getElementById(id); if (b) b.click(); }
  });
}
"""


def overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with the mask tinted green and its outline drawn, enlarged to be seen."""
    from scipy import ndimage

    out = image.astype(np.float32).copy()
    out[mask] = 0.55 * out[mask] + 0.45 * np.array([40, 220, 60], np.float32)
    edge = mask & ~ndimage.binary_erosion(mask)
    out[edge] = (20, 160, 40)
    return enlarge(out.astype(np.uint8))


def zoom(image: np.ndarray) -> int:
    """The factor :func:`l2l.serve.app.enlarge` repeats the pixels by (the page's click → image pixel)."""
    return max(1, int(np.ceil(256 / max(1, min(image.shape[:2])))))


def status_markdown(tab: LabelTab) -> str:
    st = tab.project.status()
    lines = [
        f"**{st['labeled_images']} / {st['images']} images labeled** · {st['answered']} of {st['tasks']} refs "
        f"answered ({st['accepted']} accepted, {st['corrected']} corrected, {st['rejected']} rejected; "
        f"{st['skipped']} skipped) · {st['clicks']} clicks · {st['seconds'] / 60:.1f} min spent"
    ]
    rounds = tab.project.folder / "rounds.jsonl"
    if rounds.exists():
        for line in rounds.read_text().splitlines()[-5:]:
            r = json.loads(line)
            lines.append(
                f"round {r['round']}: {r['labeled_images']} images → "
                + (f"{r['eval_split']} oIoU {r['oIoU']} %" if r.get("oIoU") is not None else "not evaluated")
                + f" ({r['run']})"
            )
    return "\n\n".join(lines)


def view(tab: LabelTab, note: str = "") -> list[Any]:
    """Outputs in the order of :func:`build_app`'s ``outputs``: image, sentences, mask PNG, info, status."""
    if tab.task is None:
        return [
            None,
            "",
            None,
            note or "**Every task is answered.** Train a round: `l2l label train`.",
            status_markdown(tab),
        ]
    c = tab.correction
    assert c is not None
    sents = "\n".join(t for _, t in tab.task.sentences)
    info = f"ref {tab.task.ref_id} · image {tab.task.image_id} · start: {tab.start} · {len(c.clicks)} clicks" + (
        f" · mask model {c.seconds[-1] * 1000:.0f} ms" if c.seconds else ""
    )
    if note:
        info = f"{note}\n\n{info}"
    from PIL import Image

    mask_png = Image.fromarray((tab.mask * 255).astype(np.uint8))  # the saved mask at the image's size
    return [overlay(tab.image, tab.mask), sents, mask_png, info, status_markdown(tab)]


def build_app(make_tab):
    """``make_tab()``: a new :class:`LabelTab` for each browser tab (they share the project and models)."""
    import gradio as gr

    with gr.Blocks(title="l2l label", analytics_enabled=False) as app:
        gr.Markdown(
            "## l2l label — accept, correct with clicks, or reject\nKeys: **a** accept · **r** reject · "
            "**s** skip · **z** undo click. Click the image to correct the green mask."
        )
        tab = gr.State(None)
        with gr.Row():
            with gr.Column(scale=2):
                image = gr.Image(label="click to correct", interactive=False, format="png", elem_id="task-image")
                kind = gr.Radio(
                    ["positive", "negative", "box (2 corners)"], value="positive", label="click", elem_id="click-kind"
                )
            with gr.Column(scale=1):
                sentences = gr.Textbox(label="sentences (editable, one per line)", lines=3, elem_id="sentences")
                with gr.Row():
                    accept = gr.Button("Accept (a)", variant="primary", elem_id="accept")
                    reject = gr.Button("Reject (r)", elem_id="reject")
                    skip = gr.Button("Skip (s)", elem_id="skip")
                with gr.Row():
                    undo_click = gr.Button("Undo click (z)", elem_id="undo-click")
                    restart = gr.Button("Start over", elem_id="restart")
                    undo_answer = gr.Button("Undo answer", elem_id="undo-answer")
                info = gr.Markdown("", elem_id="info")
                mask_out = gr.Image(
                    label="mask (image size)",
                    format="png",
                    interactive=False,
                    elem_id="mask-out",
                    image_mode="L",
                    height=120,
                )
                status = gr.Markdown("", elem_id="status")
        outputs = [image, sentences, mask_out, info, status]

        def guarded(fn):
            def run(t: LabelTab | None, *args):
                t = t if t is not None else make_tab()
                try:
                    note = fn(t, *args) or ""
                except L2LError as e:  # a conflict with another tab, a refused answer: say so, move on
                    note = f"**{e}**"
                    if t.task is None:
                        t.next_task()
                return [t, *view(t, note)]

            return run

        def on_load(t: LabelTab) -> str:
            if t.task is None:
                t.next_task()
            return ""

        def on_click(t: LabelTab, k: str, evt: gr.SelectData) -> str:
            if t.task is None:
                return "no task shown"
            z = zoom(t.image)
            x, y = evt.index
            px, py = (float(x) + 0.5) / z - 0.5, (float(y) + 0.5) / z - 0.5
            if k.startswith("box"):
                first = t._corner is None
                t.box_corner(px, py)
                return "box: now click the opposite corner" if first else "box set"
            t.click(px, py, k != "negative")
            return ""

        def edits(t: LabelTab, text: str) -> dict[int, str] | None:
            assert t.task is not None
            new = [s.strip() for s in (text or "").splitlines()]
            out = {sid: n for (sid, old), n in zip(t.task.sentences, new) if n and n != old}
            return out or None

        def on_accept(t: LabelTab, text: str) -> str:
            if t.task is None:
                return "no task shown"
            ref = t.accept(edits(t, text))
            t.next_task()
            return f"saved ref {ref}"

        def answer_with(name: str):
            def fn(t: LabelTab) -> str:
                if t.task is None:
                    return "no task shown"
                ref = getattr(t, name)()
                t.next_task()
                return f"{name}: ref {ref}"

            return fn

        def on_undo_answer(t: LabelTab) -> str:
            return "undone" if t.undo_answer() is not None else "nothing to undo in this tab"

        clicked = guarded(on_click)

        def on_select(t: LabelTab | None, k: str, evt: gr.SelectData):  # Gradio passes the click by this annotation
            return clicked(t, k, evt)

        on_select.__annotations__["evt"] = gr.SelectData  # a real class, not this module's postponed string

        app.load(guarded(on_load), [tab], [tab, *outputs])
        image.select(on_select, [tab, kind], [tab, *outputs])
        accept.click(guarded(on_accept), [tab, sentences], [tab, *outputs])
        reject.click(guarded(answer_with("reject")), [tab], [tab, *outputs])
        skip.click(guarded(answer_with("skip")), [tab], [tab, *outputs])

        def on_undo_click(t: LabelTab) -> str:
            t.undo_click()
            return ""

        def on_restart(t: LabelTab) -> str:
            t.restart()
            return "start over: click the object"

        undo_click.click(guarded(on_undo_click), [tab], [tab, *outputs])
        restart.click(guarded(on_restart), [tab], [tab, *outputs])
        undo_answer.click(guarded(on_undo_answer), [tab], [tab, *outputs])
    return app


def serve(make_tab, host: str = "127.0.0.1", port: int = 7861, block: bool = True):
    """Start the labeling page (queued: one event at a time, so the shared mask model answers one click at a
    time); returns the running app when ``block`` is False."""
    from ..errors import UsageError

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if not port_is_free(host, port):
        raise UsageError(f"port {port} on {host} is in use (another page?): give --port N")
    app = build_app(make_tab)
    app.queue(default_concurrency_limit=1)
    app.launch(
        server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block, show_error=True, js=KEYS_JS
    )
    return app
