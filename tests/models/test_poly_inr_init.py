"""The two initialisation schemes of Poly-INR: same maths, different starting points."""

from __future__ import annotations

import pytest
import torch

import polyinr
from polyinr.errors import PolyinrError
from polyinr.models.poly_inr import affine_2d


def _level_rms(G, ws, grid):
    points = grid.coords().view(-1, 2).expand(ws.shape[0], -1, -1)
    x, rms = None, []
    for i, level in enumerate(G.synthesis.levels):
        matrix, shift, weight, bias = level.sample_params(ws[:, i])
        points = affine_2d(points, matrix, shift)
        x = level(x, affine_2d(points, weight, bias))
        rms.append(x.square().mean().sqrt().item())
    return rms


@torch.no_grad()
def test_balanced_init_keeps_unit_scale_and_paints_structure():
    torch.manual_seed(0)
    G = polyinr.create("poly-inr", preset="cpu")
    assert G.cfg.init == "balanced"
    ws = G.mapping(torch.randn(4, G.z_dim), None)
    grid = polyinr.Grid.frame(16)
    rms = _level_rms(G, ws, grid)
    assert all(0.5 < r < 2.0 for r in rms), rms
    image = G.synthesis(ws, grid)
    assert image.std(dim=(2, 3)).mean() > 0.05  # spatial structure from the first step
    for level in G.synthesis.levels:  # grid transforms start at the identity for every w
        matrix, shift, _, _ = level.sample_params(ws[:, 0] if level.style is None else ws[:, 1])
        assert torch.equal(matrix, torch.eye(2).expand_as(matrix)) and torch.equal(shift, torch.zeros_like(shift))


@torch.no_grad()
def test_authors_init_is_pytorch_default_and_starts_flat():
    torch.manual_seed(0)
    G = polyinr.create("poly-inr", preset="imagenet", num_classes=0, channels=64, num_levels=10)
    assert G.cfg.init == "authors"
    ws = G.mapping(torch.randn(4, G.z_dim), None)
    rms = _level_rms(G, ws, polyinr.Grid.frame(8))
    assert rms[-1] < 0.25 * rms[0]  # the released code's init shrinks the features level by level
    bound = G.synthesis.levels[1].grid_matrix.in_features ** -0.5
    assert G.synthesis.levels[1].grid_matrix.weight.abs().max() <= bound  # nn.Linear's default uniform bound


def test_unknown_init_is_a_clear_error():
    with pytest.raises(PolyinrError, match="init"):
        polyinr.create("poly-inr", preset="cpu", init="xavier")
