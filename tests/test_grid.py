"""Pixel grids: coordinates, crops, tiles, affine maps and their errors (no model involved)."""

from __future__ import annotations

import math

import pytest
import torch

from polyinr.grid import Grid, GridError, parse_window


def hand_coords(top, left, bottom, right, height, width) -> torch.Tensor:
    """``[H, W, 2]`` float64 by the documented formula, pixel by pixel."""
    out = torch.empty(height, width, 2, dtype=torch.float64)
    for r in range(height):
        for c in range(width):
            out[r, c, 0] = top + r * ((bottom - top) / (height - 1) if height > 1 else 0.0)
            out[r, c, 1] = left + c * ((right - left) / (width - 1) if width > 1 else 0.0)
    return out


def test_frame_is_the_authors_grid():
    R = 7
    coords = Grid.frame(R).coords()
    assert coords.shape == (R, R, 2) and coords.dtype == torch.float32
    a = torch.arange(R) / (R - 1)  # the authors' grid: meshgrid(a, a) in 'ij' order, first = row
    ref = torch.stack(torch.meshgrid(a, a, indexing="ij"), dim=-1)
    assert torch.equal(coords, ref)
    assert coords[0, 0].tolist() == [0.0, 0.0] and coords[-1, -1].tolist() == [1.0, 1.0]
    assert coords[2, 0, 0] > 0 and coords[2, 0, 1] == 0  # moving down a row changes the first coordinate


def test_window_coordinates_and_dtype():
    grid = Grid.window(-0.5, 0.25, 1.5, 2.0, 5, 8)
    assert grid.shape == (5, 8) and grid.num_pixels == 40
    assert torch.equal(grid.coords(dtype=torch.float64), hand_coords(-0.5, 0.25, 1.5, 2.0, 5, 8))
    assert grid.coords(dtype=torch.float64).dtype == torch.float64
    assert grid.row_step == 0.5 and grid.col_step == 0.25


def test_one_pixel_axis_sits_at_the_first_edge():
    grid = Grid.window(0.3, 0.4, 0.3, 0.9, 1, 3)  # a one-pixel axis may have an empty extent
    coords = grid.coords(dtype=torch.float64)
    assert coords.shape == (1, 3, 2)
    assert coords[0, :, 0].tolist() == [0.3] * 3
    assert coords[0, :, 1].tolist() == pytest.approx([0.4, 0.65, 0.9])


def test_doubled_window_left_half_is_the_frame():
    R = 13
    wide = Grid.window(0, 0, 1, 2, R, 2 * R - 1).coords()
    assert torch.equal(wide[:, :R], Grid.frame(R).coords())


def test_denser_grid_contains_the_coarser_one():
    R = 9
    dense = Grid.frame(2 * R - 1).coords()
    assert torch.equal(dense[::2, ::2], Grid.frame(R).coords())


def test_crops_of_crops_keep_the_parent_pixels():
    grid = Grid.window(-1, -2, 3, 2, 20, 30)
    full = grid.coords()
    outer = grid.crop((2, 14), (3, 25))
    inner = outer.crop((1, 4), (2, 7))
    assert inner.shape == (3, 5)
    assert torch.equal(inner.coords(), full[3:6, 5:10])
    assert inner == grid.crop((3, 6), (5, 10))
    with pytest.raises(GridError, match="outside"):
        outer.crop((0, 13), (0, 2))


@pytest.mark.parametrize("tile", [(4, 4), (7, 5), (20, 30), (64, 64)])
def test_tiles_cover_the_grid_exactly(tile):
    grid = Grid.window(0.1, -0.3, 0.9, 1.7, 20, 30)
    full = grid.coords()
    canvas = torch.full_like(full, float("nan"))
    count = 0
    for r, c, t in grid.tiles(*tile):
        h, w = t.shape
        assert h <= tile[0] and w <= tile[1]
        assert torch.isnan(canvas[r : r + h, c : c + w]).all()  # tiles do not overlap
        canvas[r : r + h, c : c + w] = t.coords()
        count += 1
    assert torch.equal(canvas, full)
    assert count == math.ceil(20 / tile[0]) * math.ceil(30 / tile[1])


def test_translated_grid():
    grid = Grid.window(0, 0, 1, 2, 4, 5)
    moved = grid.translated(0.25, -0.5).coords(dtype=torch.float64)
    ref = hand_coords(0, 0, 1, 2, 4, 5) + torch.tensor([0.25, -0.5], dtype=torch.float64)
    assert torch.allclose(moved, ref, rtol=0, atol=1e-12)


def test_rotated_grid_about_a_center():
    grid = Grid.frame(5)
    angle, center = 0.3, (0.5, 0.25)
    out = grid.rotated(angle, center).coords(dtype=torch.float64)
    base = hand_coords(0, 0, 1, 1, 5, 5)
    cos, sin = math.cos(angle), math.sin(angle)
    dr, dc = base[..., 0] - center[0], base[..., 1] - center[1]
    ref = torch.stack([center[0] + cos * dr - sin * dc, center[1] + sin * dr + cos * dc], dim=-1)
    assert torch.allclose(out, ref, rtol=0, atol=1e-12)
    distances = (out - torch.tensor(center, dtype=torch.float64)).norm(dim=-1)
    assert torch.allclose(distances, (base - torch.tensor(center, dtype=torch.float64)).norm(dim=-1), atol=1e-12)
    assert grid.rotated(2 * math.pi).coords().allclose(grid.coords(), atol=1e-6)


def test_scaled_grid_zooms_about_a_center():
    grid = Grid.frame(6)
    out = grid.scaled(0.5).coords(dtype=torch.float64)
    ref = 0.5 + 0.5 * (hand_coords(0, 0, 1, 1, 6, 6) - 0.5)
    assert torch.allclose(out, ref, rtol=0, atol=1e-12)
    assert out.min() == 0.25 and out.max() == 0.75


def test_affine_maps_compose_in_order():
    grid = Grid.frame(4)
    out = grid.translated(0.1, 0.2).rotated(math.pi / 2, (0.0, 0.0)).coords(dtype=torch.float64)
    shifted = hand_coords(0, 0, 1, 1, 4, 4) + torch.tensor([0.1, 0.2], dtype=torch.float64)
    ref = torch.stack([-shifted[..., 1], shifted[..., 0]], dim=-1)  # then a quarter turn about the origin
    assert torch.allclose(out, ref, rtol=0, atol=1e-12)
    assert grid.translated(0.1, 0.2).crop((1, 3), (0, 2)).coords().equal(grid.translated(0.1, 0.2).coords()[1:3, 0:2])


def test_is_frame():
    assert Grid.frame(8).is_frame(8)
    assert not Grid.frame(8).is_frame(9)
    assert not Grid.frame(8).translated(0.1, 0).is_frame(8)
    assert not Grid.frame(8).crop((0, 4), (0, 8)).is_frame(8)
    assert Grid.window(0, 0, 1, 1, 8, 8).is_frame(8)


@pytest.mark.parametrize(
    "args",
    [
        (0, 0, 1, 1, 0, 4),  # zero height
        (0, 0, 1, 1, 4, -2),  # negative width
        (0, 0, 1, 1, 2.5, 4),  # non-integer size
        (0, 0, 1, 1, True, 4),  # bool is not a size
        (1, 0, 1, 1, 4, 4),  # top == bottom
        (1, 0, 0, 1, 4, 4),  # top > bottom
        (0, 1, 1, 0.5, 4, 4),  # left > right
        (float("nan"), 0, 1, 1, 4, 4),
        (0, float("inf"), 1, 1, 4, 4),
    ],
)
def test_degenerate_grids_raise(args):
    with pytest.raises(GridError) as err:
        Grid.window(*args)
    assert "\n" not in str(err.value)


def test_degenerate_maps_and_tiles_raise():
    grid = Grid.frame(4)
    for bad in (
        lambda: grid.scaled(0),
        lambda: grid.scaled(float("nan")),
        lambda: grid.translated(float("nan"), 0),
        lambda: list(grid.tiles(0)),
        lambda: list(grid.tiles(4, -1)),
    ):
        with pytest.raises(GridError):
            bad()


def test_parse_window():
    assert parse_window("0,0,1,1") == (0.0, 0.0, 1.0, 1.0)
    assert parse_window(" -0.5, -1 ,1.5,2e0") == (-0.5, -1.0, 1.5, 2.0)


@pytest.mark.parametrize(
    "text", ["", "0,0,1", "0,0,1,1,1", "a,b,c,d", "0,0,1,nan", "0,0,inf,1", "1,0,0,1", "0,1,1,1", "0;0;1;1"]
)
def test_bad_window_strings_raise(text):
    with pytest.raises(GridError) as err:
        parse_window(text)
    assert "\n" not in str(err.value) and "window" in str(err.value)
