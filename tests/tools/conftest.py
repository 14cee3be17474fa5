"""Tiny Poly-INR generators for the tools tests, with images that actually vary.

A fresh Poly-INR paints nearly flat images: each level's random 2×2 grid transform shrinks the coordinate
frame, so after a few levels every pixel sees almost the same coordinates. The fixtures start the transforms
near the identity (level 0 near 6× the identity, so the frame spans several units), rescale the RGB readout to
a typical contrast (standard deviation within an image) of 0.3 around grey, and set ``w_avg`` to the mean
mapped ``w`` as training would, so the tests (inversion PSNR above all) measure something.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tiny_poly_inr import tiny_poly_inr

TINY = dict(channels=32, num_levels=4, z_dim=16, w_dim=64, embed_dim=8, img_resolution=16)


def make_tiny(num_classes: int = 0, seed: int = 0):
    """A tiny Poly-INR (4 levels, n = 32, 16²) with varied images and a trained-looking ``w_avg``."""
    G = tiny_poly_inr(seed, spread=True, **TINY, num_classes=num_classes)
    with torch.no_grad():
        for c in range(max(num_classes, 1)):
            labels = torch.full((512,), c) if num_classes else None
            G.mapping.w_avg[c] = G.mapping(torch.randn(512, G.z_dim), labels)[:, 0].mean(dim=0)
        to_rgb = G.synthesis.to_rgb
        to_rgb.bias.zero_()
        mixed = torch.arange(64) % num_classes if num_classes else None
        images = G.synthesis(G.mapping(torch.randn(64, G.z_dim), mixed))  # [64, 3, 16, 16]
        gain = 0.3 / images.std(dim=(2, 3)).median()  # typical contrast within an image → 0.3
        to_rgb.weight.mul_(gain)
        to_rgb.bias.copy_(-gain * images.mean(dim=(2, 3)).median(dim=0).values)  # [3] typical colour → grey
    return G


@pytest.fixture(scope="session")
def tiny_G():
    return make_tiny()


@pytest.fixture(scope="session")
def cond_G():
    return make_tiny(num_classes=3, seed=1)


@pytest.fixture(scope="session")
def digits_G():
    """A tiny class-conditional Poly-INR with the ten classes of the built-in digits."""
    return make_tiny(num_classes=10)


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory, tiny_G) -> Path:
    return tiny_G.save(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="session")
def cond_ckpt(tmp_path_factory, cond_G) -> Path:
    return cond_G.save(tmp_path_factory.mktemp("ckpt") / "cond")


@pytest.fixture(autouse=True)
def _tiny_networks_on_one_thread(one_thread):
    """Every test here runs its tiny networks on one thread (``one_thread``, tests/conftest.py)."""
