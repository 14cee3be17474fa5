"""StyleGAN2's generator: NVIDIA's --cfg=stylegan2 sizes, noise modes, clamping, and the grids it refuses.

That its images are NVIDIA's, number by number, is shown by the importer test against their code's stand-in
(``tests/importers/test_stylegan2_import.py``).
"""

from __future__ import annotations

import pytest
import torch

import polyinr
from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.models.generator import GridRefused
from polyinr.models.registry import resolve_config
from polyinr.models.stylegan2 import StyleGAN2Generator


def tiny(**overrides) -> StyleGAN2Generator:
    torch.manual_seed(0)
    G = polyinr.create("stylegan2", "cpu", img_resolution=16, channel_max=8, **overrides)
    with torch.no_grad():
        for name, value in G.named_parameters():
            if name.endswith("noise_strength"):
                value.fill_(0.5)
    return G.eval().requires_grad_(False)


def test_paper_preset_has_nvidias_stylegan2_sizes():
    with torch.device("meta"):
        G = StyleGAN2Generator(resolve_config("stylegan2", "paper-1024"))
    assert G.num_ws == 18 and G.z_dim == G.w_dim == 512 and len(G.mapping.layers) == 8
    assert G.cfg.mapping.lr_multiplier == 0.01 and G.cfg.conv_clamp == 256
    channels = [block.conv1.weight.shape[0] for block in G.synthesis.blocks()]
    assert channels == [512, 512, 512, 512, 512, 256, 128, 64, 32]  # min(32768 // r, 512), r = 4 … 1024


def test_noise_modes():
    G = tiny()
    ws = G.mapping(polyinr.latents_from_seeds([0, 1], G.z_dim))
    const = G.synthesize(ws)  # eval mode: each layer's stored noise
    assert torch.equal(const, G.synthesize(ws, noise_mode="const"))
    assert not torch.allclose(const, G.synthesize(ws, noise_mode="none"))
    torch.manual_seed(1)
    first = G.synthesize(ws, noise_mode="random")
    torch.manual_seed(2)
    assert not torch.allclose(first, G.synthesize(ws, noise_mode="random"))
    G.train()
    torch.manual_seed(1)
    assert torch.equal(G.synthesize(ws), first)  # training draws fresh noise by default
    with pytest.raises(PolyinrError, match="noise_mode must be one of random, const, none, got 'fixed'"):
        G.synthesize(ws, noise_mode="fixed")


def test_conv_clamp_bounds_every_layer_and_zero_disables_it():
    clamped, free = tiny(conv_clamp=0.05), tiny(conv_clamp=0.0)
    ws = clamped.mapping(polyinr.latents_from_seeds([3], clamped.z_dim))
    assert clamped.synthesis.b4.torgb(torch.full((1, 8, 4, 4), 100.0), ws[:, 0]).abs().max() <= 0.05
    assert free.synthesis.b4.torgb(torch.full((1, 8, 4, 4), 100.0), ws[:, 0]).abs().max() > 0.05
    assert not torch.allclose(clamped.synthesize(ws), free.synthesize(ws))


def test_only_the_native_frame_is_rendered():
    G = tiny()
    G.check_grid(Grid.frame(16))
    for grid in (Grid.frame(16).translated(0.1, 0.0), Grid.frame(16).rotated(0.2), Grid.frame(32)):
        with pytest.raises(GridRefused, match=r"^stylegan2 renders only its native 16x16 frame \(no translation") as e:
            G.synthesize(G.mapping(polyinr.latents_from_seeds([0], G.z_dim)), grid)
        assert "\n" not in str(e.value)


def test_sizes_that_are_not_powers_of_two_are_refused():
    with pytest.raises(PolyinrError, match="power of two ≥ 4, not 24"):
        polyinr.create("stylegan2", "cpu", img_resolution=24)


def test_style_mixing_cuts_as_their_loss_draws_them():
    assert tiny().style_mixing_range() == range(1, 6)  # num_ws 6 at 16²: the cut k in [1, num_ws)
