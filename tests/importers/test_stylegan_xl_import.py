"""The StyleGAN-XL authors' pickles (a stem, a network grown twice): converted without running their code, then
rendering their images; code in a pickle is never run and a pickle that calls something dangerous is refused."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import dill
import numpy as np
import pytest
import stylegan3_reference as nv
import stylegan_xl_reference as xl
import torch
from click.testing import CliRunner
from gen_images import our_image, randomise, their_image

import polyinr
from polyinr.cli import main as cli
from polyinr.importers import ImporterError, UnsafePickleError
from polyinr.importers.stylegan_xl import convert


def their_stem(c_dim: int, seed: int = 0) -> xl.Generator:
    """A small stem (16², 4 layers) with every buffer and bias made to matter."""
    torch.manual_seed(seed)
    G = xl.Generator(
        z_dim=16,
        c_dim=c_dim,
        w_dim=16,
        img_resolution=16,
        img_channels=3,
        channel_base=256,
        channel_max=16,
        num_layers=4,
        mapping_kwargs=dict(num_layers=2),
    )
    randomise(G, rgb_gain=4)
    return G.eval().requires_grad_(False)


def their_grown(c_dim: int) -> xl.SuperresGenerator:
    """The stem grown 16 → 32 → 64 with heads of 4, as two runs of their superres stage would."""
    stage1 = xl.SuperresGenerator(their_stem(c_dim), head_layers=4, up_factor=2)
    G = xl.SuperresGenerator(stage1, head_layers=4, up_factor=2)
    torch.manual_seed(1)
    randomise(G, rgb_gain=4)
    return G.eval().requires_grad_(False)


def write_pickle(G, path: Path, **extra) -> Path:
    """Their snapshot: a dill pickle of the dict, persistent classes carrying their source."""
    data = dict(
        G=G,
        D=xl.ProjectedDiscriminator(),
        G_ema=G,
        augment_pipe=None,
        training_set_kwargs=dict(path="/data/imagenet16.zip", use_labels=G.c_dim > 0),
        progress=dict(cur_nimg=np.int64(1000), best_fid=9.9),
        **extra,
    )
    with nv.nvidia_modules(), open(path, "wb") as f:
        dill.dump(data, f)
    return path


@pytest.mark.parametrize("grown, c_dim", [(False, 3), (True, 0), (True, 3)])
def test_converted_generator_renders_their_images(tmp_path, grown, c_dim):
    theirs = their_grown(c_dim) if grown else their_stem(c_dim)
    result = convert(write_pickle(theirs, tmp_path / "network-snapshot.pkl"))
    G = result.generator
    assert G.model_name == "stylegan-xl" and G.num_classes == c_dim and G.img_resolution == theirs.img_resolution
    assert G.cfg.up_factors == ((2, 2) if grown else ()) and G.cfg.stem_resolution == 16
    assert G.synthesis.layer_names == theirs.synthesis.layer_names
    assert any("dropped the unused class table" in line for line in result.lines) == (c_dim == 0)
    G.save(tmp_path / "converted")
    G = polyinr.load(tmp_path / "converted")
    cases = [
        (0, 0, 1.0, (0.0, 0.0), 0.0),
        (1, c_dim - 1 if c_dim else 0, 0.7, (0.1, -0.05), 0.0),
        (2, 1 if c_dim else 0, 0.5, (-0.03, 0.12), 25.0),
    ]
    with torch.no_grad():
        for case in cases:
            expected, got = their_image(theirs, *case, label_width=max(theirs.c_dim, 1)), our_image(G, *case)
            assert expected.std() > 0.02, "the test image should not be flat"
            assert (got - expected).abs().max() < 1 / 255, case


def test_cli_converts_and_code_in_the_pickle_is_never_run(tmp_path):
    marker = tmp_path / "module_src_was_run"
    nv.PersistentModule.module_src = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
    try:
        path = write_pickle(their_grown(0), tmp_path / "best_model.pkl")
    finally:
        nv.PersistentModule.module_src = nv.MODULE_SRC
    result = CliRunner().invoke(cli, ["convert", "--from", "stylegan-xl", str(path), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "grown 16 → 64 by [2, 2]" in result.output and not marker.exists()
    assert polyinr.load(tmp_path / "out").img_resolution == 64


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = write_pickle(their_stem(0), tmp_path / "evil.pkl", extra=_Exploit(marker))
    with pytest.raises(UnsafePickleError, match=r"(os|posix)\.system"):
        convert(path)
    assert not marker.exists()


def test_other_pickles_are_refused_in_one_line(tmp_path):
    path = tmp_path / "other.pkl"
    with open(path, "wb") as f:
        pickle.dump(dict(weights=torch.zeros(3)), f)
    with pytest.raises(ImporterError, match="expected a dict with G_ema"):
        convert(path)


@pytest.mark.parametrize("grown", [False, True])
def test_recorded_layer_counts_beyond_the_tensors_are_refused_before_any_schedule(tmp_path, grown):
    G = their_grown(0) if grown else their_stem(0)
    G.synthesis._init_kwargs["num_layers"] = 5_000_000  # read naively: a 5M-layer schedule before any refusal
    with pytest.raises(ImporterError, match=r"records num_layers = 5,000,000, but its tensors hold \d+ synthesis"):
        convert(write_pickle(G, tmp_path / "network-snapshot.pkl"))


def test_a_recorded_filter_size_beyond_the_pickles_filters_is_refused_before_building(tmp_path):
    G = their_stem(0)
    G.synthesis._init_kwargs["filter_size"] = 60_000  # filters of 120,000 taps and more, were the network built
    with pytest.raises(ImporterError, match=r"up_filter has shape \(\d+,\), but the settings it records design"):
        convert(write_pickle(G, tmp_path / "network-snapshot.pkl"))
