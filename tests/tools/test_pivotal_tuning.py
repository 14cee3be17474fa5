"""Pivotal tuning (PTI) after inversion: it improves the reconstruction on the Poly-INR CPU preset, leaves the
original generator alone, keeps other latents in place with the locality regulariser, and writes a tuned
checkpoint beside the latent that renders the latent as the target."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import polyinr
from polyinr.cli import main
from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.image_io import to_uint8
from polyinr.models.registry import create
from polyinr.sampling import load_latents
from polyinr.tools.invert import _locality_ws, invert_image, laplacian_l1, pivotal_tuning, project, psnr


@pytest.fixture(scope="module")
def cpu_G():
    torch.manual_seed(0)
    return create("poly-inr", "cpu").eval().requires_grad_(False)


def _target(R: int = 16) -> torch.Tensor:
    """A real-looking picture no generator made: a bright disc on a colour ramp, ``[1, 3, R, R]``."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, R), torch.linspace(-1, 1, R), indexing="ij")
    disc = ((x - 0.2).square() + (y + 0.1).square() < 0.3).float()
    return torch.stack([0.8 * disc - 0.4 + 0.3 * x, 0.5 * y - 0.2, 0.6 * disc - 0.5]).unsqueeze(0)


def test_pti_improves_the_reconstruction_on_the_cpu_preset(cpu_G):
    target = _target(cpu_G.img_resolution)
    pivot = list(project(cpu_G, target, num_steps=30))[-1]
    before = {k: v.clone() for k, v in cpu_G.state_dict().items()}
    G_tuned, steps = pivotal_tuning(cpu_G, pivot.ws, target, num_steps=30)
    states = list(steps)
    assert len(states) == 31 and states[0].psnr == pytest.approx(pivot.psnr, abs=1e-4)
    assert states[-1].psnr > pivot.psnr + 1.0  # dB
    assert all(torch.equal(v, cpu_G.state_dict()[k]) for k, v in before.items())  # the original is untouched
    rendered = G_tuned.synthesize(pivot.ws, Grid.frame(cpu_G.img_resolution))
    assert psnr(rendered, target) == pytest.approx(states[-1].psnr, abs=1e-3)
    assert not any(p.requires_grad for p in G_tuned.parameters())


def test_locality_regulariser_keeps_distant_latents_in_place(cpu_G):
    target = _target(cpu_G.img_resolution)
    pivot = list(project(cpu_G, target, num_steps=10))[-1].ws
    grid = Grid.frame(cpu_G.img_resolution)
    probes = torch.cat([_locality_ws(cpu_G, pivot, torch.Generator().manual_seed(100 + i)) for i in range(4)])
    originals = cpu_G.synthesize(probes, grid)
    drift = {}
    for weight in (0.0, 10.0):
        G_tuned, steps = pivotal_tuning(cpu_G, pivot, target, num_steps=20, locality_weight=weight)
        for _ in steps:
            pass
        drift[weight] = float(laplacian_l1(G_tuned.synthesize(probes, grid), originals).mean())
    assert drift[10.0] < drift[0.0]


def test_invert_with_pti_writes_the_tuned_checkpoint_beside_the_latent(tmp_path, cpu_G):
    image = tmp_path / "real.png"
    Image.fromarray(to_uint8(_target(cpu_G.img_resolution))[0]).save(image)
    steps = []
    result = invert_image(
        cpu_G,
        image,
        tmp_path / "out",
        num_steps=8,
        perceptual="laplacian",
        pti_steps=6,
        on_step=lambda s: steps.append(s.step),
    )
    assert steps == list(range(9)) + list(range(1, 7))
    assert result.tuned_psnr > result.psnr
    summary = json.loads(result.files["summary"].read_text())
    assert summary["pti_steps"] == 6 and summary["pti_psnr_db"] == pytest.approx(result.tuned_psnr)
    tuned = polyinr.load(tmp_path / "out" / "tuned")
    ws = load_latents(result.files["latent"], tuned).ws
    torch.testing.assert_close(ws, result.ws, rtol=0, atol=0)  # the latent is the pivot
    rendered = to_uint8(tuned.synthesize(ws, Grid.frame(cpu_G.img_resolution)))[0]
    np.testing.assert_array_equal(rendered, np.asarray(Image.open(result.files["tuned_reconstruction"])))
    with pytest.raises(PolyinrError, match="at least 1 step"):
        pivotal_tuning(cpu_G, ws, _target(), num_steps=0)
    with pytest.raises(PolyinrError, match="the pivot must be one latent"):
        pivotal_tuning(cpu_G, ws[:, :1], _target())


def test_cli_invert_pti(tmp_path, cpu_G):
    ckpt = cpu_G.save(tmp_path / "ckpt")
    Image.fromarray(to_uint8(_target(cpu_G.img_resolution))[0]).save(tmp_path / "real.png")
    args = [
        "invert",
        "--network",
        str(ckpt),
        "--image",
        str(tmp_path / "real.png"),
        "--steps",
        "4",
        "--perceptual",
        "laplacian",
        "--out",
        str(tmp_path / "inv"),
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(main, [*args, "--pti", "--pti-steps", "3"])
    assert result.exit_code == 0, result.output
    assert "PSNR after pivotal tuning" in result.output and (tmp_path / "inv" / "tuned" / "config.json").is_file()
    result = CliRunner().invoke(main, [*args, "--pti-steps", "3"])
    assert result.exit_code != 0 and "add --pti" in result.output
