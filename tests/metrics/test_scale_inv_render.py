"""ScaleInv FID rendering: the zoomed-out grid, InfinityGAN's bilinear shrink, and the strip-by-strip box
downsampling of scaleinv_box_fid."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from metrics_testlib import FieldGenerator

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.metrics.scale_inv import render_zoomed_out, zoomed_out_grid


def test_scale_one_is_the_training_frame():
    assert zoomed_out_grid(16, 1) == Grid.frame(16)


def test_zoomed_out_grid_keeps_the_pixel_spacing_and_centre():
    grid = zoomed_out_grid(16, 4)
    assert grid.shape == (64, 64)
    assert grid.row_step == pytest.approx(Grid.frame(16).row_step)
    assert (grid.top + grid.bottom) / 2 == pytest.approx(0.5)


@pytest.mark.parametrize(("resolution", "scale"), [(37, 2), (37, 4), (16, 3), (9, 8)])
def test_zoomed_out_grid_is_on_the_frames_pixel_lattice(resolution, scale):
    grid, step = zoomed_out_grid(resolution, scale), 1 / (resolution - 1)
    first = grid.left / step
    assert first == pytest.approx(round(first)) and grid.top == grid.left  # a whole number of pixels
    assert abs((grid.left + grid.right) / 2 - 0.5) <= step / 2 + 1e-12  # centred to within half a pixel


def test_a_canvas_model_paints_every_zoomed_out_grid():
    from polyinr.models.registry import create

    G = create("infinitygan", "cpu")  # odd resolution (37): an even S·R is off-centre by half a pixel
    for scale in (2, 3, 4, 8):
        assert G.check_grid(zoomed_out_grid(G.img_resolution, scale)).shape == (37 * scale, 37 * scale)


def test_strips_give_the_same_image_as_pooling_the_full_render():
    G = FieldGenerator(resolution=8)
    ws = G.mapping(torch.randn(2, G.z_dim))
    full = F.avg_pool2d(G.synthesis(ws, zoomed_out_grid(8, 3)), 3)
    strips = render_zoomed_out(G, ws, 8, 3, "box", max_pixels=2 * 24 * 3 * 2)  # two blocks of rows per strip
    assert strips.shape == (2, 3, 8, 8)
    torch.testing.assert_close(strips, full)


def test_scaleinv_fid_shrinks_as_infinitygans_evaluation():
    G = FieldGenerator(resolution=8)
    ws = G.mapping(torch.randn(2, G.z_dim))
    render = G.synthesis(ws, zoomed_out_grid(8, 3))  # [2, 3, 24, 24]
    expected = F.interpolate(render, size=(8, 8), mode="bilinear", align_corners=True, antialias=False)
    got = render_zoomed_out(G, ws, 8, 3, max_pixels=2 * 24 * 3 * 2)  # the default: InfinityGAN's
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got[..., 0, 0], render[..., 0, 0])  # corners aligned: the corner pixel itself
    assert not torch.allclose(got, F.avg_pool2d(render, 3))


def test_bad_scales_are_errors():
    with pytest.raises(PolyinrError, match="positive integer"):
        zoomed_out_grid(16, 0)
