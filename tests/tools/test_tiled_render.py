"""Render tools: seeded batches and tiled renders equal to direct ones."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image

from guarded_child import assert_one_line_error
from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.image_io import PNG_GROUP_BYTES, PngEncoder, save_image, to_uint8
from polyinr.sampling import ws_for
from polyinr.tools.canvas import draw_canvas_latents
from polyinr.tools.render import generate_images, render_tiled, tiled_render_bytes
from tiny_infinity_gan import TINY_INFINITY_GAN


@pytest.mark.parametrize("suffix", [".png", ".bmp"])  # streamed, and held in memory
def test_render_tiled_equals_a_direct_render(G, tmp_path, suffix):
    ws = ws_for(G, seeds=[3])
    grid = Grid.window(-0.5, -1, 1.5, 2, 19, 26)
    calls = []
    path = render_tiled(G, ws, grid, tmp_path / f"sub/out{suffix}", tile=8, on_tile=lambda d, t: calls.append((d, t)))
    with Image.open(path) as img:
        assert np.array_equal(np.asarray(img.convert("RGB")), to_uint8(G.synthesis(ws, grid))[0])
    assert calls == [(i, 12) for i in range(1, 13)]  # 3 strips × 4 tiles


def test_render_tiled_removes_a_partial_file(G, tmp_path, monkeypatch):
    ws = ws_for(G, seeds=[0])
    real, count = G.synthesis.forward, []

    def failing(*args, **kwargs):
        count.append(1)
        if len(count) == 3:
            raise RuntimeError("simulated failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(G.synthesis, "forward", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        render_tiled(G, ws, Grid.frame(16), tmp_path / "out.png", tile=4)
    assert not (tmp_path / "out.png").exists()


def test_render_tiled_rejects_bad_input(G, ws, tmp_path):
    with pytest.raises(PolyinrError, match="one sample"):
        render_tiled(G, ws, Grid.frame(8), tmp_path / "out.png")
    (tmp_path / "file").write_text("x")
    with pytest.raises(PolyinrError, match="not writable") as err:
        render_tiled(G, ws[:1], Grid.frame(8), tmp_path / "file" / "out.png")
    assert "\n" not in str(err.value)
    with pytest.raises(PolyinrError, match="is a directory"):
        save_image(np.zeros((2, 2, 3), dtype=np.uint8), tmp_path)


def test_generate_images_follows_the_seeds(G):
    grid = Grid.frame(10)
    results = list(generate_images(G, [4, 1, 4], grid=grid, batch_size=2))
    assert [seed for seed, _ in results] == [4, 1, 4]
    assert all(img.shape == (10, 10, 3) and img.dtype == np.uint8 for _, img in results)
    direct = to_uint8(G.synthesis(ws_for(G, seeds=[4]), grid))[0]
    for _, image in (results[0], results[2]):  # same seed in batches of 2 and 1: equal up to float rounding
        assert np.abs(image.astype(int) - direct).max() <= 1
    assert not np.array_equal(results[0][1], results[1][1])


def test_the_memory_estimate_covers_every_buffer_of_a_streamed_render(G, tmp_path):
    ws = ws_for(G, seeds=[1])
    H, W, tile = 32, 4096, 32  # a wide strip: the strip and the encoder's buffers outweigh the tiles
    tracemalloc.start()  # NumPy's buffers and Python's bytes are traced; torch's tensors are not
    try:
        render_tiled(G, ws, Grid.window(0, 0, 1, 8, H, W), tmp_path / "wide.png", tile=tile)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak > H * W * 3  # the strip was traced, so the measure means something
    assert peak <= tiled_render_bytes(H, W, tile, streaming=True)


def test_png_encoder_buffers_are_bounded_at_any_width():
    assert PngEncoder.working_bytes(10_000_000, 512) < 4 * 3 * 10_000_000  # a row at a time, not the strip
    assert PngEncoder.working_bytes(64, 10_000) < 4 * PNG_GROUP_BYTES


def _tiny_canvas_generator():
    from polyinr.models.registry import create

    torch.manual_seed(0)
    return create("infinitygan", **TINY_INFINITY_GAN).eval()


def _poster(G):
    """``render --size 512x3600001``: a full-width strip of 5 GiB."""
    return G, ws_for(G, seeds=[0]), Grid.window(0, 0, 1, 1, 512, 3_600_001), {}


def _canvas_window(_G):
    """A canvas latent file rendered with ``--window 0,0,100000,100000`` (the lattice's pixels)."""
    G = _tiny_canvas_generator()
    latents = draw_canvas_latents(G, 1, G.grid_support.sized(G, 20, 20))
    n = 100_000 * (G.img_resolution - 1) + 1
    return G, latents.ws(G), Grid.window(0, 0, 100_000, 100_000, n, n), {"canvas": latents.canvas()}


@pytest.mark.parametrize("case", [_poster, _canvas_window], ids=["512x3600001", "canvas-window"])
def test_renders_whose_buffers_exceed_memory_are_refused_before_work(G, tmp_path, monkeypatch, case):
    G, ws, grid, kwargs = case(G)
    H, W = grid.shape
    monkeypatch.setattr("polyinr.image_io.memory_limit", lambda: tiled_render_bytes(H, W, 512, streaming=True) - 1)
    render = lambda: render_tiled(G, ws, grid, tmp_path / "big.png", tile=512, **kwargs)  # noqa: E731
    assert_one_line_error(render, "PolyinrError", "of memory, over this machine's limit")  # in a capped child
    assert not (tmp_path / "big.png").exists()
