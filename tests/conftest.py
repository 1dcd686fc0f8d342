"""Shared fixtures: a small SynthRef dataset and a tiny REFER-format (RefCOCO-shaped) dataset."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

os.environ.setdefault("L2L_NO_PROGRESS", "1")
# caches that outlive a run (EDA pools, utils/io.user_cache_dir): a fresh folder per test session
os.environ.setdefault("L2L_CACHE", __import__("tempfile").mkdtemp(prefix="l2l-test-cache-"))

# the thread policy (utils/threads.py), before torch is imported: one thread per test process
# (pytest -n N runs N of them), waiting threads sleep
from l2l.utils.threads import prepare_environment  # noqa: E402  (imports no torch)

prepare_environment()

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
EXPRESSIONS = SHARED / "data" / "refcoco_unc_eval_expressions" / "expressions.jsonl"


def write_tiny_clip(folder: Path, text_layers: int = 2, vision_layers: int = 2) -> Path:
    """A random-weight ``transformers`` CLIP (16 wide, 32-px images, 8-px patches, 8-d projection) with the
    MiniLM tokenizer (vocabulary 30,522) saved in ``folder``: the real CLIP path without real weights."""
    from transformers import AutoTokenizer, CLIPConfig, CLIPModel

    from l2l.data.text_augment import default_text_model_path

    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=30522,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=text_layers,
            num_attention_heads=2,
            max_position_embeddings=77,
        ),
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=vision_layers,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=8,
    )
    CLIPModel(cfg).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(default_text_model_path())).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def synthref_dir(tmp_path_factory) -> Path:
    from l2l.data.synthref import SynthRefConfig, generate

    out = tmp_path_factory.mktemp("synthref")
    generate(SynthRefConfig(images=80, seed=3), out, workers=1, show_progress=False)
    return out


@pytest.fixture(scope="session")
def synthref(synthref_dir):
    from l2l.data.refer import ReferDataset

    return ReferDataset.synthref(synthref_dir)


@pytest.fixture(scope="session")
def real_expressions() -> list[dict]:
    if not EXPRESSIONS.exists():
        pytest.skip(f"real expressions file not found at {EXPRESSIONS}")
    with open(EXPRESSIONS) as f:
        return [json.loads(line) for line in f]


def build_refer_fixture(
    root: Path,
    dataset: str = "refcoco",
    split_by: str = "unc",
    splits: tuple[str, ...] = ("train", "train", "train", "val", "testA", "testB"),
) -> dict:
    """Write a RefCOCO-shaped fixture: instances.json with polygon (one and two parts),
    uncompressed-RLE and compressed-RLE masks, a refs(unc).p pickle with REFER's fields,
    and COCO-named JPEG images (one per entry of ``splits``). Returns the expected masks by ann_id."""
    d = root / dataset
    d.mkdir(parents=True, exist_ok=True)
    img_dir = root / "images" / "mscoco" / "images" / "train2014"
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images, anns, refs, expected = [], [], [], {}
    h, w = 60, 80
    sent_id = 0
    for k, split in enumerate(splits):
        image_id = 1000 + k
        fname = f"COCO_train2014_{image_id:012d}.jpg"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(img_dir / fname)
        images.append({"id": image_id, "file_name": fname, "height": h, "width": w})
        # ann 1: a one-part polygon (a rectangle)
        poly = [10.0, 10.0, 30.0, 10.0, 30.0, 25.0, 10.0, 25.0]
        # ann 2: a two-part polygon
        parts = [[40.0, 5.0, 50.0, 5.0, 50.0, 15.0, 40.0, 15.0], [60.0, 30.0, 75.0, 30.0, 75.0, 50.0, 60.0, 50.0]]
        # ann 3: uncompressed RLE; ann 4: compressed RLE
        m3 = np.zeros((h, w), np.uint8)
        m3[35:55, 5:25] = 1
        m4 = np.zeros((h, w), np.uint8)
        m4[40:58, 30:45] = 1
        m4[42:45, 33:36] = 0  # a hole
        enc4 = mask_utils.encode(np.asfortranarray(m4))
        flat = m3.flatten(order="F")
        counts, cur, run = [], 0, 0
        for v in flat:
            if v != cur:
                counts.append(run)
                cur, run = v, 0
            run += 1
        counts.append(run)
        segs = [[poly], parts, {"size": [h, w], "counts": counts}, {"size": [h, w], "counts": enc4["counts"].decode()}]
        for j, seg in enumerate(segs):
            ann_id = image_id * 10 + j
            if isinstance(seg, list):
                exp = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(seg, h, w))).astype(bool)
            else:
                exp = (m3 if j == 2 else m4).astype(bool)
            expected[ann_id] = exp
            anns.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": 1 + j,
                    "segmentation": seg,
                    "area": float(exp.sum()),
                    "bbox": [0.0, 0.0, 1.0, 1.0],
                    "iscrowd": 0,
                }
            )
            sents = []
            for q in range(2):
                sents.append(
                    {
                        "tokens": ["thing", str(q)],
                        "raw": f"Thing {j} {q}",
                        "sent_id": sent_id,
                        "sent": f"thing {j} number {q}",
                    }
                )
                sent_id += 1
            refs.append(
                {
                    "ref_id": len(refs),
                    "ann_id": ann_id,
                    "image_id": image_id,
                    "category_id": 1 + j,
                    "split": split,
                    "sentences": sents,
                    "sent_ids": [s["sent_id"] for s in sents],
                    "file_name": fname.replace(".jpg", f"_{ann_id}.jpg"),
                }
            )
    cats = [{"id": i, "name": n, "supercategory": "x"} for i, n in enumerate(["person", "dog", "cup", "car"], 1)]
    (d / "instances.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    with open(d / f"refs({split_by}).p", "wb") as f:
        pickle.dump(refs, f, protocol=2)  # like the original Python 2 files
    return expected


@pytest.fixture()
def refer_root(tmp_path) -> tuple[Path, dict]:
    expected = build_refer_fixture(tmp_path)
    return tmp_path, expected
