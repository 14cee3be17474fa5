"""Poly-INR synthesis on grids: shapes, and the exactness properties every tool relies on."""

from __future__ import annotations

import pytest
import torch

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.models.poly_inr import PolyINRGenerator, pixel_budget


@pytest.fixture(scope="module", params=[32, 256], ids=["n32", "n256"])
def G_ws(request, make_generator):
    """A tiny generator at two widths (different BLAS paths) and ``ws`` of two samples."""
    G = make_generator(seed=2, channels=request.param)
    return G, G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(3)))


def test_shapes_and_dtypes(G, ws):
    assert isinstance(G, PolyINRGenerator) and G.num_ws == 4 and G.z_dim == 8 and G.num_classes == 0
    assert ws.shape == (3, 4, 16) and ws.dtype == torch.float32
    images = G.synthesis(ws)
    assert images.shape == (3, 3, 8, 8) and images.dtype == torch.float32 and images.isfinite().all()
    assert G.synthesis(ws, Grid.window(-1, 0, 2, 3, 5, 11)).shape == (3, 3, 5, 11)
    z = torch.randn(2, G.z_dim)
    assert torch.equal(G(z), G.synthesis(G.mapping(z)))
    assert G(z, grid=Grid.frame(12)).shape == (2, 3, 12, 12)


def test_wrong_number_of_ws_raises(G, ws):
    with pytest.raises(PolyinrError, match="4 ws"):
        G.synthesis(ws[:, :3])
    with pytest.raises(PolyinrError, match="latents"):
        G.mapping(torch.randn(2, G.z_dim + 1))


def test_extrapolated_window_left_half_is_the_frame_render(G_ws):
    G, ws = G_ws
    R = 8
    frame = G.synthesis(ws, Grid.frame(R))
    wide = G.synthesis(ws, Grid.window(0, 0, 1, 2, R, 2 * R - 1))  # [0, 1] × [0, 2]
    assert torch.equal(wide[..., :R], frame)
    assert not torch.equal(wide[..., R - 1 :], frame)  # the right half is new content
    tall = G.synthesis(ws, Grid.window(-1, 0, 1, 1, 2 * R - 1, R))  # [-1, 1] × [0, 1]
    assert torch.equal(tall[..., R - 1 :, :], frame)


def test_denser_render_contains_the_native_one(G_ws):
    G, ws = G_ws
    R = 8
    assert torch.equal(G.synthesis(ws, Grid.frame(2 * R - 1))[..., ::2, ::2], G.synthesis(ws, Grid.frame(R)))


def test_tiles_reassemble_the_render_exactly(G_ws):
    G, ws = G_ws
    grid = Grid.window(-0.5, -0.25, 1.5, 1.25, 21, 34)
    full = G.synthesis(ws, grid)
    for tile in ((8, 8), (5, 34)):
        canvas = torch.full_like(full, float("nan"))
        for r, c, t in grid.tiles(*tile):
            h, w = t.shape
            canvas[..., r : r + h, c : c + w] = G.synthesis(ws, t)
        assert torch.equal(canvas, full), tile


@pytest.mark.parametrize("chunk", [1, 7, 32, 33, 100, 10_000])
def test_chunked_equals_one_shot(G_ws, chunk):
    G, ws = G_ws
    grid = Grid.window(0, 0, 1, 1.5, 17, 23)  # 391 pixels: not a multiple of any chunk
    assert torch.equal(G.synthesis(ws, grid, pixel_chunk=chunk), G.synthesis(ws, grid, pixel_chunk=391))


def test_default_chunk_budget_is_cache_sized_on_cpu():
    assert pixel_budget(torch.device("cpu")) * 4 <= 4 << 20  # ≤ 4 MiB of fp32 activations per chunk
    assert pixel_budget(torch.device("meta")) > pixel_budget(torch.device("cpu"))


def test_training_path_matches_inference_and_backpropagates(G_ws):
    G, ws = G_ws
    grid = Grid.window(-0.2, 0, 1, 1.2, 9, 10)
    with torch.no_grad():
        reference = G.synthesis(ws, grid)  # in-place inference path
    G.requires_grad_(True)
    try:
        w = ws.clone().requires_grad_(True)
        images = G.synthesis(w, grid, pixel_chunk=32)  # autograd path, several chunks
        assert torch.equal(images.detach(), reference)
        images.square().mean().backward()
        assert w.grad is not None and w.grad.abs().sum() > 0
        for name, p in G.synthesis.named_parameters():
            assert p.grad is not None and p.grad.isfinite().all(), name
        assert G.synthesis.levels[-1].linear.weight.grad.abs().sum() > 0
    finally:
        G.zero_grad(set_to_none=True)
        G.requires_grad_(False)


def test_level_does_not_modify_its_inputs_unless_asked(G, ws):
    level = G.synthesis.levels[1]
    x, coord = torch.randn(1, 32, 32), torch.randn(1, 32, 32)
    x0, coord0 = x.clone(), coord.clone()
    out = level(x, coord)
    assert torch.equal(x, x0) and torch.equal(coord, coord0)
    assert torch.equal(level(x, coord.clone(), inplace=True), out)
    assert out.abs().max() <= level.clamp


def test_activation_clamp_bounds_every_level(make_generator):
    G = make_generator(activation_clamp=0.05)
    level = G.synthesis.levels[0]
    out = level(None, 100 * torch.randn(1, 64, 32))
    assert out.abs().max() == pytest.approx(0.05)


def test_stored_grid_replaces_only_the_native_frame(make_generator):
    G = make_generator(stored_grid=True)
    ws = G.mapping(torch.randn(1, G.z_dim))
    uniform = G.synthesis(ws, Grid.frame(8))
    window = G.synthesis(ws, Grid.window(0, 0, 1, 2, 8, 15))
    assert torch.equal(window[..., :8], uniform)  # the stored grid starts uniform
    G.synthesis.input_grid.add_(0.1)  # as an imported checkpoint's trained grid would
    assert not torch.equal(G.synthesis(ws, Grid.frame(8)), uniform)
    assert torch.equal(G.synthesis(ws, Grid.window(0, 0, 1, 2, 8, 15)), window)
    assert "synthesis.input_grid" in G.state_dict()


def test_bf16_autocast_stays_close_to_fp32(G, ws):
    reference = G.synthesis(ws)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        images = G.synthesis(ws)  # in-place inference path
        tracked = G.synthesis(ws.clone().requires_grad_(True))  # autograd path
    assert torch.equal(images, tracked.detach())
    assert images.isfinite().all()
    assert (images.float() - reference).abs().max() <= 0.05 * reference.abs().max()


def test_exactness_at_the_authors_width(make_generator):
    """n = 1024 takes MKL's large-GEMM paths: the grid identities still hold bit for bit."""
    G = make_generator(seed=7, channels=1024, num_levels=2)
    ws = G.mapping(torch.randn(2, G.z_dim))
    frame = G.synthesis(ws, Grid.frame(8))
    wide_grid = Grid.window(0, 0, 1, 2, 8, 15)
    wide = G.synthesis(ws, wide_grid)
    assert torch.equal(wide[..., :8], frame)
    assert torch.equal(G.synthesis(ws, wide_grid, pixel_chunk=33), wide)
    assert torch.equal(G.synthesis(ws, wide_grid.crop((3, 8), (4, 15))), wide[..., 3:8, 4:15])
