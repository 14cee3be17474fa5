"""Interpolation paths, style mixing and level heat maps (polyinr.tools.edit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.image_io import to_uint8
from polyinr.models.generator import CapabilityMissing, Generator
from polyinr.sampling import ws_for
from polyinr.tools.edit import (
    VIRIDIS,
    check_levels,
    colorize,
    heatmap_figure,
    interpolate,
    interpolation_path,
    level_maps,
    normalize_map,
    num_path_frames,
    slerp,
    style_mix,
    style_mix_figure,
)

# ---------------------------------------------------------------------------- interpolation


@pytest.mark.parametrize("kind", ["lerp", "slerp"])
def test_looping_path_visits_keys_and_closes(kind):
    keys = torch.randn(3, 2, 5)  # K = 3 keys of [2, 5]
    keys = 3 * keys / keys.norm(dim=-1, keepdim=True)  # equal norms: slerp moves at constant speed too
    f = 4
    path = torch.stack(list(interpolation_path(keys, f, kind, loop=True)))
    assert len(path) == num_path_frames(3, f, loop=True) == 12
    for k in range(3):
        torch.testing.assert_close(path[k * f], keys[k])
    # The last frame is one step short of the first key: the step across the wrap is a regular step.
    torch.testing.assert_close(path[-1], interpolate(keys[2], keys[0], (f - 1) / f, kind))
    wrap = (path[0] - path[-1]).norm(dim=-1)
    inside = (path[-1] - path[-2]).norm(dim=-1)
    torch.testing.assert_close(wrap, inside)


def test_open_path_ends_on_last_key():
    keys = torch.randn(4, 6)
    path = torch.stack(list(interpolation_path(keys, 5, "lerp", loop=False)))
    assert len(path) == num_path_frames(4, 5, loop=False) == 16
    torch.testing.assert_close(path[0], keys[0])
    torch.testing.assert_close(path[-1], keys[-1])
    torch.testing.assert_close(path[7], torch.lerp(keys[1], keys[2], 2 / 5))


def test_slerp_keeps_norm_and_endpoints():
    a, b = torch.randn(8, 16), torch.randn(8, 16)
    b = b / b.norm(dim=-1, keepdim=True) * a.norm(dim=-1, keepdim=True)  # equal norms
    mid = slerp(a, b, 0.5)
    torch.testing.assert_close(mid.norm(dim=-1), a.norm(dim=-1))
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(slerp(a, a, 0.3), a)  # parallel vectors: no division by zero
    # Halfway along the great circle the angles to both ends are equal.
    cos_a = torch.nn.functional.cosine_similarity(mid, a, dim=-1)
    cos_b = torch.nn.functional.cosine_similarity(mid, b, dim=-1)
    torch.testing.assert_close(cos_a, cos_b)


@pytest.mark.parametrize(
    ("keys", "f", "kind", "message"),
    [
        (torch.randn(1, 4), 3, "lerp", "at least 2"),
        (torch.randn(2, 4), 0, "lerp", "at least 1"),
        (torch.randn(2, 4), 3, "cubic", "unknown interpolation"),
    ],
)
def test_bad_paths_are_errors(keys, f, kind, message):
    with pytest.raises(PolyinrError, match=message):
        next(interpolation_path(keys, f, kind))


# ---------------------------------------------------------------------------- style mixing


def test_mixing_all_levels_from_one_source_equals_that_source(tiny_G):
    row_ws, col_ws = ws_for(tiny_G, seeds=[0, 1]), ws_for(tiny_G, seeds=[2, 3, 4])
    L = tiny_G.num_ws
    everything = style_mix(row_ws, col_ws, list(range(L)))  # [2, 3, L, D]
    for r in range(2):
        torch.testing.assert_close(everything[r], col_ws)
    figure = style_mix_figure(tiny_G, row_ws, col_ws, range(L))
    H = W = tiny_G.img_resolution
    assert figure.shape == (3 * H, 4 * W, 3) and figure.dtype == np.uint8
    cols = to_uint8(tiny_G.synthesis(col_ws))
    rows = to_uint8(tiny_G.synthesis(row_ws))
    for c in range(3):
        np.testing.assert_array_equal(figure[:H, (c + 1) * W : (c + 2) * W], cols[c])  # header row
        for r in range(2):
            np.testing.assert_array_equal(figure[(r + 1) * H : (r + 2) * H, (c + 1) * W : (c + 2) * W], cols[c])
    for r in range(2):
        np.testing.assert_array_equal(figure[(r + 1) * H : (r + 2) * H, :W], rows[r])  # left column


def test_mixing_takes_exactly_the_chosen_levels(tiny_G):
    row_ws, col_ws = ws_for(tiny_G, seeds=[0]), ws_for(tiny_G, seeds=[1])
    mixed = style_mix(row_ws, col_ws, [1, 2])[0, 0]  # [L, D]
    torch.testing.assert_close(mixed[[1, 2]], col_ws[0, [1, 2]])
    torch.testing.assert_close(mixed[[0, 3]], row_ws[0, [0, 3]])
    image = tiny_G.synthesis(mixed[None])
    assert not torch.allclose(image, tiny_G.synthesis(row_ws)) and not torch.allclose(image, tiny_G.synthesis(col_ws))


def test_bad_levels_are_errors(tiny_G):
    ws = ws_for(tiny_G, seeds=[0])
    with pytest.raises(PolyinrError, match="empty"):
        style_mix(ws, ws, [])
    with pytest.raises(PolyinrError, match=r"levels \[4, 9\] do not exist"):
        style_mix(ws, ws, [0, 4, 9])
    assert check_levels([3, 1, 1], 4) == [1, 3]


# ---------------------------------------------------------------------------- heat maps


def test_level_maps_shapes_ranges_and_fidelity(tiny_G):
    ws = ws_for(tiny_G, seeds=[0, 1])
    grid = Grid.window(-0.5, 0.0, 1.5, 1.0, 20, 12)  # extrapolating, non-square
    maps = level_maps(tiny_G, ws, grid, pixel_chunk=50)  # chunks that do not divide the 240 pixels
    L = tiny_G.num_ws
    assert maps.coord.shape == maps.features.shape == (2, L, 20, 12)
    for values in (maps.coord, maps.features):
        assert torch.isfinite(values).all() and (values >= 0).all()
        assert (values.amax(dim=(2, 3)) > 0).all()  # every level contributes somewhere
        assert (values.amax(dim=(2, 3)) > values.amin(dim=(2, 3))).all()  # and varies over the plane
    # The maps are computed along the network's own path: the image is the synthesis' render.
    torch.testing.assert_close(maps.image, tiny_G.synthesis(ws, grid), rtol=1e-4, atol=1e-5)


def test_heatmap_figure_is_a_labelled_layout(tiny_G):
    maps = level_maps(tiny_G, ws_for(tiny_G, seeds=[3]))
    figure = heatmap_figure(maps, scale=6)  # panels 96 × 96
    L, panel, gap, text_h = tiny_G.num_ws, 96, 4, 14
    assert figure.dtype == np.uint8
    assert figure.shape == (text_h + 2 * (2 * text_h + panel + gap), (L + 1) * (panel + gap) + gap, 3)
    x0, y0 = gap + panel + gap, 2 * text_h  # first heat panel (level 0, coordinate term)
    expected = colorize(normalize_map(maps.coord[0, 0]).numpy()).repeat(6, axis=0).repeat(6, axis=1)
    np.testing.assert_array_equal(figure[y0 : y0 + panel, x0 : x0 + panel], expected)
    labels = figure[y0 + panel : y0 + panel + text_h, x0 : x0 + panel]
    assert (labels < 128).any()  # text under the panel


def test_heat_maps_are_a_capability_of_the_model(tiny_G):
    class Other(Generator):
        model_name = "levelless"

    with pytest.raises(CapabilityMissing, match=r"^levelless has no per-level heat maps$"):
        level_maps(Other(tiny_G.cfg), ws_for(tiny_G, seeds=[0]))


def test_colormap_and_normalisation():
    ends = colorize(np.array([[0.0, 1.0, -3.0, 7.0]]))
    np.testing.assert_array_equal(ends[0], VIRIDIS[[0, 8, 0, 8]].astype(np.uint8))
    ramp = colorize(np.linspace(0, 1, 50)).astype(int)
    assert (np.diff(ramp.sum(axis=-1)) >= -3).all()  # viridis brightens along the ramp
    values = torch.tensor([[2.0, 4.0], [3.0, 6.0]])
    torch.testing.assert_close(normalize_map(values), torch.tensor([[0.0, 0.5], [0.25, 1.0]]))
    assert (normalize_map(torch.full((3, 3), 5.0)) == 0).all()
