"""Render tools: seeded batches and tiled renders equal to direct ones."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.image_io import save_image, to_uint8
from polyinr.sampling import ws_for
from polyinr.tools.render import generate_images, render_tiled


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
