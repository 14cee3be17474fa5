"""The CUDA paths: skipped without a GPU (tests/conftest.py), run by ``benchmarks/device_check.py``.

bf16 autocast and TF32 stay within their tolerances of float32, torch.compile and channels-last change nothing
beyond float rounding, every registered model renders on CUDA what it renders on the CPU, tiles rendered on
CUDA reassemble the CPU render, and the fused Poly-INR level runs forward and backward.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

import polyinr
from polyinr.discriminators import create_discriminator
from polyinr.grid import Grid
from polyinr.models.poly_inr import fused_supported
from polyinr.models.registry import list_models

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float().cpu() - b.float().cpu()).abs().max() / b.float().cpu().abs().max())


@contextlib.contextmanager
def _tf32(enabled: bool):
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _poly(width: int = 64) -> polyinr.Generator:
    torch.manual_seed(0)
    return polyinr.create("poly-inr", "cpu", channels=width).eval().requires_grad_(False)


def _ws(G, n: int = 4) -> torch.Tensor:
    return G.mapping(torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("name", list_models())
def test_every_model_renders_on_cuda_what_it_renders_on_cpu(name):
    torch.manual_seed(0)
    G = polyinr.create(name, "cpu", num_classes=3).eval().requires_grad_(False)
    z = polyinr.latents_from_seeds([0, 1], G.z_dim)
    c = torch.tensor([0, 2])
    expected = G(z, c)
    with _tf32(False):
        got = G.to(CUDA)(z.to(CUDA), c.to(CUDA))
    assert got.device.type == "cuda"
    assert _relative(got, expected) < 1e-4


def test_tf32_off_is_float32_and_on_stays_within_its_tolerance():
    G = _poly()
    ws = _ws(G)
    expected = G.synthesize(ws)
    G.to(CUDA)
    with _tf32(False):
        exact = G.synthesize(ws.to(CUDA))
    with _tf32(True):
        fast = G.synthesize(ws.to(CUDA))
    assert _relative(exact, expected) < 1e-4
    assert _relative(fast, expected) < 1e-2


def test_bf16_autocast_stays_within_1e_2_of_float32():
    G = _poly().to(CUDA)
    ws = _ws(G.cpu()).to(CUDA)
    G.to(CUDA)
    with _tf32(False):
        expected = G.synthesize(ws)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            got = G.synthesize(ws)
    assert _relative(got, expected) < 2e-2


def test_compiled_synthesis_equals_eager():
    G = _poly().to(CUDA)
    ws = _ws(G.cpu()).to(CUDA)
    G.to(CUDA)
    with _tf32(False):
        expected = G.synthesize(ws)
        got = torch.compile(G.synthesis)(ws, Grid.frame(G.img_resolution))
    assert _relative(got, expected) < 1e-4


def test_channels_last_discriminator_equals_contiguous():
    torch.manual_seed(0)
    D = create_discriminator("residual", 16, 3, channel_base=256, channel_max=32, embed_dim=8).to(CUDA).eval()
    images = torch.randn(4, 3, 16, 16, device=CUDA)
    c = torch.tensor([0, 1, 2, 0], device=CUDA)
    with _tf32(False), torch.no_grad():
        expected = D(images, c)
        got = D.to(memory_format=torch.channels_last)(images.contiguous(memory_format=torch.channels_last), c)
    assert _relative(got, expected) < 1e-4


def test_cuda_tiles_reassemble_the_cpu_render():
    G = _poly()
    ws = _ws(G, 1)
    grid = Grid.window(-0.5, -0.5, 1.5, 1.5, 40, 48)
    expected = G.synthesize(ws, grid)
    G.to(CUDA)
    with _tf32(False):
        rows = [
            torch.cat([G.synthesize(ws.to(CUDA), grid.crop((r, r + 16), (c, c + 16))) for c in range(0, 48, 16)], 3)
            for r in range(0, 40, 16)
        ]
    got = torch.cat(rows, 2)
    assert got.shape == expected.shape
    assert _relative(got, expected) < 1e-4


@pytest.mark.skipif(not (torch.cuda.is_available() and fused_supported(CUDA)), reason="no bf16 GPU with Triton")
def test_fused_level_on_cuda_forward_and_backward():
    G = _poly(width=128)
    ws = _ws(G).to(CUDA)
    G.to(CUDA)
    with _tf32(False):
        expected = G.synthesize(ws)
        got = G.synthesize_fused(ws)
    assert _relative(got, expected) < 1e-2
    G.requires_grad_(True)
    grads = []
    for fused in (False, True):
        G.zero_grad()
        with _tf32(False):
            (G.synthesize_fused if fused else G.synthesize)(ws).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in G.synthesis.parameters()]))
    assert _relative(grads[1], grads[0]) < 5e-2
