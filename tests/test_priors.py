"""Prior store (resume, corruption, sharding) and the simulated provider's failure model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from l2l.priors.base import PriorInput, PriorRecord
from l2l.priors.evaluate import evaluate_priors
from l2l.priors.simulated import SimulatedConfig, SimulatedProvider
from l2l.priors.store import PriorStore


@pytest.fixture(scope="module")
def ids(synthref):
    return [r.sample_id for r in synthref.samples("train")[:40]]


def _loader(ds, calls=None, fail_after=None):
    def load(sid):
        if calls is not None:
            calls.append(sid)
            if fail_after is not None and len(calls) > fail_after:
                raise KeyboardInterrupt("killed")
        rec = ds.sample(sid)
        return PriorInput(sid, ds.load_image(rec.image_id), rec.sentence)

    return load


def _all(store, ids):
    return {i: store.get(i) for i in ids}


def test_killed_generation_resumes_identically_without_duplicate_work(synthref, ids, tmp_path):
    prov = SimulatedProvider(synthref)
    ref = PriorStore(tmp_path / "ref")
    ref.generate(prov, ids, _loader(synthref), batch_size=4, show_progress=False)
    cut = PriorStore(tmp_path / "cut")
    calls: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        cut.generate(prov, ids, _loader(synthref, calls, fail_after=17), batch_size=4, show_progress=False)
    n_done = len(PriorStore(tmp_path / "cut").entries())
    assert 0 < n_done < len(ids)
    calls2: list[int] = []
    res = PriorStore(tmp_path / "cut").generate(prov, ids, _loader(synthref, calls2), batch_size=4, show_progress=False)
    assert res["skipped"] == n_done and res["generated"] == len(ids) - n_done == len(calls2)
    a, b = _all(PriorStore(tmp_path / "ref"), ids), _all(PriorStore(tmp_path / "cut"), ids)
    assert all(np.array_equal(a[i], b[i]) for i in ids)


def test_corrupt_torn_and_orphan_entries_are_regenerated_never_used(synthref, ids, tmp_path):
    prov = SimulatedProvider(synthref)
    st = PriorStore(tmp_path)
    st.generate(prov, ids[:6], _loader(synthref), show_progress=False)
    e = st.entries()[ids[0]]
    (tmp_path / e["file"]).write_bytes(b"\x89PNG garbage")  # corrupt map
    with pytest.raises(ValueError, match="corrupt"):
        PriorStore(tmp_path).get(ids[0])
    mf = tmp_path / "manifest.rank0.jsonl"
    lines = mf.read_text().splitlines()
    mf.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])  # torn last line
    res = PriorStore(tmp_path).generate(prov, ids[:6], _loader(synthref), show_progress=False)
    assert res["generated"] == 2  # the corrupt one and the one whose line was torn
    fresh = PriorStore(tmp_path)
    assert all(fresh.has(i) for i in ids[:6]) and fresh.get(ids[0]) is not None
    # F4: only a torn last line — "1 generated" must mean the store holds all six again
    data = mf.read_bytes()
    mf.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 1 + 20])
    assert PriorStore(tmp_path).generate(prov, ids[:6], _loader(synthref), show_progress=False)["generated"] == 1
    assert len(PriorStore(tmp_path).entries()) == 6 and all(PriorStore(tmp_path).has(i) for i in ids[:6])


def test_ranks_write_disjoint_shards(synthref, ids, tmp_path):
    prov = SimulatedProvider(synthref)
    for r in (0, 1):
        PriorStore(tmp_path).generate(prov, ids, _loader(synthref), rank=r, world=2, show_progress=False)
    m0 = {json.loads(x)["sample_id"] for x in (tmp_path / "manifest.rank0.jsonl").read_text().splitlines()}
    m1 = {json.loads(x)["sample_id"] for x in (tmp_path / "manifest.rank1.jsonl").read_text().splitlines()}
    assert not m0 & m1 and m0 | m1 == set(ids)
    with pytest.raises(ValueError, match="another configuration"):
        PriorStore(tmp_path).init(SimulatedProvider(synthref, SimulatedConfig(seed=1)))


def test_store_round_trip_precision_and_validation(tmp_path):
    st = PriorStore(tmp_path)
    p = np.linspace(0, 1, 60, dtype=np.float32).reshape(6, 10)
    st.put(PriorRecord(5, p, {"box": [1, 2, 3, 4]}, 0.9, {"provider": "x"}))
    assert np.abs(st.get(5) - p).max() <= 1 / 510 + 1e-6 and st.record(5)["cue"]["box"] == [1, 2, 3, 4]
    assert st.get(6) is None
    with pytest.raises(ValueError, match="outside"):
        PriorRecord(1, np.full((2, 2), 1.5))


def test_simulated_failure_model(synthref, ids):
    recs = [synthref.sample(i) for i in ids]
    inp = [PriorInput(r.sample_id, synthref.load_image(r.image_id), r.sentence) for r in recs]
    gt = [synthref.mask(r.ann_id) for r in recs]

    def iou(cfg):
        out = SimulatedProvider(synthref, cfg)(inp)
        return np.array(
            [((o.prob >= 0.5) & g).sum() / max(((o.prob >= 0.5) | g).sum(), 1) for o, g in zip(out, gt)]
        ), out

    clean, out = iou(SimulatedConfig(miss=0, drift=0, partial=0, bloat=0, box=0, noise=0))
    assert clean.mean() > 0.85
    assert all("SIMULATION" in o.provenance["warning"] for o in out)
    missed, out = iou(SimulatedConfig(miss=1.0))
    assert missed.max() == 0 and all(o.confidence < 0.1 for o in out)
    drifted, _ = iou(SimulatedConfig(miss=0, drift=1.0, partial=0, bloat=0, box=0, noise=0))
    has_other = [len(synthref.image_anns(r.image_id)) > 1 for r in recs]
    assert drifted[np.array(has_other)].mean() < 0.1  # grounded on another object
    a, _ = iou(SimulatedConfig())
    b, _ = iou(SimulatedConfig())
    assert np.array_equal(a, b) and 0.4 < a.mean() < 0.9  # deterministic; useful but imperfect


def test_evaluate_priors(synthref, ids, tmp_path):
    st = PriorStore(tmp_path)
    st.generate(
        SimulatedProvider(synthref, SimulatedConfig(miss=0, drift=0, partial=0, bloat=0, box=0, noise=0)),
        ids[:10],
        _loader(synthref),
        show_progress=False,
    )
    r = evaluate_priors(st, synthref, ids[:12])
    assert r["samples"] == 10 and r["missing"] == 2 and r["mean_IoU"] > 0.85 and r["provider"] == "simulated"


def test_teacher_provider_from_a_saved_model(synthref, ids, tmp_path):
    from l2l.config import load_config
    from l2l.models.segmenter import ModelConfig, Segmenter
    from l2l.priors.teacher import TeacherProvider

    cfg = load_config(
        ModelConfig,
        None,
        [
            "visual.name=conv",
            "visual.conv_channels=[8,16,16,32]",
            "text.name=tiny",
            "text.tiny_dim=16",
            "decoder_dim=16",
            "sesm.heads=2",
            "image_size=64",
        ],
    )
    Segmenter(cfg).save_pretrained(tmp_path / "model")
    prov = TeacherProvider(tmp_path / "model")
    st = PriorStore(tmp_path / "store")
    st.generate(prov, ids[:5], _loader(synthref), show_progress=False)
    for i in ids[:5]:
        p = st.get(i)
        assert p.shape == synthref.load_image(synthref.sample(i).image_id).shape[:2] and 0 <= p.min() <= p.max() <= 1
    assert (
        st.meta["config"]["weights_sha256"] == prov.weights_sha
        and st.record(ids[0])["provenance"]["provider"] == "teacher"
    )


def test_files_provider_validates(synthref, ids, tmp_path):
    from PIL import Image

    from l2l.priors.files import FilesProvider

    inp = [_loader(synthref)(i) for i in ids[:3]]
    h, w = inp[0].image.shape[:2]
    Image.fromarray(np.full((h, w), 255, np.uint8)).save(tmp_path / f"{ids[0]}.png")
    np.save(tmp_path / f"{ids[1]}.npy", np.full((h, w), 0.25, np.float32))
    cues = tmp_path / "cues.json"
    cues.write_text(json.dumps({str(ids[0]): {"box": [1, 2, 3, 4], "confidence": 0.7}}))
    prov = FilesProvider(tmp_path, cues)
    a, b = prov(inp[:2])
    assert a.prob.min() == 1.0 and a.cue == {"box": [1, 2, 3, 4]} and a.confidence == 0.7
    assert np.allclose(b.prob, 0.25)
    with pytest.raises(FileNotFoundError, match=str(ids[2])):
        prov(inp[2:3])
    np.save(tmp_path / f"{ids[2]}.npy", np.full((h, w), 1.5, np.float32))
    with pytest.raises(ValueError, match=f"sample {ids[2]}.*outside"):
        prov(inp[2:3])
    np.save(tmp_path / f"{ids[2]}.npy", np.zeros((h + 1, w), np.float32))
    with pytest.raises(ValueError, match=f"sample {ids[2]}.*image is"):
        prov(inp[2:3])
    with pytest.raises(FileNotFoundError):
        FilesProvider(tmp_path / "nope")


def test_show_grid(synthref, ids, tmp_path):
    from l2l.priors.show import save_prior_grid

    st = PriorStore(tmp_path / "s")
    st.generate(SimulatedProvider(synthref), ids[:4], _loader(synthref), show_progress=False)
    out = save_prior_grid(st, synthref, tmp_path / "g.png", n=3)
    assert out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="empty"):
        save_prior_grid(PriorStore(tmp_path / "empty"), synthref, tmp_path / "x.png")
