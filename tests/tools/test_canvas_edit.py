"""InfinityGAN outpainting and inbetweening: the input region is kept, the canvas around it is new."""

from __future__ import annotations

import pytest
import torch

import polyinr
from polyinr.errors import PolyinrError
from polyinr.tools.canvas_edit import Placement, invert_canvas, lattice_window, noise_regularisation
from tiny_infinity_gan import TINY_INFINITY_GAN

TINY = TINY_INFINITY_GAN


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    G = polyinr.create("infinitygan", **TINY).eval().requires_grad_(False)
    with torch.no_grad():
        for layer in G.synthesis.texture.layers:
            layer.noise_strength.fill_(0.3)
    return G


@pytest.fixture(scope="module")
def target(G):
    with torch.no_grad():
        return G.synthesis(G.mapping(polyinr.latents_from_seeds([9], G.z_dim)), lattice_window(G, 0, 0, 24, 24))


@pytest.mark.slow
def test_outpainting_keeps_a_self_generated_image(G, target):
    result = invert_canvas(G, [Placement(target, 0, 0)], (24, 60), num_steps=60, perceptual="laplacian")
    assert result.image.shape == (1, 3, 24, 60)
    assert result.psnr[0] > 12  # from about 7 dB for the starting canvas
    latents = result.latents  # the canvas is shareable: its latent file renders the same picture
    again = G.render_canvas(latents.ws(G), lattice_window(G, 0, 0, 24, 60), latents.canvas())
    assert torch.allclose(again, result.image, atol=1e-4)
    assert result.image[..., 30:].std() > 0.05  # the extension is painted, not flat


def test_inbetweening_places_both_images_and_refuses_misfits(G, target):
    result = invert_canvas(
        G,
        [Placement(target, 0, 0), Placement(target.flip(3), 0, 40)],
        (24, 64),
        num_steps=2,
        perceptual="laplacian",
        blur=15,
    )
    assert result.image.shape == (1, 3, 24, 64) and len(result.psnr) == 2 and result.latents is None
    with pytest.raises(PolyinrError, match="does not fit"):
        invert_canvas(G, [Placement(target, 10, 0)], (24, 64), num_steps=1)


def test_noise_regularisation_penalises_correlated_noise():
    white = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    smooth = torch.nn.functional.avg_pool2d(white, 3, stride=1, padding=1)
    smooth = smooth / smooth.std()
    assert noise_regularisation(smooth) > 10 * noise_regularisation(white)
