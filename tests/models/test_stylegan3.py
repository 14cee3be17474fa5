"""StyleGAN3: the published layer schedule, firwin filters, grids as the input transform, equivariance."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from torch import nn

from polyinr.grid import Grid
from polyinr.metrics.equivariance import equivariance_psnr
from polyinr.models.generator import GridRefused
from polyinr.models.mapping import MappingConfig, MappingNetwork
from polyinr.models.registry import create, resolve_config
from polyinr.models.stylegan3 import (
    StyleGAN3Config,
    SynthesisInput,
    design_schedule,
    filtered_lrelu,
    grid_from_transform,
    layer_schedule,
    transform_from_grid,
)

# The paper's 256² config T (channel base 32768, max 512): f_c, sampling rate, size, channels per layer 0..14.
PUBLISHED_256_T = dict(
    cutoff=[2, 2.83, 4, 5.66, 8, 11.3, 16, 22.6, 32, 45.3, 64, 90.5, 128, 128, 128],
    sampling_rate=[16, 16, 16, 32, 32, 64, 64, 128, 128, 128, 256, 256, 256, 256, 256],
    size=[36, 36, 36, 52, 52, 84, 84, 148, 148, 148, 276, 276, 276, 256, 256],
    channels=[512, 512, 512, 512, 512, 512, 512, 512, 512, 362, 256, 181, 128, 128, 3],
)


def test_layer_table_equals_the_published_256_t_schedule():
    specs = layer_schedule(StyleGAN3Config(img_resolution=256))
    assert len(specs) == 15
    assert [round(s.out_cutoff, 1) for s in specs] == [round(c, 1) for c in PUBLISHED_256_T["cutoff"]]
    assert [s.out_sampling_rate for s in specs] == PUBLISHED_256_T["sampling_rate"]
    assert [s.out_size for s in specs] == PUBLISHED_256_T["size"]
    assert [s.out_channels for s in specs] == PUBLISHED_256_T["channels"]
    stopbands = 2**2.1 * (128 * 2**0.3 / 2**2.1) ** np.minimum(np.arange(15) / 12, 1)
    for spec, stopband in zip(specs, stopbands):
        assert spec.out_half_width == pytest.approx(max(stopband, spec.out_sampling_rate / 2) - spec.out_cutoff)
    assert [s.name for s in specs[:2]] == ["L0_36_512", "L1_36_512"] and specs[-1].name == "L14_256_3"
    assert [s.is_critically_sampled for s in specs] == [False] * 12 + [True] * 3 and specs[-1].is_torgb
    assert [(s.up_factor, s.down_factor) for s in specs[9:]] == [(2, 2), (4, 2), (2, 2), (2, 2), (2, 2), (1, 1)]
    assert [s.padding for s in (specs[0], specs[10], specs[14])] == [(9, 8), (-6, -9), (0, 0)]


def test_layer_schedule_chains_and_config_r_doubles_channels():
    specs = layer_schedule(resolve_config("stylegan3-r", "paper-256"))
    for prev, spec in itertools.pairwise(specs):
        assert (spec.in_channels, spec.in_size, spec.in_sampling_rate) == (
            prev.out_channels,
            prev.out_size,
            prev.out_sampling_rate,
        )
    assert specs[0].out_channels == 1024 and specs[12].out_channels == 256 and specs[0].kernel == 1
    assert [s.down_radial for s in specs] == [True] * 12 + [False] * 3


def test_filters_equal_scipy_firwin_designs():
    G = create("stylegan3-t", "cpu")
    for layer in G.synthesis.layers():
        s = layer.spec
        fs = max(s.in_sampling_rate, s.out_sampling_rate) * (1 if s.is_torgb else 2)
        if s.is_torgb:
            assert layer.up_filter is None and layer.down_filter is None
            continue
        up = scipy.signal.firwin(
            numtaps=6 * fs // s.in_sampling_rate, cutoff=s.in_cutoff, width=2 * s.in_half_width, fs=fs
        )
        down = scipy.signal.firwin(
            numtaps=6 * fs // s.out_sampling_rate, cutoff=s.out_cutoff, width=2 * s.out_half_width, fs=fs
        )
        assert torch.equal(layer.up_filter, torch.tensor(up, dtype=torch.float32))
        assert torch.equal(layer.down_filter, torch.tensor(down, dtype=torch.float32))


def test_radial_filters_are_symmetric_low_pass_and_sum_to_one():
    G = create("stylegan3-r", "cpu")
    radial = [layer for layer in G.synthesis.layers() if layer.spec.down_radial]
    assert radial and all(layer.down_filter.ndim == 2 for layer in radial)
    for layer in radial:
        f = layer.down_filter.double()
        assert f.sum().item() == pytest.approx(1, abs=1e-6)
        assert torch.allclose(f, f.T) and torch.allclose(f, f.flip(0))
        s = layer.spec
        response = torch.fft.fft2(f, s=(256, 256)).abs()  # frequency k ↔ k / 256 · fs
        fs = 2 * max(s.in_sampling_rate, s.out_sampling_rate)
        k = torch.fft.fftfreq(256, d=1 / fs).abs()
        radius = torch.hypot(k[:, None], k[None, :])
        assert response[radius >= s.out_cutoff + s.out_half_width].max() < 0.05  # stopband
        assert response[radius <= s.out_cutoff / 2].min() > 0.8 and response[0, 0] == pytest.approx(1)  # passband


def _upfirdn_reference(x, f, up, down, pad):
    """Zero insertion, padding, full convolution, subsampling: the textbook definition, 1-D filters."""
    B, C, H, W = x.shape
    if up > 1:
        x = F.pad(x.reshape(B, C, H, 1, W, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(B, C, H * up, W * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    if f is not None:
        K = f.numel()
        x = F.conv2d(x, f.flip(0).view(1, 1, 1, K).repeat(C, 1, 1, 1), groups=C)
        x = F.conv2d(x, f.flip(0).view(1, 1, K, 1).repeat(C, 1, 1, 1), groups=C)
    return x[:, :, ::down, ::down]


@pytest.mark.parametrize("up, down, pad", [(2, 2, (9, 8)), (4, 2, (-6, -9)), (2, 1, (13, 14)), (2, 2, (12, 12))])
def test_polyphase_filtered_lrelu_equals_zero_insertion(up, down, pad):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 20, 20)
    fu, fd = torch.randn(6 * up), torch.randn(6 * down) if down > 1 else None
    expected = _upfirdn_reference(x, fu, up, 1, pad) * up**2
    expected = (F.leaky_relu(expected, 0.2) * math.sqrt(2)).clamp(-2, 2)
    expected = _upfirdn_reference(expected, fd, 1, down, (0, 0))
    got = filtered_lrelu(x, fu, fd, up, down, pad, math.sqrt(2), 0.2, 2.0)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)  # float rounding of other summation orders


# ---------------------------------------------------------------------------- grids


def test_grid_transform_round_trip_and_identity():
    R = 32
    assert torch.equal(transform_from_grid(Grid.frame(R), R), torch.eye(3, dtype=torch.float64))
    grid = Grid.frame(R).translated(0.1, -0.2).rotated(0.3)
    m = transform_from_grid(grid, R)
    back = grid_from_transform(m, R)
    assert back.affine == pytest.approx(grid.affine, abs=1e-12)
    # a whole-pixel translation of the grid is a translation by whole pixels of 1/R in StyleGAN3's units
    m = transform_from_grid(Grid.frame(R).translated(3 / (R - 1), -2 / (R - 1)), R)
    assert m[:2, 2].tolist() == pytest.approx([-2 / R, 3 / R])


@pytest.mark.parametrize(
    "grid",
    [
        Grid.frame(64),  # denser
        Grid.window(-0.5, 0.0, 1.0, 1.0, 32, 32),  # beyond the frame
        next(Grid.frame(32).tiles(16))[2],  # a tile
        Grid.frame(32).scaled(0.5),  # zoom
    ],
)
def test_other_grids_are_refused_in_one_line(grid):
    G = create("stylegan3-t", "cpu")
    ws = G.mapping(torch.randn(1, G.z_dim), None)
    with pytest.raises(GridRefused) as e:
        G.synthesis(ws, grid)
    assert "\n" not in str(e.value) and "32x32" in str(e.value)


def test_whole_pixel_translation_shifts_the_image():
    torch.manual_seed(0)
    G = create("stylegan3-t", "cpu").eval()
    R = G.img_resolution
    ws = G.mapping(torch.randn(2, G.z_dim), None)
    with torch.no_grad():
        base = G.synthesis(ws, Grid.frame(R))
        moved = G.synthesis(ws, Grid.frame(R).translated(-2 / (R - 1), -3 / (R - 1)))  # content moves down 2, right 3
    diff = moved[:, :, 2:, 3:] - base[:, :, :-2, :-3]
    psnr = 20 * math.log10(2) - 10 * math.log10(diff.square().mean().item())
    assert psnr > 80  # exact up to the filters' stopband leakage at the lowest sampling rates


class _AliasingSynthesis(nn.Module):
    """A StyleGAN2-like control: Fourier input on the same transform, then 3×3 convolutions with zero padding,
    pointwise leaky ReLUs and nearest-neighbour 2× upsampling (no anti-aliasing filters)."""

    def __init__(self, w_dim: int, channels: int, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.input = SynthesisInput(w_dim, channels, resolution // 4, resolution // 4, 2.0)
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(4))
        self.to_rgb = nn.Conv2d(channels, 3, 1)

    def forward(self, ws: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        x = self.input(ws[:, 0], transform_from_grid(grid, self.resolution))
        for i, conv in enumerate(self.convs):
            x = F.leaky_relu(conv(x), 0.2) * math.sqrt(2)
            if i in (1, 2):
                x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.to_rgb(x) * 0.25


class _ControlGenerator(nn.Module):
    def __init__(self, resolution: int = 32) -> None:
        super().__init__()
        self.z_dim, self.img_resolution, self.num_classes = 64, resolution, 0
        self.mapping = MappingNetwork(MappingConfig(z_dim=64, w_dim=64), num_ws=2)
        self.synthesis = _AliasingSynthesis(64, 32, resolution)

    def synthesize(self, ws: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        return self.synthesis(ws, grid)

    def uniform_coordinates(self) -> _ControlGenerator:
        return self  # no stored grid: already on uniform coordinates


@pytest.mark.slow
def test_eq_t_of_a_random_stylegan3_t_is_far_above_a_stylegan2_like_control():
    torch.manual_seed(0)
    G = create("stylegan3-t", "cpu").eval().requires_grad_(False)
    control = _ControlGenerator(G.img_resolution).eval().requires_grad_(False)
    ours, theirs = equivariance_psnr(G, "eqt_int", 8), equivariance_psnr(control, "eqt_int", 8)
    print(f"EQ-T: random StyleGAN3-T {ours:.1f} dB, StyleGAN2-like control {theirs:.1f} dB")
    assert ours > 40 and ours > theirs + 15


def test_magnitude_ema_tracks_the_input_power_only_when_asked():
    torch.manual_seed(0)
    G = create("stylegan3-t", "cpu")
    layer = G.synthesis.layers()[0]
    ws = G.mapping(torch.randn(2, G.z_dim), None)
    G.synthesis(ws)
    assert layer.magnitude_ema.item() == 1.0
    x = G.synthesis.input(ws[:, 0], torch.eye(3, dtype=torch.float64))
    G.synthesis(ws, update_emas=True)
    expected = torch.lerp(x.square().mean(), torch.tensor(1.0), G.cfg.magnitude_ema_beta)
    assert layer.magnitude_ema.item() == pytest.approx(expected.item(), rel=1e-5)


def test_schedule_can_continue_from_a_stem_layer():
    # StyleGAN-XL's growth builds layers whose filters continue a stem's: the schedule function takes them.
    stem = design_schedule(16, num_layers=4, channel_base=512, channel_max=32)
    head = design_schedule(
        32,
        num_layers=3,
        first_cutoff=stem[1].out_cutoff,
        first_stopband=stem[1].out_cutoff + stem[1].out_half_width,
        channel_base=512,
        channel_max=32,
    )
    assert head[0].in_cutoff == pytest.approx(stem[1].out_cutoff) and head[-1].out_size == 32
