"""EfficientNet-Lite0: strict loading of the real ImageNet weights, feature strides, sanity on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from l2l.data.augment import normalize
from l2l.nets.efficientnet_lite import FEATURE_CHANNELS, EfficientNetLite0

from .conftest import SHARED


@pytest.fixture(scope="module")
def model():
    return EfficientNetLite0.pretrained().eval()


def test_feature_pyramid_strides(model):
    feats = model(torch.zeros(2, 3, 96, 128))
    assert [f.shape[1] for f in feats] == list(FEATURE_CHANNELS)
    assert [tuple(f.shape[-2:]) for f in feats] == [(24, 32), (12, 16), (6, 8), (3, 4)]


def test_real_weights_recognise_real_photos(model):
    folder = SHARED / "data" / "coco_train2014_sample_224"
    if not folder.exists():
        pytest.skip("real COCO sample images not found")
    files = sorted(folder.glob("*.jpg"))[:12]
    x = torch.stack(
        [torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1).float() / 255 for f in files]
    )
    with torch.no_grad():
        p = model.classify(normalize(x)).softmax(-1)
        r = EfficientNetLite0().eval().classify(normalize(x)).softmax(-1)
    assert p.max(-1).values.mean() > 0.25 > 0.01 > r.max(-1).values.mean()
    assert files[0].name.endswith("000000000009.jpg") and p[0].argmax().item() == 937  # broccoli


def test_missing_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights not found"):
        EfficientNetLite0.pretrained(tmp_path / "nope.pth")
