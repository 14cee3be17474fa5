"""Converting the Poly-INR authors' snapshots: same images as their network, loud errors, the CLI."""

from __future__ import annotations

import json
import os
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from polyinr.checkpoint import load_generator
from polyinr.cli import main
from polyinr.grid import Grid
from polyinr.importers import (
    ImporterError,
    StandIn,
    UnsafePickleError,
    convert_checkpoint,
    poly_inr_from_snapshot,
    restricted_load,
)

SOURCE = "poly-inr"


def _reference(G, z, classes, psi):
    """The stand-in of the authors' network: one-hot labels, as their training loop passes them."""
    c = F.one_hot(classes, G.c_dim).float() if G.c_dim else None
    return G(z, c, truncation_psi=psi)


def _walk(obj, seen=None):
    """Every object reachable from a loaded snapshot (containers and stand-in records)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    yield obj
    children = []
    if isinstance(obj, dict):
        children = [*obj.keys(), *obj.values()]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = list(obj)
    elif isinstance(obj, StandIn):
        children = [obj.args, obj.kwargs, obj.state, obj.items, obj.elements]
    for child in children:
        yield from _walk(child, seen)


@pytest.mark.parametrize("c_dim", [0, 5])
def test_converted_generator_matches_the_authors_forward(authors, tmp_path, c_dim):
    G_ref = authors.generator(c_dim)
    path = authors.write(authors.snapshot(G_ref))
    conversion = convert_checkpoint(SOURCE, path, tmp_path / "converted")
    G = load_generator(conversion.output)
    assert (G.num_classes, G.img_resolution, G.cfg.channels, G.num_ws, G.z_dim) == (c_dim, 8, 32, 10, 16)
    worst = 0.0
    for seed in range(3):
        z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(seed))
        classes = torch.tensor([0, 4, 2, 4]) if c_dim else torch.zeros(4, dtype=torch.long)
        for psi in (1.0, 0.7):
            expected = _reference(G_ref, z, classes, psi)
            with torch.no_grad():
                got = G(z, classes if c_dim else None, truncation_psi=psi)
            assert got.shape == expected.shape == (4, 3, 8, 8)
            assert expected.std() > 0.1  # images of real contrast, so the tolerance below is strict
            worst = max(worst, float((got - expected).abs().max()))
    assert worst < 1 / 255, f"max |ours - theirs| = {worst:.3g}"
    assert worst < 1e-4  # float32 rounding only
    assert not authors.marker.exists()  # the persistent classes' module_src was never run
    assert "training.networks_gmgan" not in sys.modules and "torch_utils.persistence" not in sys.modules


def test_other_resolutions_render_on_the_uniform_grid(authors):
    G_ref = authors.generator(5, R=8)
    G, report = poly_inr_from_snapshot(restricted_load(authors.write(authors.snapshot(G_ref))))
    z, classes = torch.randn(2, 16), torch.tensor([1, 3])
    G_ref.synthesis.grid = nn.Parameter(authors.frame_grid(16), requires_grad=False)  # what superres does
    G_ref.synthesis.img_resolution = 16
    expected = _reference(G_ref, z, classes, 1.0)
    with torch.no_grad():
        got = G(z, classes, grid=Grid.frame(16))
    assert (got - expected).abs().max() < 1e-4
    assert report.grid_max_deviation > 0.01  # the native grid was not uniform, so this was a real check


def test_report_measures_the_stored_grid(authors, tmp_path):
    G_ref = authors.generator(0, R=8, grid_noise=0.02)
    path = authors.write(authors.snapshot(G_ref))
    _, report = poly_inr_from_snapshot(restricted_load(path))
    conversion = convert_checkpoint(SOURCE, path, tmp_path / "out")
    deviation = (G_ref.gridt[0].double() - authors.frame_grid(8)[0].double()).abs()
    assert report.grid_max_deviation == pytest.approx(float(deviation.max()), rel=1e-6)
    assert report.grid_mean_deviation == pytest.approx(float(deviation.mean()), rel=1e-6)
    assert (report.dataset_resolution, report.dataset_labels, report.training_kimg) == (8, False, 123.456)
    assert conversion.notes == tuple(report.lines())
    text = "\n".join(conversion.lines())
    assert f"{report.grid_max_deviation * 7:.3g} px" in text and "unconditional" in text
    assert text.endswith(f"wrote {tmp_path / 'out'} (poly-inr, {conversion.generator.parameter_count():,} parameters)")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["imported_from"]["converter"] == SOURCE
    assert config["imported_from"]["grid_max_deviation"] == pytest.approx(report.grid_max_deviation)
    G = load_generator(tmp_path / "out")
    assert torch.equal(G.synthesis.input_grid, G_ref.gridt[0])
    assert G.cfg.mapping.lr_multiplier == pytest.approx(0.1) and G.mapping.w_avg.shape == (1, 48)


def test_nothing_is_imported_and_no_code_or_function_objects_are_made(authors):
    snapshot = restricted_load(authors.write(authors.snapshot(authors.generator(5))))
    objects = list(_walk(snapshot))
    assert not [o for o in objects if isinstance(o, (types.FunctionType, types.CodeType, types.MethodType))]
    D = snapshot["D"]
    assert isinstance(D, StandIn) and D.qualname() == "pg_modules.discriminator.ProjectedDiscriminator"
    assert isinstance(D.state["resize"], StandIn) and D.state["resize"].qualname() == "dill._dill._create_function"
    assert isinstance(D.state["options"], StandIn)  # an instance of a class dill pickled by value
    assert not authors.marker.exists()


def test_torch_save_archives_convert_too(authors, tmp_path):
    G_ref = authors.generator(5)
    path = authors.write(authors.snapshot(G_ref, discriminator=False), name="snapshot.pt", writer="torch")
    G, _ = poly_inr_from_snapshot(restricted_load(path))
    z, classes = torch.randn(2, 16), torch.tensor([0, 2])
    with torch.no_grad():
        assert (G(z, classes) - _reference(G_ref, z, classes, 1.0)).abs().max() < 1e-4


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_object_inside_the_generator_is_refused(authors, tmp_path):
    marker = tmp_path / "pwned"
    G_ref = authors.generator(0)
    G_ref.mapping.hook = _Evil(marker)  # nested deep inside G_ema's persistent state
    path = authors.write(authors.snapshot(G_ref))
    with pytest.raises(UnsafePickleError, match=r"system.*nothing from it was run"):
        convert_checkpoint(SOURCE, path, tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


def _broken(authors, how):
    G = authors.generator(5)
    if how == "shape":
        G.synthesis.fb3.fc0_1 = nn.Linear(32, 3 * 32)
    elif how == "missing":
        del G.synthesis.fb4.fb0
    elif how == "extra":
        G.synthesis.fb2.extra = nn.Linear(2, 2)
    elif how == "attr":
        G.mapping.num_ws = 12
    elif how == "gain":
        G.synthesis.fb1.fc0_5.weight_gain *= 2
    return authors.snapshot(G, discriminator=False)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        (
            "shape",
            r"mis-shaped .*'synthesis.fb3.fc0_1.weight \(96, 32\) for "
            r"synthesis.levels.3.coord_weight.weight \(64, 32\)'",
        ),
        ("missing", r"lacks what ours needs for \['synthesis.levels.4.linear.bias'"),
        ("extra", r"has unexpected \['synthesis.fb2.extra.bias'"),
        ("attr", r"G_ema.mapping.num_ws is 12, but the tensors say 10"),
        ("gain", r"G_ema.synthesis.fb1.fc0_5.weight_gain is"),
    ],
)
def test_mismatches_are_named_loudly(authors, how, message):
    with pytest.raises(ImporterError, match=message) as e:
        poly_inr_from_snapshot(restricted_load(authors.write(_broken(authors, how))))
    assert "\n" not in str(e.value)


def test_files_that_are_not_poly_inr_snapshots(authors):
    with pytest.raises(ImporterError, match="expected a dict with G_ema, found \\['D', 'G'\\]"):
        poly_inr_from_snapshot(restricted_load(authors.write({"G": None, "D": None})))
    with pytest.raises(ImporterError, match="G_ema is not a torch module"):
        poly_inr_from_snapshot(restricted_load(authors.write({"G_ema": [1, 2]})))
    with pytest.raises(ImporterError, match=r"no synthesis\.fc0_0\.weight"):
        poly_inr_from_snapshot(restricted_load(authors.write({"G_ema": authors.generator(0).mapping})))


@pytest.mark.parametrize("name", [SOURCE, "poly-inr-official"])
def test_cli_convert_end_to_end(authors, tmp_path, name):
    path = authors.write(authors.snapshot(authors.generator(5)))
    out = tmp_path / "ckpt"
    result = CliRunner().invoke(main, ["convert", "--from", name, str(path), str(out)])
    assert result.exit_code == 0, result.output
    assert "stored input grid vs uniform: max" in result.output and f"wrote {out}" in result.output
    assert "5 classes" in result.output and "dropped: rows 5..19 of mapping.embed.weight" in result.output
    assert load_generator(out).num_classes == 5

    marker = tmp_path / "pwned"
    evil = authors.write({"G_ema": _Evil(marker)}, name="evil.pkl", writer="pickle")
    result = CliRunner().invoke(main, ["convert", "--from", SOURCE, str(evil), str(tmp_path / "x")])
    assert result.exit_code == 1 and not marker.exists()
    assert result.output.startswith("Error: refused") and result.output.count("\n") == 1

    result = CliRunner().invoke(main, ["convert", "--from", "stylegan9", str(path), str(tmp_path / "y")])
    assert result.exit_code == 2 and "'poly-inr'" in result.output and "poly-inr-official" in result.output
    assert json.loads((out / "config.json").read_text())["imported_from"]["converter"] == SOURCE
