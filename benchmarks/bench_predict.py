"""Prediction speed, the page's answer time and the domain check, measured on a trained model.

    python benchmarks/bench_predict.py --ckpt runs/demo/l2l_5pct [--ckpt2 runs/p1_sup_5] \
        --out docs/results/serve/bench.json --screenshot docs/figures/serve_page.png

Measures (nothing else should run on the machine):
* sentences/s of ``Segmenter.segment`` (the image re-encoded for every sentence) and of
  ``SegmenterPredictor`` (``set_image`` once, then ``predict``) with 1 and with 10 sentences per
  image, over ``--images`` val images of the model's own dataset (text features cached first for
  both: the difference is the image work and the batching);
* the page's answer time, server side (``Session.respond``: upload read, model, notices): a new
  image, and the same image with a new sentence; medians over the images;
* the browser round trip (click → mask shown) in Debian's chromium when it is installed, and a
  screenshot of the page (with ``--ckpt2``: two models side by side) on a real COCO photo;
* the domain check: alarm rate on the val images of the training dataset (false alarms) and on the
  COCO photos of ``../shared/data`` (a different domain).
"""

from __future__ import annotations

import argparse
import glob
import json
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--ckpt2", default=None, help="a second model for the side-by-side screenshot")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--screenshot", default=None)
    ap.add_argument(
        "--shared-data",
        default=str(Path(__file__).resolve().parents[2] / "shared" / "data"),
        help="the workplace's shared/data folder (COCO photos with RefCOCO sentences), when there is one",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shared_data = Path(args.shared_data)
    shared_data_dir = lambda: shared_data if (shared_data / "coco_train2014_sample_224").is_dir() else None  # noqa: E731

    from l2l.data.images import to_rgb_uint8
    from l2l.data.refer import ReferDataset
    from l2l.serve.session import ServedModel, Session

    served = ServedModel(args.ckpt, "cpu")
    model, pred = served.predictor.model, served.predictor
    ds = ReferDataset.open(served.card.data_root)
    recs = ds.samples("val")
    by_image: dict[int, list[str]] = {}
    for r in recs:
        by_image.setdefault(r.image_id, []).append(r.sentence)
    pool = [s for ss in by_image.values() for s in ss]
    image_ids = list(by_image)[: args.images]
    images = [to_rgb_uint8(ds.image_path(i)) for i in image_ids]
    texts10 = [(by_image[i] + pool)[:10] for i in image_ids]
    res: dict = {
        "ckpt": args.ckpt,
        "machine": f"{platform.node()} {torch.get_num_threads()} threads",
        "date": time.strftime("%Y-%m-%d"),
        "images": len(images),
    }

    # the frozen text encoder caches features per sentence: encode every sentence once first, so that
    # neither timing pays (or is spared) the text work and the comparison is the image work alone
    for ts in texts10:
        model.text.encode(ts, torch.device("cpu"))

    def rate(fn, n_sent: int) -> float:
        fn(images[0], texts10[0][:n_sent])  # warm-up (text encoder caches, allocator)
        t = time.perf_counter()
        for img, ts in zip(images, texts10):
            fn(img, ts[:n_sent])
        return len(images) * n_sent / (time.perf_counter() - t)

    def seg(img, ts):
        for s in ts:
            model.segment(img, s)

    def predictor(img, ts):
        pred.set_image(img)
        pred.predict(ts)

    for n in (1, 10):
        res[f"segment_sentences_per_s_{n}"] = rate(seg, n)
        res[f"predictor_sentences_per_s_{n}"] = rate(predictor, n)
        print(
            f"{n:2d} sentences/image: segment() {res[f'segment_sentences_per_s_{n}']:.1f}/s, "
            f"predictor {res[f'predictor_sentences_per_s_{n}']:.1f}/s"
        )

    session = Session([served])
    work = Path("runs/bench_predict")
    work.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    paths = []
    for i, img in zip(image_ids, images):
        paths.append(work / f"{i}.png")
        Image.fromarray(img).save(paths[-1])
    session.respond(paths[0], "warm up")
    new, same = [], []
    for p, ts in zip(paths[1:], texts10[1:]):
        t = time.perf_counter()
        session.respond(p, ts[0])
        new.append(time.perf_counter() - t)
        t = time.perf_counter()
        session.respond(p, ts[1])
        same.append(time.perf_counter() - t)
    res["page_answer_new_image_s"] = statistics.median(new)
    res["page_answer_same_image_s"] = statistics.median(same)
    res["page_answer_new_image_max_s"] = max(new)
    print(
        f"page answer (server): new image {res['page_answer_new_image_s']:.3f} s (max {max(new):.3f}), "
        f"same image, new sentence {res['page_answer_same_image_s']:.3f} s"
    )

    dom = served.domain
    assert dom is not None, served.domain_note
    val_imgs = [to_rgb_uint8(ds.image_path(i)) for i in ds.image_ids("val")[:200]]
    res["domain_val_alarm_rate"] = float((dom.distances(model, val_imgs) > 1).mean())
    res["domain_val_images"] = len(val_imgs)
    shared = shared_data_dir()
    if shared is not None:
        from l2l.data.images import read_photo

        coco = sorted(glob.glob(str(shared / "coco_train2014_sample_224" / "*.jpg")))
        res["domain_coco_alarm_rate"] = float((dom.distances(model, [read_photo(p)[0] for p in coco]) > 1).mean())
        res["domain_coco_images"] = len(coco)
    print(
        f"domain check: alarms on {res['domain_val_images']} val images {res['domain_val_alarm_rate']:.1%}, "
        f"on {res.get('domain_coco_images', 0)} COCO photos {res.get('domain_coco_alarm_rate', float('nan')):.1%}"
    )

    chromium = shutil.which("chromium")
    if chromium:
        res.update(browser(args, served, paths[1], texts10[1][0], shared, chromium))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2))
        print(f"-> {args.out}")


def browser(args, served, image: Path, text: str, shared: Path | None, chromium: str) -> dict:
    """Round trip in a real browser, and the screenshot (on a COCO photo when ``shared`` is there)."""
    import socket

    from playwright.sync_api import sync_playwright

    from l2l.serve.app import HEADLESS_CHROMIUM_FLAGS, serve
    from l2l.serve.session import ServedModel, Session

    models = [served] + ([ServedModel(args.ckpt2, "cpu")] if args.ckpt2 else [])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = serve(Session(models), port=port, block=False)
    flags = list(HEADLESS_CHROMIUM_FLAGS)
    out = {}
    try:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=chromium, args=flags)
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#segment")
            times = []
            for k, (img, sent) in enumerate([(image, text), (image, "the second one from the left")] * 3):
                if k == 0:
                    page.set_input_files("#upload input[type=file]", str(img))
                    page.wait_for_selector("#input-view img")
                page.fill("#sentence textarea", sent)
                before = page.inner_text("#time-0")
                t = time.perf_counter()
                page.click("#segment")
                page.wait_for_function(
                    "b => { const s = document.querySelector('#time-0').innerText; "
                    "return s.includes('ms') && s !== b; }",
                    arg=before,
                    timeout=60_000,
                )
                times.append(time.perf_counter() - t)
            out["browser_round_trip_s"] = statistics.median(times)
            print(f"browser round trip (click → answer shown): median {out['browser_round_trip_s']:.3f} s")
            if args.screenshot and shared is not None:
                page.click("#upload button[aria-label='Clear']")
                page.set_input_files(
                    "#upload input[type=file]",
                    str(shared / "coco_train2014_sample_224" / "COCO_train2014_000000000605.jpg"),
                )
                page.wait_for_selector("#input-view img")
                page.fill("#sentence textarea", "cup of coffee")
                page.click("#segment")
                page.wait_for_function("document.querySelector('#time-0').innerText.includes('ms')", timeout=60_000)
                page.wait_for_timeout(500)
                Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.screenshot, full_page=True)
                print(f"screenshot -> {args.screenshot}")
            b.close()
    finally:
        app.close()
    return out


if __name__ == "__main__":
    main()
