"""Metric fidelity: snapshot metrics use the un-mirrored reals; metrics that need no reals run without
data, a conditional model then sampling its classes uniformly."""

from __future__ import annotations

import torch
from click.testing import CliRunner

from polyinr.cli import main
from polyinr.data.datasets import open_dataset
from polyinr.metrics import api
from polyinr.models.registry import create


def test_snapshot_metrics_compare_with_the_unmirrored_reals(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(
        api, "compute_metric", lambda name, G, dataset, device, **_: seen.append(dataset) or {name: 0.0}
    )
    data = open_dataset("builtin:digits", resolution=8, mirror=True)
    api.evaluate_snapshot(["fid0.01k_full"], None, data, tmp_path, tmp_path / "000004", "cpu")
    assert not seen[0].mirror and len(seen[0]) == len(data) // 2
    plain = open_dataset("builtin:digits", resolution=8)
    assert seen[0].content_hash == plain.content_hash  # the same reference set, so the same cached statistics


def test_equivariance_of_a_conditional_model_runs_without_data(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "cond"
    create("poly-inr", "cpu", img_resolution=8, num_classes=3).save(path)
    result = CliRunner().invoke(
        main, ["metrics", "--network", str(path), "--metrics", "eqt0.004k_int", "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    assert "classes are sampled uniformly" in result.output and "eqt0.004k_int" in result.output


def test_equivariance_of_an_imported_grid_compares_both_sides_on_the_same_coordinates():
    from polyinr.metrics.equivariance import equivariance_psnr

    torch.manual_seed(0)
    G = create("poly-inr", "cpu", img_resolution=16, stored_grid=True, channels=16, num_levels=3).eval()
    uniform = equivariance_psnr(G, "eqt_int", 4, seed=1)
    with torch.no_grad():  # a 0.1-pixel jitter of the stored grid: the model itself is unchanged
        G.synthesis.input_grid += torch.randn(G.synthesis.input_grid.shape) * 0.1 / 15
    assert equivariance_psnr(G, "eqt_int", 4, seed=1) == uniform == float("inf")
    assert G.synthesis.input_grid is not None  # the view left the model's own grid in place
    view = G.uniform_coordinates()
    assert view.synthesis.input_grid is None and view.synthesis.levels is G.synthesis.levels
