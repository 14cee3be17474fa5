"""InfinityGAN: layer sizes from the preset, seamless canvas rendering, bounded memory, canvas latent files."""

from __future__ import annotations

import pytest
import torch

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.models.infinity_gan import InfinityGANConfig
from polyinr.models.infinity_gan.canvas import SeededCanvas, TensorCanvas, authors_coords, lattice_coords, window_cells
from polyinr.models.infinity_gan.config import texture_sizes
from polyinr.models.registry import create, resolve_config
from polyinr.tools.canvas import (
    CanvasFileError,
    CanvasLatents,
    canvas_grid,
    draw_canvas_latents,
    load_canvas_latents,
    save_canvas_latents,
)
from tiny_infinity_gan import TINY_INFINITY_GAN

TINY = TINY_INFINITY_GAN


def tiny(seed: int = 0):
    torch.manual_seed(seed)
    G = create("infinitygan", **TINY).eval().requires_grad_(False)
    with torch.no_grad():
        for layer in G.synthesis.texture.layers:
            layer.noise_strength.fill_(0.3)  # zero at init: make the noise canvas matter
    return G


def lattice(G, top: int, left: int, height: int, width: int) -> Grid:
    """Pixels ``[top, top + height) × [left, left + width)`` of the model's lattice."""
    R = G.img_resolution
    return Grid.window(
        top / (R - 1), left / (R - 1), (top + height - 1) / (R - 1), (left + width - 1) / (R - 1), height, width
    )


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float rounding: convolutions of other sizes may sum in another order."""
    return torch.allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def G():
    return tiny()


@pytest.fixture(scope="module")
def ws(G):
    return G.mapping(torch.randn(2, G.z_dim))


def test_paper_sizes_follow_from_the_preset():
    cfg = resolve_config("infinitygan", "paper")
    assert texture_sizes(cfg.ts_input_size, cfg.num_blocks) == [19, 17, 31, 29, 55, 53, 103, 101]
    assert (cfg.img_resolution, cfg.margin, cfg.cell_pixels, cfg.hori_period) == (101, 12, 16, 139)
    assert cfg.vert_scale == pytest.approx(0.3) and cfg.num_styles == 9
    assert texture_sizes(22, 4)[-1] == 277  # the authors' 176 px per 11 cells
    assert window_cells(cfg, 0, 101) == (0, 11)
    cpu = resolve_config("infinitygan", "cpu")
    assert cpu.img_resolution == 37 and cpu.ts_channels == (64, 64, 32)


def zero_canvas(cfg: InfinityGANConfig, h: int, w: int) -> TensorCanvas:
    m = cfg.margin
    sizes = zip(texture_sizes(h - 2 * m, cfg.num_blocks), texture_sizes(w - 2 * m, cfg.num_blocks))
    return TensorCanvas(cfg, torch.zeros(1, cfg.local_latent_dim, h, w), None, [torch.zeros(1, 1, *s) for s in sizes])


def test_canvas_pixel_shapes_match_the_authors():
    cfg = InfinityGANConfig(local_latent_dim=4)
    assert zero_canvas(cfg, 35, 35).pixel_shape == (101, 101)
    assert zero_canvas(cfg, 53, 59).pixel_shape == (389, 485)
    with pytest.raises(PolyinrError, match="too small"):
        TensorCanvas(cfg, torch.zeros(1, 4, 20, 35), None, [])


def test_lattice_coordinates_reproduce_the_authors_single_patch():
    cfg = resolve_config("infinitygan", "paper")
    cells = torch.arange(-cfg.margin, cfg.ts_input_size + cfg.margin, dtype=torch.float64)
    ours = lattice_coords(cfg, cells, cells)
    theirs = authors_coords(cfg, len(cells), len(cells))[0]
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert theirs[0, 17, 0].abs() < 1e-6  # vertically centred; horizontally cos(-π), sin(-π) at column 0
    assert theirs[1, 0, 0] == pytest.approx(-1.0) and theirs[2, 0, 0] == pytest.approx(0.0, abs=1e-6)


def test_native_patch_shape_and_determinism(G, ws):
    a = G.synthesis(ws)
    assert a.shape == (2, 3, 13, 13) and torch.isfinite(a).all()
    assert torch.equal(a, G.synthesis(ws))
    assert not torch.equal(a[0], a[1])


def test_patches_from_the_canvas_equal_one_direct_render(G, ws):
    grid = lattice(G, -9, 14, 45, 53)  # starts at a negative index, not aligned to cells
    patched = G.synthesis(ws, grid, patch_batch=4)  # 13² patches at a 12 px stride, 4 per batched call
    direct = G.synthesis(ws, grid, patch_cells=64)  # the whole window in one patch
    assert close(patched, direct)
    one_by_one = G.synthesis(ws, grid, patch_batch=1)
    assert close(patched, one_by_one)


def test_any_sub_window_is_a_crop_of_the_larger_window(G, ws):
    big = G.synthesis(ws, lattice(G, 0, 0, 40, 48))
    part = G.synthesis(ws, lattice(G, 7, 21, 20, 17))
    assert close(part, big[:, :, 7:27, 21:38])
    shifted = G.synthesis(ws, lattice(G, 40, 0, 10, 48))  # the next rows continue the canvas
    joined = G.synthesis(ws, lattice(G, 0, 0, 50, 48))
    assert close(torch.cat([big, shifted], dim=2), joined)


def test_memory_is_bounded_by_the_patch_batch(G, ws):
    seen = []
    hook = G.synthesis.texture.register_forward_hook(lambda m, args, out: seen.append(tuple(out.shape)))
    try:
        G.synthesis(ws, lattice(G, 0, 0, 30, 30), patch_batch=3)
        small = list(seen)
        seen.clear()
        G.synthesis(ws, lattice(G, -50, 100, 70, 90), patch_batch=3)
    finally:
        hook.remove()
    assert {s[1:] for s in small} == {s[1:] for s in seen} == {(2 * 3, 13, 13)}
    assert max(s[0] for s in seen) == 3 and len(seen) > 4 * len(small)


def test_canvas_follows_the_global_latent_not_the_batch(G, ws):
    both = G.synthesis(ws, lattice(G, 0, 0, 20, 30))
    alone = G.synthesis(ws[1:], lattice(G, 0, 0, 20, 30))
    assert close(both[1:], alone)


def test_seeded_canvas_blocks_are_independent_of_the_window():
    cfg = resolve_config("infinitygan", **TINY)
    canvas = SeededCanvas.from_seeds(cfg, [3])
    big = canvas.local_latents((-20, 20), (-5, 40))
    assert torch.equal(canvas.local_latents((-3, 2), (30, 33)), big[:, :, 17:22, 35:38])
    assert torch.equal(canvas.noise(3, (5, 9), (0, 70)), canvas.noise(3, (0, 20), (0, 70))[:, :, 5:9])


def test_latent_file_round_trip_renders_the_seeded_window(G, tmp_path):
    grid = lattice(G, -6, 10, 30, 41)
    latents = draw_canvas_latents(G, 5, grid)
    path = save_canvas_latents(tmp_path / "canvas.safetensors", latents, G)
    loaded = load_canvas_latents(path, G)
    whole = G.render_canvas(loaded.ws(G), canvas_grid(G, loaded), loaded.canvas())
    from polyinr.sampling import latents_from_seeds

    seeded = G.synthesis(G.mapping(latents_from_seeds([5], G.z_dim)), grid)
    top, left = -6 - (-6 // 4) * 4, 10 - (10 // 4) * 4  # the file's canvas starts at the window's first cell
    assert close(whole[:, :, top : top + 30, left : left + 41], seeded)
    part = G.render_canvas(loaded.ws(G), canvas_grid(G, loaded, (3, 4, 10, 12)), loaded.canvas())
    assert close(part, whole[:, :, 3:13, 4:16])
    with pytest.raises(PolyinrError, match="beyond the canvas"):
        G.render_canvas(loaded.ws(G), canvas_grid(G, loaded, (0, 0, 200, 10)), loaded.canvas())


def test_latent_file_equals_the_authors_patch_by_patch_inference(G):
    """Their loop: patches of 7 texture cells at a 3-cell stride, each slicing latents, coordinates and noise
    from the whole canvas, pasted at 12 px steps; ours renders the whole canvas in any patching."""
    torch.manual_seed(1)
    cfg, m = G.cfg, G.cfg.margin
    h, w = 7 + 2 * 3 + 2 * m, 7 + 3 + 2 * m  # three patches down, two across
    noises = [torch.randn(1, 1, a, b) for a, b in zip(texture_sizes(h - 2 * m, 2), texture_sizes(w - 2 * m, 2))]
    latents = CanvasLatents(torch.randn(1, 2, 16), torch.randn(1, 8, h, w), noises, inject_index=2)
    canvas = TensorCanvas(cfg, latents.local_latent, latents.coords, latents.noises)
    ws = latents.ws(G)
    H, W = canvas.pixel_shape
    theirs = torch.zeros(1, 3, H, W)
    coords = authors_coords(cfg, h, w)
    for i in range(0, h - 2 * m - 7 + 1, 3):
        for j in range(0, w - 2 * m - 7 + 1, 3):
            rows, cols = slice(i, i + 7 + 2 * m), slice(j, j + 7 + 2 * m)  # their z_l[zx − 12 : zx + 11 + 12]
            local = latents.local_latent[None, :, :, rows, cols].flatten(1, 2)  # [P = 1, B·Dl, h, w]
            x = G.synthesis.structure(local, coords[None, :, :, rows, cols].flatten(1, 2), ws[:, 0])
            steps = [2, 2, 4, 4]
            sizes = texture_sizes(7, 2)
            patch_noise = [n[None, :, :, s * i : s * i + k, s * j : s * j + k] for n, s, k in zip(noises, steps, sizes)]
            theirs[:, :, 4 * i : 4 * i + 13, 4 * j : 4 * j + 13] = G.synthesis.texture(x, ws[:, 1:], patch_noise)[0]
    ours = G.synthesis.render_canvas(ws, canvas)
    assert ours.shape == (1, 3, H, W) == (1, 3, 4 * (h - 2 * m) - 15, 4 * (w - 2 * m) - 15)
    assert close(ours, theirs)


def test_inject_index_mixes_the_texture_styles(G):
    g = torch.randn(1, 2, 16)
    ws = G.ws_from_global(g, 3)
    assert torch.equal(ws[:, :4], G.ws_from_global(g[:, :1])[:, :4])
    assert torch.equal(ws[:, 4:], G.mapping(g[:, 1])[:, 4:])
    assert torch.equal(G.ws_from_global(g, G.cfg.num_styles), G.ws_from_global(g[:, 0]))


def test_bad_latent_files_give_one_line_errors(G, tmp_path):
    from safetensors.torch import save_file

    save_file(
        {"global_latent": torch.zeros(1, 2, 16), "local_latent": torch.zeros(1, 8, 20, 20)},
        str(tmp_path / "a.safetensors"),
    )
    with pytest.raises(CanvasFileError, match="noise maps"):
        load_canvas_latents(tmp_path / "a.safetensors", G)
    save_file(
        {"global_latent": torch.zeros(1, 2, 5), "local_latent": torch.zeros(1, 8, 20, 20)},
        str(tmp_path / "b.safetensors"),
    )
    with pytest.raises(CanvasFileError, match=r"expected \[1, 2, 16\]"):
        load_canvas_latents(tmp_path / "b.safetensors", G)
    with pytest.raises(CanvasFileError, match="not found"):
        load_canvas_latents(tmp_path / "missing.safetensors", G)


def test_style_fusion_with_one_style_is_the_plain_render(G):
    from polyinr.models.infinity_gan.patches import StyleFusion

    ws = G.mapping(torch.randn(2, G.z_dim))
    grid = lattice(G, -5, 3, 20, 120)
    plain = G.synthesis(ws[:1], grid)
    assert close(G.synthesis(ws[:1], grid, fusion=StyleFusion(ws[:1], [(10.0, 10.0)], blur=15)), plain)
    fused = G.synthesis(ws[:1], grid, fusion=StyleFusion(ws, [(10.0, -100.0), (10.0, 226.0)], blur=9))
    second = G.synthesis(ws[1:], grid, canvas=SeededCanvas.from_global(G.cfg, ws[:1, 0]))
    assert close(fused[..., :8], plain[..., :8]) and close(fused[..., -8:], second[..., -8:])  # each side its style
    assert not close(fused, plain) and not close(fused, second)


def test_training_grid_is_the_patch_and_refuses_images_smaller_than_a_patch(G):
    from polyinr.models.generator import GridRefused

    R = G.img_resolution
    assert G.training_grid(R) == G.training_grid(3 * R) == G.native_grid()
    with pytest.raises(
        GridRefused,
        match=rf"trains {R}x{R} patches.*{R - 1}x{R - 1} images are smaller than a patch: "
        rf"train at {R} or more",
    ):
        G.training_grid(R - 1)
