"""Texture sticking: the high-pass measure, the experiment over every registered model, and ``polyinr sticking``."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import polyinr
from polyinr.cli import main
from polyinr.models.generator import GridSupport
from polyinr.tools.sticking import (
    detail_ratio,
    high_frequency_energy,
    sticking_sheet,
    texture_sticking,
    walk_offsets,
)


def run(*args, ok: bool = True):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def wave(cycles_per_pixel: float, size: int = 32) -> torch.Tensor:
    """A vertical cosine of the given frequency, ``[1, 3, size, size]``."""
    col = torch.arange(size, dtype=torch.float64)
    return torch.cos(2 * math.pi * cycles_per_pixel * col).expand(1, 3, size, size).float()


def test_high_frequency_energy_counts_only_what_lies_above_half_nyquist():
    flat, slow, fast = wave(0.0), wave(2 / 32), wave(12 / 32)
    assert high_frequency_energy(flat).item() == 0
    assert high_frequency_energy(slow).item() < 1e-3 * high_frequency_energy(fast).item()
    both = high_frequency_energy(torch.cat([slow, fast]))
    assert both.shape == (2,) and both[1] > 0
    energy = high_frequency_energy(fast).item()
    assert detail_ratio(fast[0], energy) == pytest.approx(1.0)  # a detail that never moves survives averaging
    assert detail_ratio(0.5 * fast[0], energy) == pytest.approx(0.25)  # energy is quadratic
    shifted = torch.roll(fast, 1, dims=3)  # half a period at 12/32 cycles/pixel is 4/3 pixels: a 1-pixel shift
    assert detail_ratio(((fast + shifted) / 2)[0], energy) < 0.5  # mostly cancels
    with pytest.raises(polyinr.PolyinrError, match="no detail"):
        detail_ratio(fast[0], 0.0)


def test_the_walk_reaches_its_radius_and_moves_every_ws_index_together():
    spread = torch.ones(3, 4000)
    spread[2] *= 2  # a ws index that varies twice as much walks twice as far
    offsets = walk_offsets(spread, num_frames=64, radius=0.5, generator=torch.Generator().manual_seed(0))
    assert offsets.shape == (64, 3, 4000)
    assert torch.equal(offsets[:, 0], offsets[:, 1]) and torch.allclose(offsets[:, 2], 2 * offsets[:, 0])
    assert offsets[-1, 0].std().item() == pytest.approx(0.5, rel=0.05)
    assert offsets[0, 0].std().item() == pytest.approx(0.5 / 8, rel=0.05)  # one step of 64: radius / √64


@pytest.mark.parametrize("name", polyinr.list_models())
def test_every_registered_model_gives_averages_and_ratios(name):
    torch.manual_seed(0)
    G = polyinr.create(name, "cpu").eval().requires_grad_(False)
    result = texture_sticking(G, [0, 1], num_frames=3)
    R = G.img_resolution
    moves = G.grid_support.kind != "frame" or G.grid_support.motions  # StyleGAN2 renders its native frame only
    assert [r.seed for r in result.seeds] == [0, 1]
    for r in result.seeds:
        assert r.frame.shape == r.walk_average.shape == (3, R, R)
        assert 0 < r.walk_ratio < 1  # energy of a mean ≤ mean of energies
        assert not torch.equal(r.walk_average, r.frame)
        if moves:
            assert r.translation_average.shape == (3, R, R) and 0 < r.translation_ratio < 1
        else:
            assert r.translation_average is None and r.translation_ratio is None
    assert result.walk_ratio == pytest.approx(np.mean([r.walk_ratio for r in result.seeds]))
    assert (result.translation_refusal is None) == moves
    assert sticking_sheet(result).shape == (2 * R, (3 if moves else 2) * R, 3)
    alone = texture_sticking(G, [1], num_frames=3).seeds[0]  # a seed's walk and shifts are its own
    torch.testing.assert_close(alone.walk_average, result.seeds[1].walk_average)  # up to batched float sums
    if moves:
        torch.testing.assert_close(alone.translation_average, result.seeds[1].translation_average)


class NoTranslations(GridSupport):
    def refusal(self, G, grid):
        return None if grid == G.native_grid() else "only its native frame"


def test_a_model_that_cannot_translate_gets_the_walk_alone(tiny_G):
    G = tiny_G
    G.grid_support = NoTranslations(**dataclasses.asdict(tiny_G.grid_support))
    try:
        result = texture_sticking(G, [0], num_frames=2)
    finally:
        del G.grid_support
    assert result.translation_ratio is None and result.seeds[0].translation_average is None
    assert result.translation_refusal == "only its native frame"
    assert sticking_sheet(result).shape == (16, 32, 3)


def test_the_walk_grows_with_its_radius(tiny_G):
    near, far = (texture_sticking(tiny_G, [4], num_frames=8, radius=r).seeds[0] for r in (1e-4, 2.0))
    assert near.walk_ratio == pytest.approx(1.0, abs=1e-2)
    assert far.walk_ratio < near.walk_ratio


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seeds": []}, "at least one seed"),
        ({"num_frames": 1}, "at least 2 frames"),
        ({"radius": float("nan")}, "radius"),
        ({"max_shift": 0.0}, "translation"),
    ],
)
def test_bad_settings_are_one_line_errors(tiny_G, kwargs, message):
    with pytest.raises(polyinr.PolyinrError, match=message):
        texture_sticking(tiny_G, **{"seeds": [0], **kwargs})


def test_cli_writes_the_sheet_and_prints_the_ratios(tiny_ckpt, tmp_path):
    result = run("sticking", "--network", tiny_ckpt, "--seeds", "0-1", "--frames", "3", "--out", tmp_path / "s")
    sheet = np.asarray(Image.open(tmp_path / "s" / "sticking.png"))
    assert sheet.shape == (2 * 16, 3 * 16, 3)
    lines = result.output.splitlines()
    assert any(line.startswith("  seed 1: latent walk ") and ", translation " in line for line in lines)
    assert any(line.startswith("  mean over 2 seeds: latent walk ") for line in lines)


def test_cli_bad_inputs_fail_in_one_line_before_any_work(tiny_ckpt, cond_ckpt, tmp_path):
    (tmp_path / "file").write_text("")
    cases = [
        (["--network", tiny_ckpt, "--seed", "0", "--class", "1"], "unconditional"),
        (["--network", cond_ckpt, "--seed", "0"], "class-conditional"),
        (["--network", cond_ckpt, "--seed", "0", "--class", "7"], "unknown class 7"),
        (["--network", tiny_ckpt, "--seed", "0", "--frames", "1"], "--frames"),
    ]
    for args, message in cases:
        result = run("sticking", *args, "--out", tmp_path / "out", ok=False)
        assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    result = run("sticking", "--network", tiny_ckpt, "--seed", "0", "--out", tmp_path / "file", ok=False)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_walk_too_long_for_memory_is_refused_before_any_work(tiny_G):
    with pytest.raises(polyinr.PolyinrError, match="use fewer frames"):
        texture_sticking(tiny_G, [0], num_frames=10**12)


def test_cli_keeps_an_existing_sheet_unless_forced(tiny_ckpt, tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "sticking.png").write_bytes(b"mine")
    result = run("sticking", "--network", tiny_ckpt, "--seed", "0", "--frames", "2", "--out", out, ok=False)
    assert result.exit_code == 1 and "sticking.png" in result.output and "--force" in result.output
    assert (out / "sticking.png").read_bytes() == b"mine"
    run("sticking", "--network", tiny_ckpt, "--seed", "0", "--frames", "2", "--out", out, "--force")
    assert Image.open(out / "sticking.png").size == (3 * 16, 16)
