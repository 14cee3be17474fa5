"""Latent walks, flights over the plane and the video writer (polyinr.tools.video)."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.image_io import image_grid, to_uint8
from polyinr.sampling import latents_from_seeds, ws_for
from polyinr.tools.edit import interpolate
from polyinr.tools.video import flight, flight_grids, latent_walk, walk_keys, write_video


def decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_walk_frames_count_loop_and_layout(tiny_G):
    ws = ws_for(tiny_G, seeds=[0, 1, 2, 3, 4, 5])  # 2 cells × 3 keys, cell by cell
    keys = walk_keys(ws, 2)  # [3, 2, L, D]
    torch.testing.assert_close(keys[:, 1], ws[3:])
    frames = list(latent_walk(tiny_G, keys, frames_per_step=4, kind="lerp", loop=True, cols=2))
    R = tiny_G.img_resolution
    assert len(frames) == 12 and frames[0].shape == (R, 2 * R, 3)
    start = to_uint8(tiny_G.synthesis(ws[[0, 3]]))
    np.testing.assert_array_equal(frames[0], image_grid(list(start), 2, 1))  # frame 0 = first keys
    np.testing.assert_array_equal(frames[4], image_grid(list(to_uint8(tiny_G.synthesis(ws[[1, 4]]))), 2, 1))
    # Loop closure: the last frame is one step before the first keys again.
    last = interpolate(keys[2], keys[0], 3 / 4)
    np.testing.assert_array_equal(frames[-1], image_grid(list(to_uint8(tiny_G.synthesis(last))), 2, 1))
    open_walk = list(latent_walk(tiny_G, keys, frames_per_step=4, loop=False, cols=1))
    assert len(open_walk) == 9 and open_walk[0].shape == (2 * R, R, 3)
    np.testing.assert_array_equal(open_walk[-1], image_grid(list(to_uint8(tiny_G.synthesis(ws[[2, 5]]))), 1, 2))


def test_z_walk_maps_each_frame_with_class_and_truncation(cond_G):
    z = latents_from_seeds([7, 8], cond_G.z_dim)
    keys = walk_keys(z, 1)  # [2, 1, z_dim]
    frames = list(latent_walk(cond_G, keys, 3, "slerp", space="z", class_idx=2, truncation_psi=0.5))
    assert len(frames) == 6
    expected = to_uint8(cond_G(z[:1], torch.tensor([2]), truncation_psi=0.5))[0]
    np.testing.assert_array_equal(frames[0], expected)
    with pytest.raises(PolyinrError, match="give a class"):
        next(latent_walk(cond_G, keys, 3, space="z"))


def test_bad_walks_are_errors(tiny_G):
    ws = ws_for(tiny_G, seeds=[0, 1, 2])
    with pytest.raises(PolyinrError, match="multiple of 2"):
        walk_keys(ws, 2)
    with pytest.raises(PolyinrError, match="at least 2"):
        walk_keys(ws, 3)  # one key per walk
    with pytest.raises(PolyinrError, match="do not fill"):
        next(latent_walk(tiny_G, walk_keys(ws[:2], 1).expand(2, 3, -1, -1), 2, cols=2))
    with pytest.raises(PolyinrError, match="z keys must be"):
        next(latent_walk(tiny_G, walk_keys(ws, 1), 2, space="z"))


def test_pan_frames_equal_direct_renders_of_the_same_windows(tiny_G):
    ws = ws_for(tiny_G, seeds=[0, 1])
    grids = flight_grids((0.0, 0.0, 1.0, 1.0), (12, 20), frames=5, pan=(2.0, -1.0))
    assert [g.shape for g in grids] == [(12, 20)] * 5
    for i, g in enumerate(grids):
        t = i / 4
        assert (g.top, g.left, g.bottom, g.right) == pytest.approx((2 * t, -t, 1 + 2 * t, 1 - t))
    frames = list(flight(tiny_G, ws, grids, cols=1))
    for g, frame in zip(grids, frames):
        direct = to_uint8(tiny_G.synthesis(ws, Grid.window(g.top, g.left, g.bottom, g.right, 12, 20)))
        np.testing.assert_array_equal(frame, image_grid(list(direct), 1, 2))
    assert not np.array_equal(frames[0], frames[-1])  # the camera moved


def test_zoom_is_geometric_about_the_centre():
    grids = flight_grids((0.0, 0.0, 1.0, 2.0), (8, 8), frames=3, zoom=0.01)
    sizes = [side for g in grids for side in (g.bottom - g.top, g.right - g.left)]
    assert sizes == pytest.approx([1.0, 2.0, 0.1, 0.2, 0.01, 0.02])
    for g in grids:
        assert ((g.top + g.bottom) / 2, (g.left + g.right) / 2) == pytest.approx((0.5, 1.0))
    with pytest.raises(PolyinrError, match="positive"):
        flight_grids((0.0, 0.0, 1.0, 1.0), (8, 8), 3, zoom=0.0)
    with pytest.raises(PolyinrError, match="at least 2 frames"):
        flight_grids((0.0, 0.0, 1.0, 1.0), (8, 8), 1)


def test_zoomed_frames_are_rendered_not_resampled(tiny_G):
    ws = ws_for(tiny_G, seeds=[0])
    last = list(flight(tiny_G, ws, flight_grids((0.0, 0.0, 1.0, 1.0), (16, 16), 2, zoom=1 / 16)))[-1]
    direct = to_uint8(tiny_G.synthesis(ws, Grid.window(15 / 32, 15 / 32, 17 / 32, 17 / 32, 16, 16)))[0]
    np.testing.assert_array_equal(last, direct)
    assert len(np.unique(last.reshape(-1, 3), axis=0)) > 16  # detail below the training pixel size, not blocks


@pytest.mark.parametrize("size", [(16, 32), (15, 17)])
def test_mp4_has_every_frame(tmp_path, size):
    rng = np.random.default_rng(0)
    frames = [np.full((*size, 3), 20 * i, dtype=np.uint8) for i in range(10)]
    frames[3] = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    path = tmp_path / "walk.mp4"
    assert write_video(iter(frames), path, fps=24) == 10
    decoded = decode(path)
    H, W = size[0] + size[0] % 2, size[1] + size[1] % 2  # odd sizes are padded to even
    assert len(decoded) == 10 and decoded[0].shape == (H, W, 3)
    for i in (0, 5, 9):
        assert abs(float(decoded[i][: size[0], : size[1]].mean()) - 20 * i) < 3
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == 24


def test_gif_fallback_loops_with_every_frame(tmp_path):
    frames = [np.full((8, 12, 3), 25 * i, dtype=np.uint8) for i in range(6)]
    path = tmp_path / "walk.gif"
    assert write_video(frames, path, fps=20) == 6
    with Image.open(path) as gif:
        assert gif.n_frames == 6 and gif.size == (12, 8)
        assert gif.info["loop"] == 0 and gif.info["duration"] == 50
        gif.seek(4)
        assert abs(np.asarray(gif.convert("RGB")).mean() - 100) < 3


def test_bad_videos_are_errors(tmp_path):
    frame = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(PolyinrError, match="unknown video format"):
        write_video([frame], tmp_path / "x.avi")
    with pytest.raises(PolyinrError, match="no frames"):
        write_video([], tmp_path / "x.mp4")
    with pytest.raises(PolyinrError, match="no frames"):
        write_video([], tmp_path / "x.gif")
    assert not list(tmp_path.iterdir())  # nothing half-written is left behind


def test_walks_in_inr_parameter_space(tiny_G):
    """INR-GAN: keys are rendered exactly; in between, the per-layer modulated weights are interpolated, which
    is not the w walk (a weight is not linear in w after the FMM product and the demodulation)."""
    from polyinr.models.generator import CapabilityMissing
    from polyinr.models.registry import create

    torch.manual_seed(0)
    G = create("inr-gan", "cpu")
    keys = walk_keys(ws_for(G, seeds=[0, 1]), 1)  # [2, 1, L, D]
    inr = list(latent_walk(G, keys, frames_per_step=4, space="inr", loop=False))
    w = list(latent_walk(G, keys, frames_per_step=4, space="w", loop=False))
    assert len(inr) == 5
    for k in (0, 4):
        np.testing.assert_array_equal(inr[k], w[k])  # the keys themselves
    assert np.abs(inr[2].astype(int) - w[2].astype(int)).max() > 2
    with pytest.raises(CapabilityMissing, match=r"^poly-inr has no per-image INR parameters"):
        next(latent_walk(tiny_G, walk_keys(ws_for(tiny_G, seeds=[0, 1]), 1), frames_per_step=2, space="inr"))
