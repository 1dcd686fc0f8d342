"""``l2l serve``: a Gradio page to try one or two trained models on an image and a sentence.

Upload an image (any file: it is read by :func:`l2l.data.images.read_photo`, so a bad one gets a
reason, not a crash) or pick an example (SynthRef images of the model's own data, and real COCO
photos with sentences from ``--examples MANIFEST``), type a sentence, and each
model shows its overlay, its probability heat map, its mask, its time, and a notice when the mask
is empty or the image is far from its training domain; its model card sits beside it. Requests are
queued (one at a time): two users never see each other's answers.

The page's element ids (``upload``, ``sentence``, ``segment``, ``status``, ``overlay-K``,
``mask-K``, ``heat-K``, ``notice-K``, ``time-K``) are what the browser test drives.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import L2LError
from .session import MAX_UPLOAD_MB, Response, Session

# a headless chromium in a container (no sandbox, no GPU, nothing fetched from the network): how the page
# tests (tests/test_serve.py, tests/test_label.py) and benchmarks/bench_predict.py open the pages
HEADLESS_CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)


def default_examples(session: Session, n_synthref: int = 4, manifest: str | Path | None = None) -> list[list[str]]:
    """[image path, sentence] pairs: testB images of the first model's dataset (found through the run's
    ``paths.json`` from any directory, when it is on disk), then the pairs of ``manifest`` (the
    ``l2l predict --manifest`` format: ``{"image": …, "text": …}`` per line), e.g. real photos."""
    examples: list[list[str]] = []
    root = session.models[0].card.data_root
    if root and Path(root).exists():
        from ..data.refer import ReferDataset

        try:
            ds = ReferDataset.open(root)
            seen: set[int] = set()
            for r in ds.samples("testB"):
                if r.image_id not in seen:
                    seen.add(r.image_id)
                    examples.append([str(ds.image_path(r.image_id)), r.sentence])
                if len(examples) >= n_synthref:
                    break
        except L2LError:  # examples are a convenience; the page works without them
            pass
    if manifest is not None:
        from ..models.batch_predict import read_manifest

        examples += [[p.image, p.text] for p in read_manifest(manifest)]
    return examples


def enlarge(img: np.ndarray, min_side: int = 256) -> np.ndarray:
    """A small picture repeated pixel by pixel (nearest neighbour) to be seen on the page; the mask
    output is left at the image's own size, so that what the page returns is the predictor's mask."""
    k = int(np.ceil(min_side / max(1, min(img.shape[:2]))))
    return img if k <= 1 else np.repeat(np.repeat(img, k, 0), k, 1)


def render(session: Session, r: Response) -> list[Any]:
    """The page's outputs for one response, in the order of :func:`build_app`'s ``outputs``."""
    status = []
    if r.error:
        status.append(f"**Refused: {r.error}**")
    if r.notes:
        status.append("Input: " + "; ".join(r.notes) + ".")
    if r.prior is not None:
        status.append(
            f"Prior from the `{getattr(session.provider, 'name', 'configured')}` provider in {r.prior_seconds:.2f} s."
        )
    out: list[Any] = [None if r.image is None else enlarge(r.image), "\n\n".join(status) or "Ready."]
    by_name = {a.model: a for a in r.answers}
    for m in session.models:
        a = by_name.get(m.name)
        if a is None or r.image is None:
            out += [None, None, None, "", ""]
            continue
        ok = "OK: non-empty mask; " + ("image within the training domain" if m.domain is not None else m.domain_note)
        notice = "\n\n".join(f"**Warning: {n}**" for n in a.notices) or ok
        out += [
            enlarge(a.overlay(r.image)),
            enlarge(a.heat()),
            a.mask_png(),
            notice,
            f"request {r.number} · {a.seconds * 1000:.0f} ms · {int(a.mask.sum()):,} px · guidance {a.guidance}",
        ]
    return out


def build_app(session: Session, examples: list[list[str]] | None = None):
    import gradio as gr

    examples = default_examples(session) if examples is None else examples
    # uploads are deleted once read (Session.read_upload); anything left is swept after 15 minutes
    with gr.Blocks(
        title="l2l — referring expression segmentation", analytics_enabled=False, delete_cache=(300, 900)
    ) as app:
        gr.Markdown(
            "## l2l — referring expression segmentation\nUpload an image, type what to segment, press "
            "**Segment**. Models trained on SynthRef know SynthRef's shapes and words, not photos."
        )
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                upload = gr.File(label="image (PNG, JPEG, WebP, TIFF …)", type="filepath", elem_id="upload")
                view = gr.Image(
                    label="input, as read", interactive=False, format="png", elem_id="input-view", height=240
                )
                text = gr.Textbox(label="sentence", placeholder="the red ring on the left", elem_id="sentence")
                modes = session.guidance_modes
                guidance = gr.Radio(
                    modes, value="none", label="guidance (SESM models)", visible=len(modes) > 1, elem_id="guidance"
                )
                threshold = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="threshold", elem_id="threshold")
                button = gr.Button("Segment", variant="primary", elem_id="segment")
                status = gr.Markdown("Ready.", elem_id="status")
                if examples:
                    gr.Examples(examples, [upload, text], label="examples (the model's own data; --examples)")
            outputs: list[Any] = [view, status]
            for k, m in enumerate(session.models):
                with gr.Column(scale=1, min_width=280):
                    gr.Markdown(f"### {m.name}")
                    notice = gr.Markdown("", elem_id=f"notice-{k}")
                    overlay = gr.Image(
                        label="overlay", format="png", interactive=False, elem_id=f"overlay-{k}", height=240
                    )
                    with gr.Row():
                        heat = gr.Image(
                            label="probability", format="png", interactive=False, elem_id=f"heat-{k}", height=160
                        )
                        mask = gr.Image(label="mask", format="png", interactive=False, elem_id=f"mask-{k}", height=160)
                    took = gr.Markdown("", elem_id=f"time-{k}")
                    with gr.Accordion("model card", open=len(session.models) == 1):
                        gr.Markdown(m.card.markdown(session.guidance_modes) + f"\n\n_{m.domain_note}_")
                outputs += [overlay, heat, mask, notice, took]

        def on_upload(path: str | None):
            if not path:
                return None, "Ready."
            try:
                img, notes = session.read_upload(path)
            except L2LError as e:
                return None, f"**Refused: {e}**"
            return enlarge(img), (
                "Input: " + "; ".join(notes) + "."
            ) if notes else f"{img.shape[1]}×{img.shape[0]} image read."

        def on_segment(path: str | None, sentence: str, mode: str, thr: float):
            return render(session, session.respond(path, sentence, mode or "none", thr))

        upload.change(on_upload, [upload], [view, status])
        button.click(on_segment, [upload, text, guidance, threshold], outputs)
        text.submit(on_segment, [upload, text, guidance, threshold], outputs)
    return app


def port_is_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def serve(
    session: Session,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    block: bool = True,
    examples_manifest: str | Path | None = None,
    max_upload_mb: float = MAX_UPLOAD_MB,
):
    """Start the page (queued: one request at a time); returns the Gradio app (running) when ``block`` is False."""
    from ..errors import UsageError

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if not port_is_free(host, port):
        raise UsageError(f"port {port} on {host} is in use (another l2l serve?): give --port N")
    if session.upload_dir is None:  # the user's GRADIO_TEMP_DIR, else this server's own, removed when it stops
        if os.environ.get("GRADIO_TEMP_DIR"):
            up = Path(os.environ["GRADIO_TEMP_DIR"])
        else:
            up = Path(tempfile.mkdtemp(prefix="l2l-serve-uploads-"))
            atexit.register(shutil.rmtree, up, True)
        session.upload_dir = up.resolve()
    os.environ["GRADIO_TEMP_DIR"] = str(session.upload_dir)  # read by Gradio when the app is built
    examples = default_examples(session, manifest=examples_manifest)
    app = build_app(session, examples)
    allowed = sorted({str(Path(e[0]).resolve().parent) for e in examples})
    app.queue(default_concurrency_limit=1)
    app.launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=not block,
        quiet=not block,
        allowed_paths=allowed,
        show_error=True,
        max_file_size=f"{max_upload_mb}mb",
    )
    return app
