"""Messy image files → RGB, and the square-fitting transforms."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from polyinr.data.images import decode_rgb, fit, is_image_name


def roundtrip(img: Image.Image, fmt: str = "png") -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    buf.seek(0)
    return decode_rgb(buf)


def test_grayscale_becomes_grey_rgb():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    out = np.asarray(roundtrip(Image.fromarray(grey)))
    assert out.shape == (8, 8, 3)
    assert np.array_equal(out[..., 0], grey) and np.array_equal(out[..., 2], grey)


def test_sixteen_bit_is_scaled_not_clipped():
    values = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)  # → 0, 1, 255, 128
    out = np.asarray(roundtrip(Image.fromarray(values)))
    assert out[0, :, 0].tolist() == [0, 1, 255, 128]


def test_alpha_is_composited_on_white():
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[0, :, 3] = 255  # opaque red-ish row
    rgba[1, 0, 3] = 0  # transparent → white
    rgba[1, 1, 3] = 128  # half: 200·128/255 + 255·127/255 = 227.4 → 227 ; green/blue 127
    rgba[1, 2, 3] = 0
    out = np.asarray(roundtrip(Image.fromarray(rgba)))
    assert out[0, 0].tolist() == [200, 0, 0]
    assert out[1, 0].tolist() == [255, 255, 255]
    assert out[1, 1].tolist() == [227, 127, 127]


def test_grey_alpha_and_palette_transparency_on_white():
    la = Image.fromarray(np.stack([np.full((2, 2), 10, np.uint8), np.zeros((2, 2), np.uint8)], -1), mode="LA")
    assert np.asarray(roundtrip(la)).min() == 255
    pal = Image.new("P", (2, 2), 1)
    pal.putpalette([0, 0, 0, 50, 60, 70] + [0] * 762)
    pal.info["transparency"] = 1
    assert np.asarray(roundtrip(pal)).min() == 255
    pal.info.pop("transparency")
    assert np.asarray(roundtrip(pal))[0, 0].tolist() == [50, 60, 70]


def test_cmyk_jpeg_becomes_rgb():
    out = np.asarray(roundtrip(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "jpeg"))
    assert out.shape == (8, 8, 3)
    assert out[4, 4, 0] > 200 and out[4, 4, 1] < 60 and out[4, 4, 2] < 60  # red


def test_exif_orientation_is_applied():
    img = Image.fromarray(np.zeros((2, 4, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buf = io.BytesIO()
    img.save(buf, format="jpeg", exif=exif)
    buf.seek(0)
    assert decode_rgb(buf).size == (2, 4)  # width, height swapped


def test_is_image_name_any_case():
    assert all(is_image_name(n) for n in ["a.png", "b.JPG", "c.JpEg", "d.webp", "e.BMP", "f.gif"])
    assert not any(is_image_name(n) for n in ["dataset.json", "x.svg", "png"])


def test_center_crop_takes_the_middle_square():
    image = np.zeros((4, 8, 3), np.uint8)
    image[:, 2:6] = 255  # the centre 4×4 square
    assert fit(Image.fromarray(image), 4).min() == 255


def test_resize_keeps_everything_and_center_crop_wide_pads():
    image = np.full((10, 40, 3), 255, np.uint8)  # 4:1, white
    resized = fit(Image.fromarray(image), 8, "resize")
    assert resized.shape == (8, 8, 3) and resized.min() == 255
    wide = fit(Image.fromarray(image), 8, "center-crop-wide")
    assert wide.shape == (8, 8, 3)
    assert wide[:2].max() == 0 and wide[6:].max() == 0  # black bars above and below
    assert wide[2:6].min() == 255  # a centred R × R/2 band


def test_downsampling_is_antialiased():
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes average to mid grey, not aliased to black or white
    out = fit(Image.fromarray(stripes), 8).astype(float)
    assert np.all(np.abs(out - 127.5) < 10)


def test_fit_rejects_unknown_transform():
    with pytest.raises(ValueError, match="unknown transform"):
        fit(Image.new("RGB", (4, 4)), 4, "stretch")
