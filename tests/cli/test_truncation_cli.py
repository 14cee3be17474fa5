"""Every command that takes --trunc also takes --trunc-cutoff N: truncate only the first N ws."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import polyinr
from polyinr.cli import main
from polyinr.grid import Grid
from polyinr.sampling import latents_from_seeds
from polyinr.tools.render import render_ws


def test_every_command_with_trunc_takes_trunc_cutoff():
    with_trunc = {name for name, cmd in main.commands.items() if any(p.name == "truncation_psi" for p in cmd.params)}
    assert {"generate", "render", "video", "mix", "heatmap"} <= with_trunc
    for name in with_trunc:
        assert any(p.opts == ["--trunc-cutoff"] for p in main.commands[name].params), name


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    G = polyinr.create("poly-inr", preset="cpu", channels=16, num_levels=4, img_resolution=8)
    with torch.no_grad():
        G.mapping.w_avg.normal_()  # truncation towards a w_avg far from the samples' ws: visible in the image
    return G.save(tmp_path_factory.mktemp("ckpt") / "G"), G.eval()


def test_generate_truncates_only_the_first_n_ws(ckpt, tmp_path):
    path, G = ckpt
    images = {}
    for name, extra in {"cut2": ["--trunc-cutoff", "2"], "all": []}.items():
        out = tmp_path / name
        result = CliRunner().invoke(
            main,
            [
                "generate",
                "--network",
                str(path),
                "--seeds",
                "5",
                "--trunc",
                "0",
                *extra,
                "--outdir",
                str(out),
                "--device",
                "cpu",
            ],
        )
        assert result.exit_code == 0, result.output
        images[name] = np.asarray(Image.open(out / "seed0005.png"))
    with torch.no_grad():
        ws = G.mapping(latents_from_seeds([5], G.z_dim), None)
        ws[:, :2] = G.mapping.w_avg[0]  # psi 0 on the first two ws only
        expected = next(render_ws(G, ws, Grid.frame(8)))
    assert np.array_equal(images["cut2"], expected)
    assert not np.array_equal(images["cut2"], images["all"])
