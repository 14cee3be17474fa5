"""The three grid declarations of the generator contract, on a stand-in of each kind."""

from __future__ import annotations

import pytest

import polyinr
from polyinr.grid import Grid
from polyinr.models.generator import CANVAS, CONTINUOUS, FRAME, GridRefused, is_rigid, lattice_origin


def stand_in(support) -> polyinr.Generator:
    G = polyinr.create("poly-inr", "cpu")  # its sizes (16² native), with another declaration
    cls = type("StandIn", (type(G),), {"grid_support": support, "model_name": f"{support.kind}-model"})
    G.__class__ = cls
    return G


def test_none_is_the_native_frame():
    G = stand_in(FRAME)
    assert G.check_grid(None) == Grid.frame(16)
    assert G.training_grid(16) == Grid.frame(16)


def test_continuous_accepts_every_grid():
    G = stand_in(CONTINUOUS)
    for grid in (
        Grid.window(-3, 2, 5, 9, 7, 300),
        Grid.frame(64).rotated(1.0).scaled(0.1),
        Grid.frame(16).crop((2, 5), (0, 3)),
    ):
        assert G.check_grid(grid) is grid
    G.check_tiles(7, 13)


def test_frame_accepts_its_rigid_motions_only():
    G = stand_in(FRAME)
    G.check_grid(Grid.frame(16).translated(0.25, -3.0).rotated(2.0))
    refused = [
        Grid.frame(32),
        Grid.window(0, 0, 2, 2, 16, 16),
        Grid.frame(16).scaled(0.5),
        Grid.frame(16).crop((0, 8), (0, 8)),
        Grid.frame(16).transformed((1, 0.3, 0, 0, 1, 0)),
    ]
    for grid in refused:
        with pytest.raises(GridRefused, match=r"^frame-model renders its native 16x16 frame, translated or rotated"):
            G.check_grid(grid)
    with pytest.raises(GridRefused, match="cannot render in tiles"):
        G.check_tiles(8, 8)
    with pytest.raises(GridRefused, match="frame-model"):
        G.training_grid(32)


def test_canvas_accepts_lattice_windows_and_whole_pixel_shifts():
    G = stand_in(CANVAS)
    step = 1 / 15
    window = Grid.window(-7 * step, 30 * step, 2 * step, 99 * step, 10, 70)
    assert G.check_grid(window) is window
    assert lattice_origin(window, 16) == (-7, 30)
    shifted = window.translated(3 * step, -2 * step)
    assert lattice_origin(shifted, 16) == (-4, 28)
    assert lattice_origin(window.crop((2, 5), (10, 20)), 16) == (-5, 40)
    for grid, why in [
        (Grid.frame(32), "apart"),
        (window.translated(0.5 * step, 0), "off it"),
        (window.rotated(0.1), "rotations"),
    ]:
        with pytest.raises(GridRefused, match=why):
            G.check_grid(grid)
    G.check_tiles(8, 12)


def test_rigid_maps():
    assert is_rigid(Grid.frame(4).rotated(0.7).translated(1, 2).affine)
    assert not is_rigid(Grid.frame(4).scaled(2).affine)
    assert not is_rigid((1.0, 0.0, 0.0, 0.0, -1.0, 0.0))  # a mirror is not a motion


def test_an_image_of_a_size_is_the_frame_or_the_lattice_from_its_first_pixel():
    continuous, canvas = stand_in(CONTINUOUS), stand_in(CANVAS)
    assert CONTINUOUS.sized(continuous, 64, 32) == Grid.window(0.0, 0.0, 1.0, 1.0, 64, 32)
    lattice = CANVAS.sized(canvas, 40, 100)  # 1/15 apart (16² native), from pixel (0, 0)
    assert canvas.check_grid(lattice) is lattice and lattice_origin(lattice, 16) == (0, 0)
    assert lattice.shape == (40, 100) and lattice.coords()[0, -1, 1].item() == pytest.approx(99 / 15)
