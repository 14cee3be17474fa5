"""NVIDIA's StyleGAN3 pickles: converted without running their code, then rendering their images.

The pickles are written here by ``stylegan3_reference`` (NVIDIA's computation, module names and persistent-class
pickling) and read back by our converter; "their image" is the reference module's output.
"""

from __future__ import annotations

import math
import os
import pickle
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import stylegan3_reference as nv
import torch
from click.testing import CliRunner
from gen_images import our_image, randomise, their_image
from PIL import Image

import polyinr
from polyinr.cli import main as cli
from polyinr.image_io import to_uint8
from polyinr.importers import ImporterError, UnsafePickleError
from polyinr.importers.stylegan3 import convert

R = 16


class AugmentPipe(nv.PersistentModule):
    """Stands in for ``training.augment.AugmentPipe`` (its probability buffer ``p``)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("p", torch.tensor(0.25))


class Discriminator(nv.PersistentModule):
    """Stands in for ``training.networks_stylegan2.Discriminator``."""

    def __init__(self) -> None:
        super().__init__()
        self.b16 = nv.FullyConnectedLayer(4, 1)


AugmentPipe.__module__, Discriminator.__module__ = "training.augment", "training.networks_stylegan2"
nv.NVIDIA_MODULES["training.augment"] = dict(AugmentPipe=AugmentPipe)
nv.NVIDIA_MODULES["training.networks_stylegan2"] = dict(Discriminator=Discriminator)


def their_generator(config: str, c_dim: int, seed: int = 0) -> nv.Generator:
    """A small NVIDIA generator (16², 4 layers) with every buffer and bias made to matter."""
    torch.manual_seed(seed)
    extra = dict(conv_kernel=1, use_radial_filters=True) if config == "r" else {}
    G = nv.Generator(
        z_dim=16,
        c_dim=c_dim,
        w_dim=16,
        img_resolution=R,
        img_channels=3,
        channel_base=256,
        channel_max=16,
        num_layers=4,
        magnitude_ema_beta=0.995,
        mapping_kwargs=dict(num_layers=2),
        **extra,
    )
    randomise(G, rgb_gain=8)
    return G.eval().requires_grad_(False)


def write_pickle(G: nv.Generator, path: Path, module_src: str = nv.MODULE_SRC) -> Path:
    """Their network pickle: ``pickle.dump`` of the snapshot dict, persistent classes carrying their source."""
    data = dict(
        G=G,
        D=Discriminator(),
        G_ema=G,
        augment_pipe=AugmentPipe(),
        training_set_kwargs=dict(
            class_name="training.dataset.ImageFolderDataset",
            path="/data/afhq.zip",
            use_labels=G.c_dim > 0,
            max_size=None,
            xflip=True,
            resolution=R,
        ),
    )
    nv.PersistentModule.module_src = module_src
    try:
        with nv.nvidia_modules(), open(path, "wb") as f:
            pickle.dump(data, f)
    finally:
        nv.PersistentModule.module_src = nv.MODULE_SRC
    return path


@pytest.mark.parametrize("config, c_dim", [("t", 0), ("t", 3), ("r", 0), ("r", 3)])
def test_converted_generator_renders_their_images(tmp_path, config, c_dim):
    theirs = their_generator(config, c_dim)
    path = write_pickle(theirs, tmp_path / "network.pkl")
    G = convert(path).generator
    assert G.model_name == f"stylegan3-{config}" and G.num_classes == c_dim and G.img_resolution == R
    G.save(tmp_path / "converted")
    G = polyinr.load(tmp_path / "converted")
    cases = [
        (0, 0, 1.0, (0.0, 0.0), 0.0),
        (1, c_dim - 1 if c_dim else 0, 0.7, (0.1, -0.05), 0.0),
        (2, 1 if c_dim else 0, 0.5, (-0.03, 0.12), 25.0),
        (3, 0, 1.0, (0.0, 0.0), -90.0),
    ]
    with torch.no_grad():
        for case in cases:
            expected, got = their_image(theirs, *case), our_image(G, *case)
            assert expected.std() > 0.05, "the test image should not be flat"
            assert (got - expected).abs().max() < 1 / 255, case


def test_code_in_the_pickle_is_never_run(tmp_path):
    marker = tmp_path / "module_src_was_run"
    src = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
    G = convert(write_pickle(their_generator("t", 0), tmp_path / "network.pkl", module_src=src)).generator
    assert G.model_name == "stylegan3-t" and not marker.exists()


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    with nv.nvidia_modules(), open(path, "wb") as f:
        pickle.dump(dict(G_ema=their_generator("t", 0), augment_pipe=_Exploit(marker)), f)
    with pytest.raises(UnsafePickleError, match="nothing from it was run") as e:
        convert(path)
    assert "\n" not in str(e.value) and not marker.exists()


def test_a_tampered_filter_or_another_network_is_refused(tmp_path):
    G = their_generator("t", 0)
    layer = getattr(G.synthesis, G.synthesis.layer_names[1])
    layer.down_filter.mul_(1.01)
    with pytest.raises(ImporterError, match="down_filter differs"):
        convert(write_pickle(G, tmp_path / "tampered.pkl"))
    path = tmp_path / "other.pkl"
    with open(path, "wb") as f:
        pickle.dump(dict(G=1, D=2), f)
    with pytest.raises(ImporterError, match="G_ema"):
        convert(path)


def test_command_line_converts_and_generates_their_images(tmp_path):
    theirs = their_generator("r", 3)
    path = write_pickle(theirs, tmp_path / "network.pkl")
    runner = CliRunner()
    result = runner.invoke(cli, ["convert", "--from", "stylegan3", str(path), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    G = polyinr.load(tmp_path / "out")
    assert G.model_name == "stylegan3-r" and G.num_classes == 3 and math.isclose(G.cfg.magnitude_ema_beta, 0.995)
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
        "--translate",
        "0.1,-0.05",
        "--rotate",
        "25",
        "--outdir",
        str(tmp_path / "img"),
    ]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    ours = np.asarray(Image.open(tmp_path / "img" / "seed0004.png")).astype(int)
    with torch.no_grad():
        expected = to_uint8(their_image(theirs, 4, 2, 0.7, (0.1, -0.05), 25.0))[0].astype(int)
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
            "--resolution",
            "32",
            "--outdir",
            str(tmp_path / "img"),
        ],
    )
    assert result.exit_code != 0 and "Error:" in result.output and "16x16 frame" in result.output


class _Regrown:
    """Pickles as a one-element tensor whose ``BUILD`` state regrows it to ``shape`` (``set_`` with stride 1):
    read naively, the storage grows while the file is read and the weight holds uninitialised memory."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        with warnings.catch_warnings():  # TypedStorage is deprecated, and still how pickles hold storages
            warnings.simplefilter("ignore", UserWarning)
            self.storage = torch.ones(1).storage()
        self.shape = shape

    def __reduce__(self):
        stride = tuple(math.prod(self.shape[i + 1 :]) for i in range(len(self.shape)))
        args = (self.storage, 0, (1,), (1,), False, OrderedDict())
        return torch._utils._rebuild_tensor_v2, args, (self.storage, 0, self.shape, stride)


def test_command_line_refuses_a_weight_regrown_by_the_pickle_in_one_line(tmp_path):
    G = their_generator("t", 0)
    fc0 = G.mapping.fc0
    fc0._parameters["weight"] = _Regrown(tuple(fc0.weight.shape))  # the converter would otherwise accept it
    path = write_pickle(G, tmp_path / "network.pkl")
    result = CliRunner().invoke(cli, ["convert", "--from", "stylegan3", str(path), str(tmp_path / "out")])
    assert result.exit_code == 1 and "tries to modify a Tensor" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_recorded_filter_size_beyond_the_pickles_filters_is_refused_before_building(tmp_path):
    G = their_generator("t", 0)
    G.synthesis._init_kwargs["filter_size"] = 60_000  # filters of 120,000 taps and more, were the network built
    with pytest.raises(ImporterError, match=r"up_filter has shape \(\d+,\), but the settings it records design"):
        convert(write_pickle(G, tmp_path / "network.pkl"))
