"""NVIDIA's StyleGAN2 pickles (StyleGAN2-ADA and StyleGAN3's ``--cfg=stylegan2``): converted without running their
code, then rendering ``gen_images.py``'s images.

The pickles are written here by ``stylegan2_reference`` (NVIDIA's computation, module names and persistent-class
pickling) and read back by our converter; "their image" is the reference module's output.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import stylegan2_reference as nv
import torch
from click.testing import CliRunner
from gen_images import their_frame_image
from PIL import Image

import polyinr
from polyinr.cli import main as cli
from polyinr.image_io import to_uint8
from polyinr.importers import ImporterError
from polyinr.importers.stylegan2 import convert

R = 16


def their_generator(c_dim: int, seed: int = 0, **synthesis_kwargs) -> nv.Generator:
    """A small NVIDIA StyleGAN2 (16², 3 blocks, 4-layer mapping) whose noise, biases and ``w_avg`` all matter."""
    torch.manual_seed(seed)
    G = nv.Generator(
        z_dim=16,
        c_dim=c_dim,
        w_dim=16,
        img_resolution=R,
        img_channels=3,
        channel_base=128,
        channel_max=16,
        mapping_kwargs=dict(num_layers=4),
        **synthesis_kwargs,
    )
    with torch.no_grad():
        G.mapping.w_avg.normal_()
        for name, value in G.named_parameters():
            if name.endswith("noise_strength"):
                value.uniform_(0.1, 0.5)
            elif name.endswith(".bias") and ".affine." not in name:
                value.normal_(0, 0.2)
        G.synthesis.b16.torgb.weight.mul_(4)  # images of unit scale, so 1/255 is strict
    return G.eval().requires_grad_(False)


def write_pickle(G: nv.Generator, path: Path, module: str = nv.STYLEGAN3_REPO) -> Path:
    """Their network pickle: the snapshot dict, persistent classes carrying their source."""
    data = dict(
        G=G,
        D=None,
        G_ema=G,
        augment_pipe=None,
        training_set_kwargs=dict(
            class_name="training.dataset.ImageFolderDataset",
            path="/data/ffhq.zip",
            use_labels=G.c_dim > 0,
            max_size=None,
            xflip=True,
            resolution=R,
        ),
    )
    with nv.nvidia_modules(module), open(path, "wb") as f:
        pickle.dump(data, f)
    return path


@pytest.mark.parametrize("module, c_dim", [(nv.STYLEGAN3_REPO, 0), (nv.STYLEGAN3_REPO, 3), (nv.STYLEGAN2_ADA, 0)])
def test_converted_generator_renders_their_images(tmp_path, module, c_dim):
    theirs = their_generator(c_dim)
    G = convert(write_pickle(theirs, tmp_path / "network.pkl", module)).generator
    assert G.model_name == "stylegan2" and G.num_classes == c_dim and G.img_resolution == R
    assert G.cfg.mapping.num_layers == 4 and G.num_ws == theirs.num_ws == 6
    G.save(tmp_path / "converted")
    G = polyinr.load(tmp_path / "converted")
    cases = [(0, 0, 1.0), (1, c_dim - 1 if c_dim else 0, 0.7), (2, 1 if c_dim else 0, 0.5)]
    with torch.no_grad():
        for seed, class_idx, psi in cases:
            expected = their_frame_image(theirs, seed, class_idx, psi)
            z = polyinr.latents_from_seeds([seed], G.z_dim)
            got = G(z, torch.tensor([class_idx]) if c_dim else None, truncation_psi=psi)
            assert expected.std() > 0.05, "the test image should not be flat"
            assert (got - expected).abs().max() < 1 / 255, (seed, class_idx, psi)
            ws = G.mapping(z, torch.tensor([class_idx]) if c_dim else None, truncation_psi=psi)
            without_noise = their_frame_image(theirs, seed, class_idx, psi, noise_mode="none")
            assert (G.synthesize(ws, noise_mode="none") - without_noise).abs().max() < 1 / 255


def test_recorded_settings_that_disagree_with_the_tensors_are_refused(tmp_path):
    G = their_generator(0)
    G.synthesis._init_kwargs["channel_base"] = 256  # the blocks hold the channels of channel_base 128
    with pytest.raises(ImporterError, match="channel_base 256"):
        convert(write_pickle(G, tmp_path / "channels.pkl"))
    G = their_generator(0)
    G._init_kwargs["w_dim"] = 32
    with pytest.raises(ImporterError, match="G_ema records w_dim = 32 but its tensors hold 16"):
        convert(write_pickle(G, tmp_path / "w_dim.pkl"))
    G = their_generator(0)
    G.mapping._init_kwargs["num_layers"] = 8
    with pytest.raises(ImporterError, match="G_ema records num_layers = 8 but its tensors hold 4"):
        convert(write_pickle(G, tmp_path / "mapping.pkl"))
    G = their_generator(0)
    G.synthesis.b8.conv0.resample_filter.mul_(1.01)
    with pytest.raises(ImporterError, match=r"b8.conv0.resample_filter is not the \[1.0, 3.0, 3.0, 1.0\] filter"):
        convert(write_pickle(G, tmp_path / "filter.pkl"))
    with pytest.raises(ImporterError, match="is 'resnet', not skip") as e:
        convert(write_pickle(their_generator(0, architecture="resnet"), tmp_path / "resnet.pkl"))
    assert "\n" not in str(e.value)
    path = tmp_path / "other.pkl"
    with open(path, "wb") as f:
        pickle.dump(dict(G=1, D=2), f)
    with pytest.raises(ImporterError, match="G_ema"):
        convert(path)


def test_command_line_converts_and_generates_their_images(tmp_path):
    theirs = their_generator(3)
    path = write_pickle(theirs, tmp_path / "network.pkl", nv.STYLEGAN2_ADA)
    runner = CliRunner()
    result = runner.invoke(cli, ["convert", "--from", "stylegan2", str(path), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    args = [
        "generate",
        "--network",
        str(tmp_path / "out"),
        "--seeds",
        "4",
        "--class",
        "2",
        "--trunc",
        "0.7",
        "--outdir",
        str(tmp_path / "img"),
    ]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    ours = np.asarray(Image.open(tmp_path / "img" / "seed0004.png")).astype(int)
    with torch.no_grad():
        expected = to_uint8(their_frame_image(theirs, 4, 2, 0.7))[0].astype(int)
    assert np.abs(ours - expected).max() <= 1  # within 1/255
    result = runner.invoke(
        cli,
        [
            "generate",
            "--network",
            str(tmp_path / "out"),
            "--seeds",
            "0",
            "--class",
            "0",
            "--translate",
            "0.1,0",
            "--outdir",
            str(tmp_path / "img"),
        ],
    )
    assert result.exit_code != 0 and "only its native 16x16 frame" in result.output
