"""The tests' one factory of tiny randomly initialised Poly-INR generators (:func:`tiny_poly_inr`).

``tests/conftest.py`` builds its fixtures (``G``, ``G_cond``, ``make_generator``) with it, and the tools and
viewer fixtures theirs, with their own sizes and ``spread`` grids.
"""

from __future__ import annotations

from typing import Any

import torch

from polyinr.models.poly_inr import PolyINRGenerator
from polyinr.models.registry import create

SIZES = dict(channels=32, num_levels=4, z_dim=8, w_dim=16, embed_dim=8, img_resolution=8)


def tiny_poly_inr(seed: int = 0, spread: bool = False, **overrides: Any) -> PolyINRGenerator:
    """A small Poly-INR (:data:`SIZES`: n 32, 4 levels, 8² native) in eval mode, gradients off, its weights
    drawn after ``torch.manual_seed(seed)``; ``overrides`` go to the config.

    ``spread``: a fresh Poly-INR paints nearly flat images (each level's random grid transform shrinks the
    coordinate frame); start the transforms near the identity instead, level 0's near 6× the identity, so its
    frame spans several units and the images vary across the plane.
    """
    torch.manual_seed(seed)
    G = create("poly-inr", **{**SIZES, **overrides}).eval().requires_grad_(False)
    if spread:
        with torch.no_grad():
            for i, level in enumerate(G.synthesis.levels):
                level.grid_matrix.weight.mul_(0.1)
                level.grid_matrix.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]) * (6.0 if i == 0 else 1.0))
    return G
