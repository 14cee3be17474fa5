"""The fused Poly-INR level (bf16 GEMM, float32 prologue / epilogue): same maths as the float32 path.

On CPU the compiled kernel is not used (``synthesize_fused`` falls back to the float32 path, bit for bit); the fused
function itself is checked here eagerly, forward and backward. The compiled kernel on CUDA is checked by the
``cuda``-marked tests in tests/test_cuda_paths.py.
"""

from __future__ import annotations

import torch

from polyinr.grid import Grid
from polyinr.models.poly_inr import fused_level, fused_supported


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


def test_fused_flag_falls_back_to_the_float32_path_on_cpu(G, ws):
    assert not fused_supported(torch.device("cpu"))
    grid = Grid.frame(8)
    assert torch.equal(G.synthesize_fused(ws, grid), G.synthesize(ws, grid))


def test_fused_level_matches_the_float32_levels_within_bf16_tolerance(G, ws):
    synthesis = G.synthesis
    points = Grid.frame(8).coords().view(-1, 2)  # [64, 2]
    params = [level.sample_params(ws[:, i]) for i, level in enumerate(synthesis.levels)]
    with torch.no_grad():
        expected = synthesis._render_points(params, points, inplace=False)  # [B, P, C]
        got = synthesis._render_fused(params, points, level=fused_level)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert _relative(got, expected) < 2e-2


def test_fused_level_gradients_match_the_float32_levels(make_generator):
    G = make_generator(seed=2).requires_grad_(True)
    synthesis = G.synthesis
    ws = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(1))).detach()
    points = Grid.frame(8).coords().view(-1, 2)
    grads = []
    for fused in (False, True):
        synthesis.zero_grad()
        params = [level.sample_params(ws[:, i]) for i, level in enumerate(synthesis.levels)]
        if fused:
            out = synthesis._render_fused(params, points, level=fused_level)
        else:
            out = synthesis._render_points(params, points, inplace=False)
        out.square().mean().backward()
        grads.append({name: p.grad.clone() for name, p in synthesis.named_parameters()})
    for name, expected in grads[0].items():
        assert _relative(grads[1][name], expected) < 5e-2, name
