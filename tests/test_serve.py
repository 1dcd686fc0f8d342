"""``l2l serve``: uploads read or refused with a reason, the session (answers, notices, no crossed
requests), the domain check, the model card, batches with bad pairs, and the page in a real
browser (Debian's chromium driven by playwright; skipped with the reason where it is absent)."""

from __future__ import annotations

import io
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from l2l.data.images import read_photo
from l2l.errors import UsageError
from l2l.serve.app import HEADLESS_CHROMIUM_FLAGS

from .test_predictor import _model

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_FLAGS = list(HEADLESS_CHROMIUM_FLAGS)


def _scene(seed: int, size: int = 64) -> np.ndarray:
    """A SynthRef-like picture: flat background, a few flat rectangles and discs."""
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = rng.integers(150, 256, 3)
    yy, xx = np.mgrid[:size, :size]
    for _ in range(3):
        c = rng.integers(0, 256, 3)
        x, y, r = rng.integers(8, size - 8, 2).tolist() + [int(rng.integers(4, 9))]
        m = (xx - x) ** 2 + (yy - y) ** 2 < r * r if rng.random() < 0.5 else (abs(xx - x) < r) & (abs(yy - y) < r)
        img[m] = c
    return img


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny random model in a run folder (config.yaml, eval file) with training-domain images."""
    root = tmp_path_factory.mktemp("serve")
    refs = root / "refs"
    refs.mkdir()
    for i in range(16):
        Image.fromarray(_scene(i)).save(refs / f"r{i:02d}.png")
    run = root / "run"
    _model(False).save_pretrained(run / "best")
    (run / "config.yaml").write_text(
        yaml.safe_dump(
            {"method": "supervised", "total_steps": 123, "data": {"root": str(root / "gone"), "label_fraction": "5%"}}
        )
    )
    (run / "eval_val.json").write_text(json.dumps({"oIoU": 0.25, "mIoU": 0.3, "P@0.5": 0.2, "samples": 7}))
    (run / "eval_broken.json").write_text("{")
    return root, run, refs


def _session(run, refs, **kw):
    from l2l.serve.session import ServedModel, Session

    return Session([ServedModel(run, "cpu", domain_images=refs, **kw)])


# ----------------------------------------------------------------------------- reading uploads
def _save(img: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def test_read_photo_converts_what_it_can_and_says_so(tmp_path):
    grad = (np.arange(40 * 30).reshape(30, 40) * 54).astype(np.uint16)  # up to 64,746: 16-bit range
    arr, notes = read_photo(_save(Image.fromarray(grad), tmp_path / "a16.png"))
    assert arr.shape == (30, 40, 3) and arr.max() > 240 and "16-bit" in notes[0]  # scaled, not clipped
    rgb = _scene(1, 48)
    arr, notes = read_photo(_save(Image.fromarray(rgb).convert("CMYK"), tmp_path / "c.jpg", quality=95))
    assert arr.shape == (48, 48, 3) and np.abs(arr.astype(int) - rgb).mean() < 12 and "CMYK" in notes[0]
    arr, notes = read_photo(
        _save(Image.fromarray(np.dstack([rgb, np.full((48, 48), 7, np.uint8)])), tmp_path / "a.png")
    )
    assert np.array_equal(arr, rgb) and "alpha" in notes[0]
    arr, notes = read_photo(_save(Image.fromarray(rgb[:, :, 0]), tmp_path / "g.png"))
    assert np.array_equal(arr[:, :, 2], rgb[:, :, 0]) and "grey" in notes[0]
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, :10] = 255  # white on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    arr, notes = read_photo(_save(Image.fromarray(wide), tmp_path / "r.jpg", exif=exif, quality=95))
    assert arr.shape == (60, 20, 3) and arr[:10].mean() > 200 and arr[-10:].mean() < 50  # upright: white on top
    assert "EXIF orientation (6)" in notes[0]
    arr, notes = read_photo(_save(Image.fromarray(rgb), tmp_path / "plain.png"))
    assert np.array_equal(arr, rgb) and notes == []


def test_read_photo_downscales_a_huge_photo_and_refuses_what_is_no_image(tmp_path):
    big = Image.new("RGB", (6000, 6000), (200, 30, 30))
    arr, notes = read_photo(_save(big, tmp_path / "big.jpg", quality=80), max_side=1024)
    assert arr.shape == (1024, 1024, 3) and abs(int(arr[500, 500, 0]) - 200) < 8
    assert notes == ["downscaled from 6000×6000 to 1024×1024 (longer side 1024)"]
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "cut.png").write_bytes(io.BytesIO(_png_bytes(_scene(2))).read()[:60])
    for name in ("notes.txt", "empty.png", "cut.png"):
        with pytest.raises(UsageError, match=rf"{name} is not a readable image"):
            read_photo(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="image not found"):
        read_photo(tmp_path / "nope.png")


def _png_bytes(a: np.ndarray) -> bytes:
    b = io.BytesIO()
    Image.fromarray(a).save(b, format="PNG")
    return b.getvalue()


# ----------------------------------------------------------------------------- session
def test_session_answers_like_the_predictor_and_refuses_bad_requests(served, tmp_path):
    from l2l.models.predictor import SegmenterPredictor

    _, run, refs = served
    s = _session(run, refs)
    img = _scene(5, 80)
    path = _save(Image.fromarray(img), tmp_path / "x.png")
    r = s.respond(path, "the red circle", threshold=0.5)
    assert r.error is None and len(r.answers) == 1 and np.array_equal(r.image, img) and r.number == 1
    p = SegmenterPredictor.from_pretrained(run, "cpu")
    p.set_image(img)
    mask, prob = p.predict("the red circle")
    a = r.answers[0]
    assert np.array_equal(a.mask, mask) and np.allclose(a.prob, prob, atol=1e-6) and a.seconds > 0
    assert a.heat().shape == (80, 80, 3) and a.overlay(img).shape == (80, 80, 3)
    empty = s.respond(path, "the red circle", threshold=1.0).answers[0]
    assert not empty.mask.any() and any(n.startswith("EMPTY mask") for n in empty.notices)
    assert s.respond(path, "x", guidance="self").error.startswith("guidance 'self' is not available")
    (tmp_path / "t.txt").write_text("hello")
    for upload, text, want in [
        (None, "x", "no image"),
        (tmp_path / "t.txt", "x", "t.txt is not a readable image"),
        (path, "   ", "the sentence is empty"),
        (path, "x", None),
    ]:
        got = s.respond(upload, text)
        assert (got.error is None) if want is None else want in got.error  # and the session goes on serving
    refused = s.respond(tmp_path / "t.txt", "x").error  # the file's name, not the server's path or an exception class
    assert str(tmp_path) not in refused and "Error" not in refused


def test_two_requests_at_once_are_not_crossed(served, tmp_path):
    _, run, refs = served
    s = _session(run, refs)
    jobs = [
        (_save(Image.fromarray(_scene(10 + k, 64 + 8 * k)), tmp_path / f"{k}.png"), t)
        for k, t in enumerate(["the left one", "a small blue square on the right"])
    ]
    alone = [s.respond(p, t).answers[0].prob for p, t in jobs]
    got: dict[int, np.ndarray] = {}
    for _ in range(3):
        threads = [
            threading.Thread(target=lambda k=k: got.__setitem__(k, s.respond(*jobs[k]).answers[0].prob))
            for k in range(2)
        ]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert all(np.allclose(got[k], alone[k], atol=1e-6) for k in range(2))


def test_domain_check_flags_images_far_from_the_references(served):
    from l2l.models.domain import DomainCheck

    _, run, refs = served
    m = _session(run, refs).models[0]
    assert m.domain is not None and m.domain.references == 16 and "16 images of" in m.domain_note
    model = m.predictor.model
    near = m.domain.distances(model, [_scene(100 + i) for i in range(8)])
    noise = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3)).astype(np.uint8)
    far = m.domain.distances(model, list(noise))
    assert (far > 1).all() and np.median(near) < 1 and far.min() > near.max()
    r = m.answer(noise[0], "the red circle")
    assert any(n.startswith("FAR FROM THE TRAINING DOMAIN") for n in r.notices)
    with pytest.raises(UsageError, match="at least 8 reference images"):
        DomainCheck.fit(model, [_scene(1)] * 3, "three")


def test_model_card_and_a_missing_training_set(served):
    _, run, refs = served
    from l2l.serve.session import ServedModel

    m = ServedModel(run, "cpu")  # the run's data.root is gone: no domain check, and it says why
    assert m.domain is None and "no domain check" in m.domain_note and "is not here" in m.domain_note
    md = m.card.markdown()
    assert "| labels | 5% |" in md and "| method | supervised |" in md and "| steps | 123 |" in md
    assert "eval_val | oIoU 25.0%" in md and "broken" not in md  # a damaged eval file is left out
    # the card lists the guidance the page offers, and names a saved Hugging Face encoder by its kind
    from l2l.serve.card import ModelCard, _text_name

    card = ModelCard("x", "p", guidance=True)
    assert "yes: none / self |" in card.markdown(["none", "self"])
    hf = type(
        "T", (), {"name": "hf-config", "hf_config": {"model_type": "bert", "num_hidden_layers": 6, "hidden_size": 384}}
    )
    assert _text_name(hf) == "bert (6 layers, 384-d)"


# ----------------------------------------------------------------------------- batch with bad pairs
def test_batch_with_bad_pairs_finishes_the_others_and_lists_them(served, tmp_path, capsys):
    from l2l.cli import main

    _, run, _ = served
    good = [_save(Image.fromarray(_scene(k)), tmp_path / f"g{k}.png") for k in range(2)]
    (tmp_path / "bad.png").write_text("no")
    lines = [
        {"image": str(good[0]), "text": "the left one", "id": "a"},
        {"image": str(tmp_path / "missing.png"), "text": "x", "id": "b"},
        {"image": str(tmp_path / "bad.png"), "text": "x", "id": "c"},
        {"image": str(good[1]), "text": "", "id": "d"},
        {"image": str(good[1]), "text": "the red one", "id": "e"},
    ]
    man = tmp_path / "pairs.jsonl"
    man.write_text("".join(json.dumps(d) + "\n" for d in lines))
    out = tmp_path / "preds"
    assert main(["predict", "--ckpt", str(run), "--manifest", str(man), "--out-dir", str(out), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert (
        "3 pairs failed" in err
        and '"b": image not found' in err
        and '"c": ' in err
        and '"d": the sentence is empty' in err
    )
    assert [r["id"] for r in json.loads((out / "results.json").read_text())] == ["a", "e"]
    assert {f["id"] for f in json.loads((out / "failed.json").read_text())} == {"b", "c", "d"}


# ----------------------------------------------------------------------------- the page in a browser
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_page_in_a_real_browser(served, tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    from l2l.models.predictor import SegmenterPredictor
    from l2l.serve.app import serve

    _, run, refs = served
    session = _session(run, refs)
    port = _free_port()
    app = serve(session, port=port, block=False)
    img = _scene(7, 72)
    good = _save(Image.fromarray(img), tmp_path / "scene.png")
    (tmp_path / "notes.txt").write_text("not a picture")
    flags = BROWSER_FLAGS
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=flags)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#segment")
            # a file that is no image: a reason on the page, and the page keeps working
            page.set_input_files("#upload input[type=file]", str(tmp_path / "notes.txt"))
            page.wait_for_function("document.querySelector('#status').innerText.includes('not a readable image')")
            page.click("#upload button[aria-label='Clear']")
            page.set_input_files("#upload input[type=file]", str(good))
            page.wait_for_selector("#input-view img")
            page.fill("#sentence textarea", "the red circle")
            page.click("#segment")
            page.wait_for_selector("#mask-0 img", timeout=60_000)
            page.wait_for_selector("#overlay-0 img")
            page.wait_for_function("document.querySelector('#time-0').innerText.includes('ms')")
            src = page.get_attribute("#mask-0 img", "src")
            got = np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("L")) > 127
            shot = tmp_path / "serve_page.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    finally:
        app.close()
    p = SegmenterPredictor.from_pretrained(run, "cpu")
    p.set_image(img)
    want, _ = p.predict("the red circle")
    assert got.shape == want.shape and np.array_equal(got, want)  # the mask the page received is the predictor's
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_server_queues_two_requests_at_once(served, tmp_path):
    """Two clients at the same moment through the HTTP API: each gets its own answer (queued, not crossed)."""
    client_mod = pytest.importorskip("gradio_client", reason="gradio_client is not installed")
    from l2l.serve.app import serve

    _, run, refs = served
    session = _session(run, refs)
    port = _free_port()
    app = serve(session, port=port, block=False)
    jobs = [
        (_save(Image.fromarray(_scene(20 + k, 64 + 16 * k)), tmp_path / f"q{k}.png"), t)
        for k, t in enumerate(["the left one", "the red circle"])
    ]
    got: dict[int, np.ndarray] = {}
    spans: list[tuple[float, float]] = []
    respond = session.respond

    def timed(*a, **kw):  # when the page's handler ran: queued requests never overlap
        t = time.perf_counter()
        r = respond(*a, **kw)
        spans.append((t, time.perf_counter()))
        return r

    session.respond = timed  # type: ignore[method-assign]

    def ask(k: int) -> None:
        c = client_mod.Client(f"http://127.0.0.1:{port}/", verbose=False)
        out = c.predict(client_mod.handle_file(str(jobs[k][0])), jobs[k][1], "none", 0.5, api_name="/on_segment")
        got[k] = np.asarray(Image.open(out[4]).convert("L")) > 127  # the mask output

    try:
        threads = [threading.Thread(target=ask, args=(k,)) for k in range(2)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    finally:
        app.close()
    (a0, a1), (b0, b1) = sorted(spans)
    assert len(spans) == 2 and b0 >= a1  # one after the other
    # F17: the server keeps no upload on disk once it has read it
    # (the answers' PNGs stay there for the page to fetch, swept after 15 minutes and with the folder)
    assert session.upload_dir is not None and len(session._uploads) == 2  # both read from the upload folder
    assert not list(session.upload_dir.rglob("q0.png")) and not list(session.upload_dir.rglob("q1.png"))
    for k, (path, text) in enumerate(jobs):
        r = respond(path, text)
        assert got[k].shape == r.answers[0].mask.shape and np.array_equal(got[k], r.answers[0].mask)


def test_uploads_are_deleted_once_read_and_kept_in_memory_for_the_next_sentence(served, tmp_path, monkeypatch):
    """F17: uploads stayed in the system temp folder forever; now a file in the server's upload folder is
    deleted as soon as it is read, the decoded image serves the next sentences, a long-gone one is named."""
    import l2l.serve.session as session_mod

    _, run, refs = served
    session = _session(run, refs)
    session.upload_dir = (tmp_path / "uploads").resolve()
    monkeypatch.setattr(session_mod, "KEPT_UPLOADS", 1)
    paths = [_save(Image.fromarray(_scene(30 + k, 64)), tmp_path / "uploads" / f"u{k}" / "x.png") for k in range(2)]
    example = _save(Image.fromarray(_scene(40, 64)), tmp_path / "example.png")
    first = session.respond(paths[0], "the red circle")
    assert first.error is None and not paths[0].exists()
    again = session.respond(paths[0], "the left one")  # the same upload, another sentence: from memory
    assert again.error is None and np.array_equal(again.image, first.image)
    assert session.respond(paths[1], "the red circle").error is None  # pushes the first one out (1 kept)
    assert "no longer kept on the server; upload it again" in session.respond(paths[0], "x").error
    assert session.respond(example, "the red circle").error is None and example.exists()  # not an upload: kept


def test_prior_guidance_goes_through_the_provider_and_a_model_without_sesm_says_so(served, tmp_path):
    from l2l.models.predictor import SegmenterPredictor
    from l2l.priors.base import PriorRecord
    from l2l.serve.session import ServedModel, Session

    _, run, refs = served
    _model(True).save_pretrained(tmp_path / "sesm")
    calls = []

    class Box:  # a provider: the left half of the image
        name = "box"

        def __call__(self, batch):
            calls.append(batch[0].sentence)
            prob = np.zeros(batch[0].image.shape[:2], np.float32)
            prob[:, : prob.shape[1] // 2] = 1
            return [PriorRecord(b.sample_id, prob) for b in batch]

    s = Session(
        [ServedModel(tmp_path / "sesm", "cpu", name="sesm", domain_check=False), ServedModel(run, "cpu")], Box()
    )
    assert s.guidance_modes == ["none", "self", "prior"]
    img = _scene(9, 64)
    path = _save(Image.fromarray(img), tmp_path / "x.png")
    r = s.respond(path, "the left one", guidance="prior")
    assert r.error is None and calls == ["the left one"] and r.prior is not None
    p = SegmenterPredictor.from_pretrained(tmp_path / "sesm", "cpu")
    p.set_image(img)
    assert np.allclose(r.answers[0].prob, p.predict("the left one", prior=r.prior)[1], atol=1e-6)
    assert r.answers[0].guidance == "prior" and r.answers[1].guidance == "none"
    assert any("has no SESM" in n for n in r.answers[1].notices)
    assert "off" in s.models[0].domain_note


def test_serve_command_builds_the_session_and_refuses_bad_arguments(served, tmp_path, monkeypatch, capsys):
    import l2l.serve.app as app_mod
    from l2l.cli import main

    _, run, refs = served
    seen = {}
    monkeypatch.setattr(
        app_mod,
        "serve",
        lambda session, host, port, examples_manifest=None, max_upload_mb=None: seen.update(session=session, port=port),
    )
    argv = ["serve", "--ckpt", str(run), "--device", "cpu", "--port", "7999", "--domain-images", str(refs)]
    assert main(argv) == 0
    s = seen["session"]
    assert seen["port"] == 7999 and [m.name for m in s.models] == ["run"] and s.provider is None
    assert "domain check against 16 images" in capsys.readouterr().out
    assert main(argv + ["--ckpt", str(run)]) == 2  # two models of one name
    assert "same name" in capsys.readouterr().err
    assert main(argv + ["--ckpt", str(run), "--name", "a", "--name", "b"]) == 0
    assert [m.name for m in seen["session"].models] == ["a", "b"]
    assert main(argv + ["--ckpt", str(run)] * 2) == 2 and "one or two checkpoints" in capsys.readouterr().err
    _model(True).save_pretrained(tmp_path / "sesm")
    assert main(["serve", "--ckpt", str(tmp_path / "sesm"), "--prior", "simulated", "--device", "cpu"]) == 2
    assert "reads any image" in capsys.readouterr().err
    # a busy port and an unknown device: one line each, no traceback
    monkeypatch.undo()
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert (
            main(["serve", "--ckpt", str(run), "--device", "cpu", "--port", str(port), "--domain-images", str(refs)])
            == 2
        )
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is in use" in err and "Traceback" not in err
    assert main(["serve", "--ckpt", str(run), "--device", "tpu"]) == 2
    err = capsys.readouterr().err
    assert "tpu" in err and "Traceback" not in err
