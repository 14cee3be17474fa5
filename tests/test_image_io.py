"""Images as data: uint8 conversion both ways, image grids, the streaming PNG writer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from polyinr.errors import PolyinrError
from polyinr.image_io import PngStreamWriter, from_uint8, image_grid, quantize, quantize_rgb, to_uint8


def test_to_uint8():
    images = torch.tensor([-2.0, -1.0, -0.999, 0.0, 0.5, 1.0, 3.0]).view(1, 1, 1, 7).expand(1, 3, 1, 7)
    out = to_uint8(images)
    assert out.shape == (1, 1, 7, 3) and out.dtype == np.uint8
    assert out[0, 0, :, 0].tolist() == [0, 0, 0, 128, 191, 255, 255]


def test_image_grid_layout():
    tiles = [np.full((2, 3, 3), i, dtype=np.uint8) for i in range(5)]
    canvas = image_grid(tiles, cols=3, rows=2)
    assert canvas.shape == (4, 9, 3)
    assert canvas[0, 3, 0] == 1 and canvas[2, 0, 0] == 3 and canvas[2, 3, 0] == 4 and canvas[3, 8, 0] == 0
    with pytest.raises(PolyinrError, match="do not fit"):
        image_grid(tiles, cols=2, rows=2)


def test_png_stream_writer_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 23, 3), dtype=np.uint8)
    writer = PngStreamWriter(tmp_path / "x.png", 37, 23)
    for r0, r1 in ((0, 1), (1, 17), (17, 37)):
        writer.write_rows(image[r0:r1])
    writer.close()
    with Image.open(tmp_path / "x.png") as png:
        assert png.mode == "RGB" and png.size == (23, 37)
        assert np.array_equal(np.asarray(png), image)


def test_png_stream_writer_errors(tmp_path):
    writer = PngStreamWriter(tmp_path / "x.png", 4, 5)
    with pytest.raises(ValueError, match="rows must be"):
        writer.write_rows(np.zeros((2, 6, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="rows must be"):
        writer.write_rows(np.zeros((2, 5, 3), dtype=np.float32))
    writer.write_rows(np.zeros((2, 5, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="2 of 4 rows"):
        writer.close()
    writer = PngStreamWriter(tmp_path / "y.png", 4, 5)
    writer.abort()
    assert not (tmp_path / "y.png").exists()


def test_uint8_round_trip_and_grayscale():
    pixels = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    values = from_uint8(pixels)
    assert values.dtype == torch.float32 and values.min() == -1 and values.max() == 1
    assert torch.equal(quantize(values), pixels)  # every byte survives the trip
    rgb = quantize_rgb(values)
    assert rgb.shape == (1, 3, 16, 16) and all(torch.equal(rgb[:, i : i + 1], pixels) for i in range(3))
