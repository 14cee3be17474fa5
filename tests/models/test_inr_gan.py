"""INR-GAN: FMM maths, the released embeddings, the grid rule (super-resolution, tiles, sparse grids), presets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from polyinr.grid import Grid
from polyinr.models.inr_gan import PRESETS, FMMLayer, InrGanConfig, InrGanSynthesis, Span, _lattice_points
from polyinr.models.registry import create

pytestmark = pytest.mark.usefixtures("one_thread")


def small(**overrides) -> InrGanSynthesis:
    """The cpu preset's synthesis (32², blocks on 8², 16², 32²; coarsest stride 4), float64 for exact checks."""
    torch.manual_seed(0)
    fields = {k: v for k, v in PRESETS["cpu"].items() if k != "mapping"}
    return InrGanSynthesis(InrGanConfig(**{**fields, **overrides})).double()


def ws_for(S: InrGanSynthesis, n: int = 2) -> torch.Tensor:
    return torch.randn(n, S.num_ws, S.cfg.mapping.w_dim, generator=torch.Generator().manual_seed(1)).double()


@pytest.mark.parametrize("mode", ["demod", "sigmoid"])
def test_fmm_equals_the_dense_maths_it_factorizes(mode):
    torch.manual_seed(0)
    layer = FMMLayer(7, 5, w_dim=6, rank=3, mode=mode, clamp=None).double()
    w, x = torch.randn(2, 6).double(), torch.randn(2, 4, 3, 7).double()
    styles = w @ (layer.affine.weight * layer.affine.weight_gain).T + layer.affine.bias  # [B, (in+out)·r]
    out = layer(x, layer.sample_weight(w))
    for b in range(2):
        A, B = styles[b, : 5 * 3].view(5, 3), styles[b, 5 * 3 :].view(3, 7)
        product = sum(torch.outer(A[:, k], B[k]) for k in range(3))  # rank-3 sum of outer products
        if mode == "demod":
            W = layer.weight * (1 + product / math.sqrt(3))
            W = W / (W.norm(dim=1, keepdim=True) + 1e-8)
        else:
            W = layer.weight / math.sqrt(7) * 2 * torch.sigmoid(product)
        for i in range(4):
            for j in range(3):
                dense = torch.nn.functional.leaky_relu(W @ x[b, i, j] + layer.bias, 0.2) * math.sqrt(2)
                torch.testing.assert_close(out[b, i, j], dense)


def released_embeddings(n: int, diagonal: bool, random_basis: torch.Tensor | None) -> torch.Tensor:
    """``CoordFuser`` at its training grid, as ``training/layers.py`` writes it → ``[n, n, F]`` (sin ‖ cos)."""
    row = (torch.arange(0, n).float() / n) * 2 - 1
    x_coords = row.view(1, -1).repeat(n, 1)
    y_coords = x_coords.t().flip(dims=(0,))
    coords = torch.stack([x_coords, y_coords], dim=2).view(-1, 2).t().view(2, n, n)
    k = int(np.ceil(np.log2(n)))

    def wave(block, period):
        powers = torch.tensor([2]).repeat(k).pow(torch.arange(k)).unsqueeze(1)
        return (torch.tensor([block]).repeat(k, 1) * powers * (2.0 * np.pi / period)).float()

    s = 1.0 / np.sqrt(2)
    bases = [wave([0.0, 1.0], 4.0), wave([1.0, 0.0], 4.0)]
    if diagonal:
        bases += [wave([-s, s], 4.0 * np.sqrt(2)), wave([s, s], 4.0 * np.sqrt(2))]
    if random_basis is not None:
        bases.append(random_basis.float())
    raw = torch.einsum("dc,cxy->dxy", torch.cat(bases), coords)
    return torch.cat([raw.sin(), raw.cos()]).permute(1, 2, 0)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_embeddings_at_the_training_grid_equal_the_released_formulas(mode):
    S = small(upsampling=mode)
    R = S.cfg.img_resolution
    for block, kappa in zip(S.blocks.values(), S.kappa):
        if block.embedding is None:
            continue
        n = block.resolution
        index = _lattice_points(Grid.frame(R), Span(0, n), Span(0, n), kappa) * ((R - 1) / kappa)
        ours = block.embedding(index)
        medium = block.embedding.random_basis is not None
        expected = released_embeddings(n, diagonal=not medium, random_basis=block.embedding.random_basis)
        torch.testing.assert_close(ours, expected, atol=2e-5, rtol=0)


def test_super_resolution_agrees_where_every_block_samples_the_same_points():
    """2× density (2R − 1 pixels over the frame, nearest): pixel (2i, 2j) = native (i, j) when i, j are multiples
    of the coarsest stride R/input_resolution = 4, where every block's lattice point is the native one."""
    S = small()
    ws = ws_for(S)
    R, stride = 32, 4
    native = S(ws)
    sr = S(ws, Grid.window(0, 0, 1, 1, 2 * R - 1, 2 * R - 1))
    torch.testing.assert_close(sr[:, :, :: 2 * stride, :: 2 * stride], native[:, :, ::stride, ::stride])
    off = (sr[:, :, 2:-1:8, 2:-1:8] - native[:, :, 1::4, 1::4]).abs().amax()  # (4k+1): a coarse block moved
    assert off > 1e-3


@pytest.mark.parametrize(
    "overrides", [{}, {"upsampling": "bilinear", "instance_norm": True}, {"const_emb_low": 3, "const_emb_medium": 2}]
)
def test_tiles_of_any_size_reassemble_the_full_render(overrides):
    S = small(**overrides).float()  # bit for bit in the precision models run in
    weights = S.sample_weights(ws_for(S, 1).float())
    cases = [(Grid.frame(32), (5, 7)), (Grid.frame(32), (8, 8)), (Grid.window(-0.5, 0.2, 1.7, 1.1, 41, 23), (6, 5))]
    for grid, (th, tw) in cases:
        full = S.render(weights, grid)
        out = torch.full_like(full, float("nan"))
        for r, c, tile in grid.tiles(th, tw):
            part = S.render(weights, tile)
            out[:, :, r : r + part.shape[2], c : c + part.shape[3]] = part
        assert torch.equal(out, full), (overrides, grid, th, tw)


def test_a_sparser_grid_evaluates_fewer_coordinates_at_every_block():
    S = small()
    native = S.spans(Grid.frame(32))
    low = S.spans(Grid.window(0, 0, 1, 1, 8, 8))
    for (nr, nc), (lr, lc) in zip(native, low):
        assert (lr.stop - lr.start) * 3 <= nr.stop - nr.start and (lc.stop - lc.start) * 3 <= nc.stop - nc.start
    assert S(ws_for(S), Grid.window(0, 0, 1, 1, 8, 8)).shape == (2, 3, 8, 8)


def test_learned_constants_are_used_as_they_are_at_the_native_frame():
    S = small(const_emb_low=3, const_emb_medium=2)
    block = S.blocks["b32"]
    index = _lattice_points(Grid.frame(32), Span(0, 32), Span(0, 32), 1.0) * 31.0
    torch.testing.assert_close(
        block.embedding(index, torch.float64)[..., -2:], block.embedding.const[0].permute(1, 2, 0)
    )


def test_instance_norm_off_the_native_frame_uses_the_native_statistics():
    S = small(upsampling="bilinear", instance_norm=True)
    ws = ws_for(S, 1)
    native = S(ws)
    crop = S(ws, Grid.frame(32).crop((3, 20), (0, 9)))
    assert torch.equal(crop, native[:, :, 3:20, 0:9])


def test_inr_parameters_render_the_same_image_and_interpolate():
    G = create("inr-gan", preset="cpu").double()
    z = torch.randn(2, G.z_dim).double()
    ws = G.mapping(z, None)
    params = G.inr_parameters(ws)
    torch.testing.assert_close(G.synthesize_inr(params), G.synthesis(ws))
    middle = G.synthesize_inr(params.mean(0, keepdim=True))
    assert middle.shape == (1, 3, 32, 32)


def test_the_paper_preset_is_the_released_layout():
    cfg = InrGanConfig(**PRESETS["paper-256"])
    assert cfg.mapping.num_layers == 2 and cfg.mapping.z_dim == 512 and cfg.mapping.lr_multiplier == 0.01
    S = InrGanSynthesis(cfg)
    layout = {name: (b.resolution, b.layers[-1].out_channels, b.num_layers) for name, b in S.blocks.items()}
    assert layout == {
        "b4": (32, 512, 1),
        "b8": (32, 512, 2),
        "b16": (32, 512, 2),
        "b32": (32, 512, 2),
        "b64": (64, 512, 2),
        "b128": (128, 256, 3),
        "b256": (256, 128, 3),
    }
    assert S.num_ws == 16
    first_inputs = [b.layers[0].in_channels for b in S.blocks.values()]
    assert first_inputs == [40, 512, 512, 512, 512 + 48, 512 + 92, 256 + 96]  # without learned constants
    assert 13.5e9 < S.macs_per_image() < 14e9


def test_bad_settings_are_one_line_errors():
    from polyinr.errors import PolyinrError

    with pytest.raises(PolyinrError, match="upsampling"):
        InrGanConfig(upsampling="bicubic")
    with pytest.raises(PolyinrError, match="power-of-2"):
        InrGanConfig(img_resolution=48)
