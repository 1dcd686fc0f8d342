"""Images and priors read as the user means them, or refused with the reason (l2l.data.images)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from l2l.config import load_config
from l2l.data.images import check_prior, to_rgb_uint8
from l2l.models.segmenter import ModelConfig, Segmenter


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    a = np.full((8, 10), 32768, dtype=np.uint16)  # mid-grey in 16 bits
    Image.fromarray(a).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I")
    rgb = to_rgb_uint8(tmp_path / "g16.png")
    assert rgb.shape == (8, 10, 3) and rgb.dtype == np.uint8 and abs(int(rgb[0, 0, 0]) - 128) <= 1


def test_palette_and_cmyk_files(tmp_path):
    rgb = np.zeros((5, 6, 3), np.uint8)
    rgb[:, :3] = (200, 30, 30)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    for f in ("p.png", "c.jpg"):
        out = to_rgb_uint8(tmp_path / f)
        assert out.shape == (5, 6, 3) and abs(int(out[0, 0, 0]) - 200) < 12 and out[0, 5].max() < 12


def test_arrays_of_every_kind():
    base = np.random.default_rng(0).integers(0, 256, (6, 7, 3)).astype(np.uint8)
    assert np.array_equal(to_rgb_uint8(base.astype(np.float32) / 255.0), base)  # float in [0, 1]
    assert np.array_equal(to_rgb_uint8(np.concatenate([base, np.zeros((6, 7, 1), np.uint8)], 2)), base)  # RGBA
    assert np.array_equal(to_rgb_uint8(base.astype(np.uint16) * 257), base)  # uint16
    assert to_rgb_uint8(base[:, :, 0]).shape == (6, 7, 3)  # grey
    with pytest.raises(ValueError, match=r"float image must lie in \[0, 1\]"):
        to_rgb_uint8(base.astype(np.float32))  # 0–255 floats are ambiguous: refused
    bad = base.astype(np.float32) / 255.0
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        to_rgb_uint8(bad)
    with pytest.raises(ValueError, match="expected an H×W"):
        to_rgb_uint8(np.zeros((4, 4, 2), np.uint8))


def test_exif_orientation_applied_for_photos_only(tmp_path):
    img = np.zeros((4, 8, 3), np.uint8)
    img[:, :4] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(img).save(tmp_path / "photo.png", exif=exif)
    assert to_rgb_uint8(tmp_path / "photo.png").shape == (4, 8, 3)  # stored order (datasets)
    shown = to_rgb_uint8(tmp_path / "photo.png", exif=True)
    assert shown.shape == (8, 4, 3) and shown[:4].mean() > 200  # the white half is now on top


def test_prior_checks():
    assert check_prior(np.full((3, 4), 0.5), (3, 4)).dtype == np.float32
    with pytest.raises(ValueError, match=r"shape \(4, 3\), but the image is \(3, 4\)"):
        check_prior(np.zeros((4, 3)), (3, 4))
    with pytest.raises(ValueError, match="divide by 255"):
        check_prior(np.full((3, 4), 200.0), (3, 4))
    p = np.full((3, 4), 0.3)
    p[1, 1] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        check_prior(p, (3, 4))


def _tiny(sesm: bool) -> Segmenter:
    cfg = load_config(
        ModelConfig,
        None,
        [
            "visual.name=conv",
            "visual.path=null",
            "visual.conv_channels=[8,8,8,8]",
            "text.name=tiny",
            "decoder_dim=8",
            "image_size=64",
            f"sesm.enabled={str(sesm).lower()}",
        ],
    )
    torch.manual_seed(0)
    return Segmenter(cfg).eval()


def test_segment_reads_floats_right_and_refuses_nonsense():
    m = _tiny(sesm=False)
    img = np.random.default_rng(1).integers(0, 256, (20, 30, 3)).astype(np.uint8)
    _, p8 = m.segment(img, "the red circle")
    _, pf = m.segment(img.astype(np.float32) / 255.0, "the red circle")  # was divided by 255 twice
    assert np.allclose(p8, pf, atol=1e-5)
    with pytest.raises(ValueError, match="threshold must lie in"):
        m.segment(img, "the red circle", threshold=2)
    with pytest.raises(ValueError, match="needs a model with SESM"):
        m.segment(img, "the red circle", guidance="self")
    with pytest.raises(ValueError, match="needs a model with SESM"):
        m.segment(img, "the red circle", prior=np.zeros((20, 30)))
    g = _tiny(sesm=True)
    with pytest.raises(ValueError, match="divide by 255"):
        g.segment(img, "the red circle", prior=np.full((20, 30), 255.0))
    with pytest.raises(ValueError, match="but the image is"):
        g.segment(img, "the red circle", prior=np.zeros((30, 20)))
    mask, _ = g.segment(img, "the red circle", prior=np.zeros((20, 30)))
    assert mask.shape == (20, 30)


def test_image_tensor_is_the_old_conversion_bit_for_bit():
    """utils.tensors.image_tensor replaced ~20 inline copies: same values, same memory layout (strides)."""
    import torch

    from l2l.utils.tensors import image_tensor

    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    many = rng.integers(0, 256, (4, 7, 9, 3), dtype=np.uint8)
    old_one = torch.from_numpy(one).permute(2, 0, 1).float() / 255
    old_many = torch.from_numpy(many).permute(0, 3, 1, 2).float().div(255)
    for new, old in ((image_tensor(one), old_one), (image_tensor(many), old_many)):
        assert torch.equal(new, old) and new.stride() == old.stride() and new.dtype == torch.float32
    rgba = rng.integers(0, 256, (7, 9, 4), dtype=np.uint8)
    old = torch.from_numpy(np.ascontiguousarray(rgba[..., :3])).permute(2, 0, 1).float()[None] / 255
    assert (
        torch.equal(image_tensor(rgba[..., :3])[None], old)
        and image_tensor(rgba[..., :3])[None].stride() == old.stride()
    )
    with pytest.raises(ValueError, match="H×W×C"):
        image_tensor(one[..., 0])
