"""The click correction and the simulated annotator (l2l.label.clicks, issue 36)."""

from __future__ import annotations

import numpy as np
import pytest

from l2l.errors import UsageError
from l2l.label.clicks import Click, ClickCorrection, next_click, simulate
from l2l.utils.masks import mask_iou


def _square(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_next_click_takes_the_largest_error_at_its_centre():
    truth = _square(20, 20, 2, 9, 2, 9)  # 7×7 object
    empty = np.zeros_like(truth)
    assert next_click(empty, truth) == Click(5.0, 5.0, True)  # the object's centre, positive
    wrong = _square(20, 20, 10, 19, 10, 19)  # a 9×9 false positive beats the 7×7 false negative
    assert next_click(wrong, truth) == Click(14.0, 14.0, False)
    assert next_click(truth, truth) is None
    edge = _square(20, 20, 0, 3, 0, 20)  # along the border: the border counts as the region's edge
    c = next_click(empty, edge)
    assert c is not None and c.positive and c.y == 1.0
    with pytest.raises(UsageError, match="differ in size"):
        next_click(empty[:5], truth)


class _Recorder:
    """A promptable mask model that returns the union of 3×3 squares around its positive points."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.shape = (1, 1)

    def set_image(self, image):
        self.shape = image.shape[:2]

    def predict(self, point_coords=None, point_labels=None, box=None, multimask_output=True):
        self.calls.append((None if point_coords is None else point_coords.copy(), point_labels, box))
        m = np.zeros(self.shape, bool)
        for (x, y), lab in zip(
            point_coords if point_coords is not None else [], [] if point_labels is None else point_labels
        ):
            if lab == 1:
                m[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2] = True
        return m[None], np.array([0.9])


def test_correction_sends_every_click_and_undo():
    rec = _Recorder()
    img = np.zeros((12, 12, 3), np.uint8)
    start = _square(12, 12, 0, 2, 0, 2)
    cc = ClickCorrection.start(rec, img, start)
    assert np.array_equal(cc.mask, start) and not rec.calls  # no click yet: the start mask, no model call
    cc.add(Click(5, 5, True))
    cc.add(Click(8, 8, False))
    pts, labels, box = rec.calls[-1]
    assert pts.tolist() == [[5, 5], [8, 8]] and labels.tolist() == [1, 0] and box is None
    assert cc.mask.sum() == 9 and len(cc.seconds) == 2
    cc.undo()
    assert rec.calls[-1][0].tolist() == [[5, 5]]
    cc.undo()
    assert np.array_equal(cc.mask, start)  # back to the start
    with pytest.raises(UsageError, match="differ in size"):
        ClickCorrection.start(rec, img, start[:4])


def test_simulate_stops_at_the_target_or_the_click_budget():
    rec = _Recorder()
    img = np.zeros((12, 12, 3), np.uint8)
    truth = _square(12, 12, 4, 7, 4, 7)  # exactly one 3×3 square: one positive click at its centre
    out = simulate(rec, img, truth, None, max_clicks=5, target_iou=0.9)
    assert out["ious"] == [0.0, 1.0] and out["clicks"] == [(5.0, 5.0, True)]
    big = _square(12, 12, 0, 12, 0, 12)
    out = simulate(rec, img, big, None, max_clicks=3)
    assert len(out["ious"]) == 4 and all(c[2] for c in out["clicks"])  # three clicks, every one positive
    assert simulate(rec, img, truth, truth)["ious"] == [1.0]  # accepted as it is


def test_stand_in_mask_model_corrects_a_synthref_object(synthref):
    from l2l.foundation.mask_model import MaskPredictor
    from l2l.utils.folders import resolve_model_path

    pred = MaskPredictor.from_pretrained(resolve_model_path("builtin:synthpool-sam"))
    r = synthref.samples("train")[0]
    image, truth = synthref.load_image(r.image_id), synthref.mask(r.ann_id)
    out = simulate(pred, image, truth, None, max_clicks=3, target_iou=0.99)
    assert out["ious"][0] == 0.0 and max(out["ious"]) > 0.5  # clicks on the object find it
    cc = ClickCorrection.start(pred, image)
    for x, y, p in out["clicks"]:
        cc.add(Click(x, y, p))
    assert mask_iou(cc.mask, truth) == pytest.approx(out["ious"][-1])  # the same clicks, the same mask


# ----------------------------------------------------------------------------- the project (l2l.label.project)
def _answer_image(project, image_id, status="accepted"):
    done = project.annotations()
    for t in project.tasks.values():
        if t.image_id == image_id and t.ref_id not in done:
            project.answer(
                t.ref_id,
                status,
                project.source.mask(t.ann_id) if status != "rejected" else None,
                rev=project.revision(t.ref_id),
            )


def test_project_saves_a_refer_dataset_after_every_answer(synthref_dir, tmp_path):
    import json

    from l2l.data.refer import ReferDataset
    from l2l.data.splits import LabelSplit
    from l2l.label.project import LabelProject

    p = LabelProject.create(tmp_path / "proj", synthref_dir)
    assert p.status()["labeled_images"] == 0
    first = p.tasks[min(p.tasks)]
    corrected = _square(*p.source.mask(first.ann_id).shape, 1, 6, 2, 9)
    rev = p.answer(first.ref_id, "corrected", corrected, rev=0, clicks=[(3.0, 4.0, True)], seconds=2.5)
    assert rev == 1
    ds = ReferDataset.open(tmp_path / "proj" / "dataset")  # the saved dataset opens with the loader
    assert ds.name == p.source.name and ds.fingerprint() == p.source.fingerprint()  # the source's priors serve it
    assert np.array_equal(ds.mask(int(ds.refs[first.ref_id]["ann_id"])), corrected)  # the clicked mask is the label
    others = [t for t in p.tasks.values() if t.image_id == first.image_id and t.ref_id != first.ref_id]
    split = LabelSplit.load(tmp_path / "proj" / "dataset" / "label_split.json")
    assert (first.image_id in split.labeled) == (not others)  # labeled only when every ref of it is answered
    _answer_image(p, first.image_id)
    split = LabelSplit.load(tmp_path / "proj" / "dataset" / "label_split.json")
    assert first.image_id in split.labeled and len(split.labeled) == 1
    assert abs(split.fraction - 1 / len(set(split.labeled) | set(split.unlabeled))) < 1e-12
    # a rejected ref leaves training; an image whose refs are all rejected is not labeled
    img2 = sorted({t.image_id for t in p.tasks.values()})[1]
    _answer_image(p, img2, "rejected")
    ds = ReferDataset.open(tmp_path / "proj" / "dataset")
    assert (
        "rejected" in ds.splits
        and img2 not in LabelSplit.load(tmp_path / "proj" / "dataset" / "label_split.json").labeled
    )
    log = [json.loads(line) for line in (tmp_path / "proj" / "log.jsonl").read_text().splitlines()]
    assert log[0]["event"] == "answer" and log[0]["clicks"] == [[3.0, 4.0, True]] and log[0]["seconds"] == 2.5
    # reopening reads the same answers; the overrides name the exact fraction the split holds
    again = LabelProject(tmp_path / "proj")
    assert again.status() == p.status() and again.status()["clicks"] == 1
    ov = dict(o.split("=", 1) for o in again.train_overrides())
    now = LabelSplit.load(ov["data.split_file"])
    assert float(ov["data.label_fraction"]) == now.fraction == 1 / (len(now.labeled) + len(now.unlabeled))


def test_two_tabs_never_overwrite_each_other(synthref_dir, tmp_path):
    from l2l.label.project import Conflict, LabelProject

    p = LabelProject.create(tmp_path / "proj", synthref_dir)
    other_tab = LabelProject(tmp_path / "proj")
    t = p.tasks[min(p.tasks)]
    m = p.source.mask(t.ann_id)
    seen = p.revision(t.ref_id)  # both tabs show revision 0
    p.answer(t.ref_id, "accepted", m, rev=seen)
    with pytest.raises(Conflict, match="answered elsewhere"):
        other_tab.answer(t.ref_id, "rejected", rev=seen)
    assert other_tab.annotations()[t.ref_id]["status"] == "accepted"  # the first answer stands
    rev = other_tab.undo(t.ref_id, rev=other_tab.revision(t.ref_id))
    assert t.ref_id not in p.annotations() and p.revision(t.ref_id) == rev == 2  # undo counts as a revision
    with pytest.raises(UsageError, match="needs its mask"):
        p.answer(t.ref_id, "corrected", None)
    with pytest.raises(UsageError, match="mask .* but image"):
        p.answer(t.ref_id, "corrected", m[:-1])
    with pytest.raises(UsageError, match="empty"):
        p.answer(t.ref_id, "accepted", np.zeros_like(m))
    with pytest.raises(UsageError, match="no task"):
        p.answer(10**9, "skipped")


def test_project_from_a_photo_folder(tmp_path):
    from PIL import Image

    from l2l.errors import DataError, MissingFileError
    from l2l.label.project import LabelProject

    photos = tmp_path / "photos"
    photos.mkdir()
    for name, size in (("a.jpg", (40, 30)), ("b.png", (20, 20))):
        Image.new("RGB", size, (200, 10, 10)).save(photos / name)
    sents = tmp_path / "sentences.jsonl"
    sents.write_text(
        '{"image": "a.jpg", "sentence": "the red box", "object": "box"}\n'
        '{"image": "a.jpg", "sentence": "the box on the left", "object": "box"}\n'
        '{"image": "b.png", "sentence": "the square"}\n'
    )
    p = LabelProject.from_images(tmp_path / "proj", photos, sents)
    assert len(p.tasks) == 2 and [len(t.sentences) for t in p.tasks.values()] == [2, 1]
    t = p.tasks[1]
    p.answer(t.ref_id, "corrected", _square(30, 40, 5, 20, 5, 30), rev=0, sentences={t.sentences[1][0]: "the left box"})
    from l2l.data.refer import ReferDataset

    ds = ReferDataset.open(tmp_path / "proj" / "dataset")
    assert [r.sentence for r in ds.samples("train") if r.ref_id == 1] == ["the red box", "the left box"]
    assert ds.mask(int(ds.refs[1]["ann_id"])).sum() == 15 * 25
    bad = tmp_path / "bad.tsv"
    bad.write_text("c.jpg\tthe cat\n")
    with pytest.raises(MissingFileError, match="c.jpg"):
        LabelProject.from_images(tmp_path / "proj2", photos, bad)
    bad.write_text("a.jpg the cat\n")
    with pytest.raises(DataError, match="line 1"):
        LabelProject.from_images(tmp_path / "proj3", photos, bad)


# ----------------------------------------------------------------------------- strategies (l2l.label.strategies)
def test_strategies_rank_what_they_promise():
    from l2l.label.strategies import STRATEGIES, Candidate, k_center, rank_images

    full, half = np.ones((8, 8), np.float32), np.full((8, 8), 0.5, np.float32)
    empty = np.zeros((8, 8), np.float32)
    cands = [
        Candidate(1, 10, p_w=full, prior=full, feature=np.array([0.0, 0.0])),  # agree, certain
        Candidate(2, 20, p_w=full, prior=empty, feature=np.array([0.1, 0.0])),  # disagree, certain
        Candidate(3, 30, p_w=half, prior=half, feature=np.array([5.0, 5.0])),  # agree, unsure, prior in the band
        Candidate(4, 30, p_w=half, prior=half, feature=np.array([5.0, 5.0])),
    ]
    assert rank_images(cands, "disagreement", 1) == [20]
    assert rank_images(cands, "uncertainty", 1) == [30]
    assert rank_images(cands, "rple-state", 1) == [30]  # 0.5 lies between τ_bg 0.2 and τ_fg 0.7: all ignored
    assert rank_images(cands, "diversity", 1, labeled_features=[np.array([0.0, 0.0])]) == [30]
    assert rank_images(cands, "diversity", 2, labeled_features=[np.array([5.0, 5.0])]) == [10, 20]
    r1 = rank_images(cands, "random", 3, seed=1)
    assert sorted(r1) == [10, 20, 30] and r1 == rank_images(cands, "random", 3, seed=1)
    orders = {tuple(rank_images(cands, "random", 3, seed=s)) for s in range(10)}
    assert len(orders) > 1  # the seed decides the order
    assert set(STRATEGIES) >= {"random", "disagreement", "uncertainty", "rple-state", "diversity"}
    assert sorted(k_center({1: np.zeros(2), 2: np.ones(2)}, 5)) == [1, 2]  # k above the pool: all of it, once
    with pytest.raises(UsageError, match="unknown strategy"):
        rank_images(cands, "best", 1)
    with pytest.raises(UsageError, match="needs prior"):
        rank_images([Candidate(5, 50, p_w=full)], "disagreement", 1)


def test_candidates_read_the_model_and_the_priors(synthref):
    from l2l.label.strategies import candidates
    from l2l.models.predictor import SegmenterPredictor

    from .test_predictor import _model

    pred = SegmenterPredictor(_model(False), device="cpu")
    images = synthref.image_ids("train")[:2]

    class Priors:
        def get(self, sid):
            return np.full((10, 10), 0.25, np.float32)

    cands = candidates(pred, synthref, images, Priors(), size=16)
    want = [r for r in synthref.samples("train") if r.image_id in images]
    assert sorted(c.sample_id for c in cands) == sorted(r.sample_id for r in want)
    c = cands[0]
    assert c.p_w.shape == c.prior.shape == (16, 16) and np.allclose(c.prior, 0.25)
    assert 0 <= c.p_w.min() and c.p_w.max() <= 1 and c.feature.shape == (8 * 16,)
    same = [x for x in cands if x.image_id == c.image_id]
    assert all(np.array_equal(x.feature, c.feature) for x in same)


# ----------------------------------------------------------------------------- one tab of the page (l2l.label.session)
def test_a_tab_accepts_corrects_rejects_skips_and_undoes(synthref_dir, tmp_path):
    import json

    from l2l.label.project import LabelProject
    from l2l.label.session import LabelTab

    p = LabelProject.create(tmp_path / "proj", synthref_dir)
    order = sorted(p.tasks)[::-1][:3]
    (p.folder / "queue.json").write_text(json.dumps({"refs": order}))

    class Priors:  # the truth as the prior of the first queued task only
        def get(self, sid):
            t = p.tasks[order[0]]
            return p.source.mask(t.ann_id).astype(np.float32) if sid == t.sentences[0][0] else None

    tab = LabelTab(p, _Recorder(), Priors())
    t = tab.next_task()
    assert t.ref_id == order[0] and tab.start == "prior"  # the queue first, the prior as the start mask
    assert tab.accept() == order[0] and p.annotations()[order[0]]["status"] == "accepted"
    assert np.array_equal(p.mask(order[0]), p.source.mask(t.ann_id))
    t = tab.next_task()
    assert t.ref_id == order[1] and tab.start == "none" and not tab.mask.any()
    tab.click(5, 5)
    tab.click(9, 9)
    tab.undo_click()
    want = tab.click(12, 6)
    tab.accept()
    e = p.annotations()[order[1]]
    assert e["status"] == "corrected" and e["clicks"] == [[5.0, 5.0, True], [12.0, 6.0, True]]
    assert np.array_equal(p.mask(order[1]), want) and e["seconds"] >= 0
    assert tab.next_task().ref_id == order[2]
    tab.box_corner(2, 3)  # a box by two corners: the mask model gets it beside the clicks
    tab.box_corner(8, 1)
    assert tab.correction.box == (2, 1, 8, 3)
    assert tab.masker.calls[-1][2].tolist() == [2, 1, 8, 3]
    tab.restart()
    assert tab.correction.box is None and not tab.mask.any()
    tab.skip()
    nxt = tab.next_task()
    assert nxt.ref_id not in order  # past the queue: ref order; the skipped one waits until the end
    tab.reject()
    assert p.annotations()[nxt.ref_id]["status"] == "rejected"
    assert tab.undo_answer().ref_id == nxt.ref_id and nxt.ref_id not in p.annotations()
    # another tab answered the shown task meanwhile: this tab's answer is refused, nothing overwritten
    other = LabelTab(p, _Recorder())
    other.show(nxt.ref_id)
    other.click(3, 3)
    other.accept()
    with pytest.raises(Exception, match="answered elsewhere"):
        tab.reject()
    assert p.annotations()[nxt.ref_id]["status"] == "corrected"
    with pytest.raises(UsageError, match="no task shown"):
        tab.click(1, 1)


# ----------------------------------------------------------------------------- the page in a real browser
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_label_page_in_a_real_browser(synthref_dir, tmp_path):
    """Correct with two clicks and accept, accept a prior with the key, reload: the answers are in the saved
    REFER files and the saved mask is the mask model's for the same clicks."""
    import json
    import shutil
    import time

    from .test_serve import _free_port

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    from l2l.data.refer import ReferDataset
    from l2l.foundation.mask_model import MaskPredictor
    from l2l.label.page import serve
    from l2l.label.project import LabelProject
    from l2l.label.session import LabelTab
    from l2l.utils.folders import resolve_model_path

    p = LabelProject.create(tmp_path / "proj", synthref_dir)
    first, second, third = sorted(p.tasks)[:3]
    prior_of_second = p.source.mask(p.tasks[second].ann_id)

    class Priors:
        def get(self, sid):
            return prior_of_second.astype(np.float32) if sid == p.tasks[second].sentences[0][0] else None

    masker = MaskPredictor.from_pretrained(resolve_model_path("builtin:synthpool-sam"))
    port = _free_port()
    app = serve(lambda: LabelTab(p, masker, Priors()), port=port, block=False)
    from .test_serve import BROWSER_FLAGS as flags

    info = "(document.querySelector('#info') || {innerText: ''}).innerText"
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=flags)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function(f"{info}.includes('ref {first} ')", timeout=60_000)
            box = page.locator("#task-image img").bounding_box()
            assert box is not None
            t0 = time.perf_counter()
            page.click("#task-image img", position={"x": box["width"] * 0.3, "y": box["height"] * 0.4})
            page.wait_for_function(f"{info}.includes('1 clicks')")
            answer_s = time.perf_counter() - t0
            page.click("#task-image img", position={"x": box["width"] * 0.6, "y": box["height"] * 0.7})
            page.wait_for_function(f"{info}.includes('2 clicks')")
            page.click("#accept")
            page.wait_for_function(f"{info}.includes('ref {second} ') && {info}.includes('start: prior')")
            page.keyboard.press("a")  # accept the prior with one key
            page.wait_for_function(f"{info}.includes('ref {third} ')")
            page.reload()
            page.wait_for_function(f"{info}.includes('ref {third} ')", timeout=60_000)
            assert "2 of" in page.inner_text("#status")
            browser.close()
    finally:
        app.close()
    print(f"page answer to a click: {answer_s:.2f} s")
    answers = json.loads((p.folder / "annotations.json").read_text())["tasks"]
    a1, a2 = answers[str(first)], answers[str(second)]
    assert a1["status"] == "corrected" and len(a1["clicks"]) == 2 and all(c[2] for c in a1["clicks"])
    assert a2["status"] == "accepted" and a2["clicks"] == []
    from l2l.label.clicks import Click, ClickCorrection

    cc = ClickCorrection.start(masker, p.source.load_image(p.tasks[first].image_id))
    for x, y, pos in a1["clicks"]:
        want = cc.add(Click(x, y, pos))
    ds = ReferDataset.open(p.folder / "dataset")  # the saved REFER files
    assert np.array_equal(ds.mask(int(ds.refs[first]["ann_id"])), want) and want.any()
    assert np.array_equal(ds.mask(int(ds.refs[second]["ann_id"])), prior_of_second)


# ----------------------------------------------------------------------------- the commands: a round of the loop
@pytest.mark.slow
def test_a_round_trains_on_the_labels_records_it_and_ranks_the_next(synthref_dir, tmp_path):
    import json

    from l2l.cli import main
    from l2l.label import commands
    from l2l.label.project import LabelProject

    from .test_trainer import TINY

    assert main(["label", "init", str(tmp_path / "proj"), "--data", str(synthref_dir)]) == 0
    p = LabelProject(tmp_path / "proj")
    with pytest.raises(UsageError, match="no image is labeled"):
        commands.train(p, None, str(tmp_path / "r0"), TINY)
    for image_id in sorted({t.image_id for t in p.tasks.values()})[:3]:
        _answer_image(p, image_id)
    row = commands.train(
        p,
        None,
        str(tmp_path / "r1"),
        [*TINY, "method=supervised", "total_steps=4", "batch_size=2"],
        strategy="uncertainty",
        k=2,
    )
    assert row["round"] == 1 and row["labeled_images"] == 3 and 0 <= row["oIoU"] <= 100
    split = json.loads((tmp_path / "r1" / "label_split.json").read_text())
    assert split["n_labeled"] == 3  # the run trained on the project's split, not a hash-ranked one
    q = json.loads((p.folder / "queue.json").read_text())
    assert len(q["images"]) == 2 and not set(q["images"]) & set(p.labeled_images())
    assert [json.loads(line)["round"] for line in (p.folder / "rounds.jsonl").read_text().splitlines()] == [1]
    with pytest.raises(UsageError, match="--priors"):
        commands.rank(p, str(tmp_path / "r1" / "last"), "disagreement", 2)
    assert main(["label", "status", str(p.folder)]) == 0


@pytest.mark.slow
def test_a_photo_project_trains_without_a_val_split(tmp_path):
    import json

    from PIL import Image

    from l2l.label import commands
    from l2l.label.project import LabelProject

    from .test_trainer import TINY

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(photos / f"p{i}.png")
        lines.append(json.dumps({"image": f"p{i}.png", "sentence": f"the thing number {i}"}))
    (tmp_path / "s.jsonl").write_text("\n".join(lines) + "\n")
    p = LabelProject.from_images(tmp_path / "proj", photos, tmp_path / "s.jsonl")
    for ref_id in sorted(p.tasks)[:2]:
        p.answer(ref_id, "corrected", _square(48, 64, 10, 30, 10, 40), rev=0)
    with pytest.raises(UsageError, match="data.eval_split=none"):
        commands.train(p, None, str(tmp_path / "r1"), TINY)
    tiny = [*TINY, "method=supervised", "total_steps=3", "batch_size=2", "data.eval_split=none"]
    row = commands.train(p, None, str(tmp_path / "r1"), tiny, strategy="uncertainty", k=1)
    assert row["oIoU"] is None and row["labeled_images"] == 2 and len(row["queue"]) == 1
    assert (tmp_path / "r1" / "best" / "model.safetensors").exists() and not list((tmp_path / "r1").glob("eval_*"))


def test_a_project_over_a_refcoco_layout_keeps_its_source_untouched(tmp_path):
    from l2l.data.refer import ReferDataset
    from l2l.label.project import LabelProject

    from .conftest import build_refer_fixture

    build_refer_fixture(tmp_path / "refer")
    p = LabelProject.create(tmp_path / "proj", tmp_path / "refer", dataset="refcoco")
    t = p.tasks[min(p.tasks)]
    sid, old = t.sentences[0]
    p.answer(t.ref_id, "accepted", p.source.mask(t.ann_id), rev=0, sentences={sid: "the edited words"})
    p.answer(t.ref_id, "accepted", p.source.mask(t.ann_id), rev=1, sentences={sid: "the edited words"})  # twice
    assert p.source.sample(sid).sentence == old  # the pickled source's refs are not edited in memory
    assert [s["sent"] for s in p.source.refs[t.ref_id]["sentences"]][0] == old
    ds = ReferDataset.open(tmp_path / "proj" / "dataset")
    assert ds.name == "refcoco(unc)" and ds.sample(sid).sentence == "the edited words"
    assert ds.refs[t.ref_id]["sentences"][0]["original"] == old
