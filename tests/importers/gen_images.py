"""Stand-in networks with visible images, one image the way NVIDIA's ``gen_images.py`` makes it from them, and the
same image from ours (shared by the StyleGAN2, StyleGAN3 and StyleGAN-XL importer tests)."""

from __future__ import annotations

import numpy as np
import stylegan3_reference as nv
import torch

import polyinr
from polyinr.models.stylegan3 import grid_from_transform


def randomise(G, rgb_gain: float) -> None:
    """Give a fresh stand-in the spread of a trained network: magnitude EMAs, ``w_avg`` and biases away from their
    initial values, and the last layer scaled by ``rgb_gain`` so images have unit scale (1/255 is then strict)."""
    with torch.no_grad():
        for name, value in G.named_buffers():
            if name.endswith("magnitude_ema"):
                value.uniform_(0.3, 3.0)
            elif name == "mapping.w_avg":
                value.normal_()
        for name, value in G.named_parameters():
            if name.endswith(".bias") and ".affine." not in name:
                value.normal_(0, 0.2)
        getattr(G.synthesis, G.synthesis.layer_names[-1]).weight.mul_(rgb_gain)


def their_latents(G, seed, class_idx, label_width=None):
    """``gen_images.py``'s ``z`` (RandomState) and one-hot label (``label_width`` columns, default ``G.c_dim``;
    none when 0)."""
    width = G.c_dim if label_width is None else label_width
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float()
    c = torch.zeros(1, width)
    if width:
        c[:, class_idx] = 1
    return z, c


def their_image(G, seed, class_idx, psi, translate, rotate, label_width=None):
    """``gen_images.py``: :func:`their_latents`, the inverse of ``make_transform`` as the input transform."""
    z, c = their_latents(G, seed, class_idx, label_width)
    G.synthesis.input.transform.copy_(torch.from_numpy(np.linalg.inv(nv.make_transform(translate, rotate))))
    try:
        return G(z, c, truncation_psi=psi)
    finally:
        G.synthesis.input.transform.copy_(torch.eye(3))


def our_image(G, seed, class_idx, psi, translate, rotate):
    """The same seed, class, psi and input transform through our converted generator."""
    z = polyinr.latents_from_seeds([seed], G.z_dim)
    c = torch.tensor([class_idx]) if G.num_classes else None
    grid = grid_from_transform(np.linalg.inv(nv.make_transform(translate, rotate)), G.img_resolution)
    return G(z, c, grid=grid, truncation_psi=psi)


def their_frame_image(G, seed, class_idx, psi, noise_mode="const"):
    """``gen_images.py`` for a generator without an input transform (StyleGAN2): its default noise ``const``."""
    z, c = their_latents(G, seed, class_idx)
    return G(z, c, truncation_psi=psi, noise_mode=noise_mode)
