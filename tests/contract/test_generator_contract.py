"""The generator contract, run over every registered model with its ``cpu`` preset.

A model is done when it passes this file: images of the declared shape, finite and not flat; the same seed
gives the same image; save → load is bit-exact; tiles reassemble the full render exactly wherever the model
accepts tiles; a refused grid is a one-line :class:`GridRefused`; one training step runs with each
discriminator and its loss.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import polyinr
from polyinr.discriminators import create_discriminator, list_discriminators
from polyinr.grid import Grid
from polyinr.models.generator import FRAME, CapabilityMissing, GridRefused
from polyinr.models.registry import list_models
from polyinr.training.losses import HingeConfig, NonSaturatingConfig, NonSaturatingLoss, ProjectedHingeLoss

NUM_CLASSES = 3
MODELS = list_models()


@pytest.fixture(scope="module", params=MODELS)
def G(request) -> polyinr.Generator:
    torch.manual_seed(0)
    return polyinr.create(request.param, "cpu", num_classes=NUM_CLASSES).eval().requires_grad_(False)


def sample(G, seeds=(0, 1)) -> tuple[torch.Tensor, torch.Tensor]:
    z = polyinr.latents_from_seeds(list(seeds), G.z_dim)
    return z, torch.arange(len(seeds)) % NUM_CLASSES


def lattice_grid(G, rows: int, cols: int, row0: int = 0, col0: int = 0) -> Grid:
    """A window of ``rows × cols`` pixels spaced as the native frame's, starting ``(row0, col0)`` pixels off."""
    step = 1.0 / (G.img_resolution - 1)
    return Grid.window(row0 * step, col0 * step, (row0 + rows - 1) * step, (col0 + cols - 1) * step, rows, cols)


def test_every_model_has_a_cpu_preset_and_declares_its_grids(G):
    assert G.model_name in MODELS
    assert G.grid_support.kind in ("continuous", "frame", "canvas")
    line = G.describe_grids()
    assert line and "\n" not in line


def test_native_render_has_the_declared_shape_and_is_finite(G):
    z, c = sample(G)
    images = G(z, c)
    R = G.img_resolution
    assert images.shape == (2, 3, R, R) and images.dtype == torch.float32
    assert torch.isfinite(images).all()
    assert images.std() > 1e-4  # not a flat picture
    assert images.abs().max() < 1e3  # [-1, 1] after training; a random net stays in a sane range


def test_same_seed_same_image(G):
    z, c = sample(G, (5,))
    first, second = G(z, c), G(z.clone(), c.clone())
    assert torch.equal(first, second)
    ws = G.mapping(z, c)
    assert ws.shape == (1, G.num_ws, G.w_dim)
    assert torch.equal(G.synthesize(ws), first)


def test_save_then_load_is_bit_exact(G, tmp_path):
    z, c = sample(G)
    G.save(tmp_path / "ckpt")
    loaded = polyinr.load(tmp_path / "ckpt")
    assert type(loaded) is type(G) and loaded.cfg == G.cfg
    assert torch.equal(loaded(z, c), G(z, c))


def test_tiles_reassemble_the_full_render(G):
    if not G.grid_support.tiles:
        with pytest.raises(GridRefused, match=f"^{G.model_name} cannot render in tiles"):
            G.check_tiles(8, 8)
        return
    z, c = sample(G, (3,))
    ws = G.mapping(z, c)
    size = 2 * G.img_resolution - 1
    grid = lattice_grid(G, size, size + 6, row0=-4, col0=3)  # beyond the frame on every side kind allows
    full = G.synthesize(ws, grid)
    tile = 4 * max(1, G.img_resolution // 8)
    G.check_tiles(tile, tile)
    pasted = torch.empty_like(full)
    for r, col, part in grid.tiles(tile):
        h, w = part.shape
        pasted[..., r : r + h, col : col + w] = G.synthesize(ws, part)
    assert torch.equal(pasted, full)


def test_refused_grids_give_one_line(G):
    R = G.img_resolution
    candidates = [Grid.window(0.1, 0.2, 0.9, 1.3, R + 3, R + 5), Grid.frame(R).rotated(0.3).scaled(0.5)]
    for grid in candidates:
        try:
            G.check_grid(grid)
        except GridRefused as e:
            message = str(e)
            assert message.startswith(G.model_name) and "\n" not in message
        else:
            assert G.grid_support.kind == "continuous"  # a continuous model paints every grid
    if G.grid_support is FRAME:
        with pytest.raises(GridRefused):
            G.check_grid(Grid.frame(2 * R))
        G.check_grid(Grid.frame(R).translated(0.1, -0.2).rotated(0.4))  # its rigid motions are fine


def test_optional_capabilities_answer_or_refuse_clearly(G):
    macs = G.macs_per_pixel()
    assert macs is None or macs > 0
    mixing = G.style_mixing_range()
    assert mixing is None or (0 <= mixing.start < mixing.stop <= G.num_ws)
    z, c = sample(G, (0,))
    try:
        maps = G.level_heatmaps(G.mapping(z, c))
    except CapabilityMissing as e:
        assert str(e).startswith(G.model_name) and "\n" not in str(e)
    else:
        assert maps.features.shape[0] == 1 and torch.isfinite(maps.features).all()
    try:
        settings = type(G).learned_grid_settings()
    except CapabilityMissing as e:
        assert str(e).startswith(G.model_name) and "\n" not in str(e)
    else:  # config fields of the same model with more parameters: its native frame's coordinates
        learner = type(G)(dataclasses.replace(G.cfg, **settings))
        assert learner.parameter_count() == G.parameter_count() + G.img_resolution**2 * 2


def test_canvas_capabilities_answer_or_refuse_in_one_line(G):
    """A canvas model draws, measures, fuses and renders canvases and makes training patches; others refuse."""
    z, c = sample(G, (0, 1))
    ws = G.mapping(z, c)
    grid = lattice_grid(G, 6, 9, row0=-2, col0=5)
    calls = {
        "ws_from_global": lambda: G.ws_from_global(z),
        "canvas_from_seeds": lambda: G.canvas_from_seeds([3], grid),
        "canvas_from_global": lambda: G.canvas_from_global(ws[:1, 0], grid),
        "style_fusion": lambda: G.style_fusion(ws, [(0.0, 0.0), (0.0, 40.0)], blur=5),
        "render_canvas": lambda: G.render_canvas(ws[:1], grid),
        "training_fakes": lambda: G.training_fakes(ws, paired=True),
    }
    if G.grid_support.kind != "canvas":
        for name, call in calls.items():
            with pytest.raises(CapabilityMissing, match=f"^{G.model_name} has no|^{G.model_name} renders no") as e:
                call()
            assert "\n" not in str(e.value), name
        return
    assert torch.equal(G.render_canvas(ws[:1], grid), G.synthesize(ws[:1], grid))
    canvas = G.canvas_from_global(ws[:1, 0], grid)  # the canvas synthesize paints for these ws, around the grid
    torch.testing.assert_close(G.render_canvas(ws[:1], grid, canvas), G.synthesize(ws[:1], grid))  # other patches
    seeded = G.canvas_from_seeds([3], grid)
    H, W = G.canvas_pixel_shape(seeded)
    assert H >= 6 and W >= 9 and not torch.equal(seeded.local, canvas.local)
    fused = G.render_canvas(ws[:1], grid, fusion=calls["style_fusion"]())
    assert fused.shape == (1, 3, 6, 9) and torch.isfinite(fused).all()
    fakes = G.training_fakes(ws, paired=True)
    R = G.img_resolution
    assert fakes.images.shape == (2, 3, R, R) and fakes.positions.shape == (2,)
    assert fakes.structure.shape[0] == fakes.local.shape[0] == 2


# Tiny settings and the loss each registered discriminator trains with; a new discriminator must be added here.
DISCRIMINATORS = {
    "residual": (
        dict(channel_base=256, channel_max=32, embed_dim=8),
        lambda G, D: NonSaturatingLoss(G, D, NonSaturatingConfig(gamma=1.0)),
    ),
    "projected": (
        dict(backbones=["tf_efficientnet_lite0"], pretrained=False, interp224=False, embed_dim=8),
        lambda G, D: ProjectedHingeLoss(G, D, HingeConfig(blur_sigma=1.0)),
    ),
}


def test_every_registered_discriminator_has_tiny_settings_here():
    assert sorted(DISCRIMINATORS) == list_discriminators()


@pytest.mark.parametrize("disc", sorted(DISCRIMINATORS))
def test_one_training_step_with_each_discriminator(G, disc):
    torch.manual_seed(1)
    model = polyinr.create(G.model_name, "cpu", num_classes=NUM_CLASSES).train()
    R = model.img_resolution
    settings, make_loss = DISCRIMINATORS[disc]
    D = create_discriminator(disc, R, NUM_CLASSES, **settings)
    loss = make_loss(model, D)
    real = torch.rand(2, 3, R, R) * 2 - 1
    real_c = torch.tensor([0, 2])
    z, gen_c = sample(model)
    before = {k: v.clone() for k, v in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for phase in loss.phases():
        if phase.network == "G":
            loss.accumulate_gradients(phase.name, real, real_c, z, gen_c, gain=1.0, cur_nimg=0)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    optimizer.step()
    changed = [k for k, v in model.named_parameters() if not torch.equal(v, before[k])]
    assert changed
    D.zero_grad(set_to_none=True)
    for phase in loss.phases():
        if phase.network == "D":
            loss.accumulate_gradients(phase.name, real, real_c, z, gen_c, gain=1.0, cur_nimg=0)
    d_grads = [p.grad for p in D.parameters() if p.grad is not None]
    assert d_grads and all(torch.isfinite(g).all() for g in d_grads)
    with torch.no_grad():
        assert np.isfinite(float(D(real, real_c).float().mean()))
