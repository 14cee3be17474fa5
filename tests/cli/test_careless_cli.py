"""The command line under careless input: sizes that cannot fit, non-finite values, NaN weights, bad names.

Each case is one line and a non-zero exit, before any work where the input alone shows the problem."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import polyinr
from polyinr.cli import main
from polyinr.sampling import iter_ws, parse_range_list


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    torch.manual_seed(0)
    return str(polyinr.create("poly-inr", "cpu").save(tmp_path_factory.mktemp("net") / "G"))


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    lines = [line for line in result.output.strip().splitlines() if line.startswith("Error")]
    assert "Traceback" not in result.output
    return result.exit_code, lines[-1] if lines else result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "--seeds", "0", "--resolution", "100000", "--outdir", "{tmp}"], "use polyinr render"),
        (["generate", "--seeds", "0", "--grid", "100000x100000", "--outdir", "{tmp}"], "a smaller --grid"),
        (["render", "--seed", "0", "--size", "300000x300000", "--out", "{tmp}/big.jpg"], "write a .png"),
        (["render", "--seed", "0", "--size", "16", "--tile", "8", "--out", "{tmp}/a.xyz"], "cannot write .xyz"),
        (["generate", "--seeds", "4294967296", "--outdir", "{tmp}"], "at most 4,294,967,295"),
        (["generate", "--seeds", "0", "--trunc", "nan", "--outdir", "{tmp}"], "finite number"),
        (["render", "--seed", "0", "--trunc", "inf", "--size", "8", "--out", "{tmp}/x.png"], "finite number"),
        (
            ["render", "--seed", "0", "--window", "-1e308,-1e308,1e308,1e308", "--size", "8", "--out", "{tmp}/x.png"],
            "non-finite",
        ),
    ],
    ids=["resolution", "grid", "jpeg-poster", "extension", "seed-range", "trunc-nan", "trunc-inf", "window-1e308"],
)
def test_one_line_and_nothing_written(network, tmp_path, args, message):
    code, line = run(*[a.format(tmp=tmp_path) for a in args], "--network", network)
    assert code != 0 and message in line
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_nan_weights_are_an_error_not_a_black_picture(tmp_path):
    G = polyinr.create("poly-inr", "cpu")
    with torch.no_grad():
        G.synthesis.to_rgb.bias.fill_(float("nan"))
    path = G.save(tmp_path / "nan")
    code, line = run("generate", "--network", path, "--seeds", "0-1", "--outdir", tmp_path / "out")
    assert code == 1 and "non-finite pixel values" in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_millions_of_seeds_stream(network):
    G = polyinr.load(network)
    first = next(iter_ws(G, parse_range_list("0-10000000"), batch_size=2))
    assert first.shape == (2, G.num_ws, G.w_dim)
