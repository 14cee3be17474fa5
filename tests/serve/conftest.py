"""Tiny Poly-INR checkpoints for the viewer tests, with pictures that vary across the plane."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tiny_poly_inr import tiny_poly_inr

TINY = dict(channels=16, num_levels=3, z_dim=8, w_dim=16, embed_dim=8, img_resolution=16)


def make_tiny(num_classes: int = 0, seed: int = 0):
    """A tiny Poly-INR whose level-0 grid spans several units, so tiles show structure, not a flat colour."""
    G = tiny_poly_inr(seed, spread=True, **TINY, num_classes=num_classes)
    with torch.no_grad():
        G.synthesis.to_rgb.weight.mul_(0.5)
        G.synthesis.to_rgb.bias.zero_()
    return G


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    return make_tiny().save(tmp_path_factory.mktemp("serve") / "tiny")


@pytest.fixture(scope="session")
def cond_ckpt(tmp_path_factory) -> Path:
    return make_tiny(num_classes=3, seed=1).save(tmp_path_factory.mktemp("serve") / "cond")


@pytest.fixture(autouse=True)
def _tiny_networks_on_one_thread(one_thread):
    """Every test here runs its tiny networks on one thread (``one_thread``, tests/conftest.py)."""
