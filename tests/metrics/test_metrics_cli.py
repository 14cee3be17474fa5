"""The ``polyinr metrics`` and ``polyinr cost`` commands."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from polyinr.cli import main
from polyinr.models.registry import create


@pytest.fixture
def run_checkpoint(tmp_path):
    """A tiny Poly-INR snapshot inside a run directory (which has training_options.json)."""
    run = tmp_path / "00000-test"
    run.mkdir()
    (run / "training_options.json").write_text("{}")
    torch.manual_seed(0)
    create("poly-inr", "cpu", img_resolution=8).save(run / "network-snapshot-000000")
    return run / "network-snapshot-000000"


def test_metrics_prints_a_table_and_appends_to_the_run_directory(run_checkpoint):
    result = CliRunner().invoke(
        main,
        ["metrics", "--network", str(run_checkpoint), "--metrics", "eqt0.004k_int,eqt0.004k_frac", "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    table = [line.split() for line in result.stdout.splitlines() if line.startswith("eqt0.004k")]
    assert [row[0] for row in table] == ["eqt0.004k_int", "eqt0.004k_frac"]
    line = json.loads((run_checkpoint.parent / "metric-eqt0.004k_frac.jsonl").read_text())
    assert line["snapshot"] == "network-snapshot-000000" and float(table[1][1]) == pytest.approx(
        line["results"]["eqt0.004k_frac"], abs=1e-4
    )


def test_bad_input_is_a_one_line_error(run_checkpoint, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(main, ["metrics", "--network", str(run_checkpoint), "--metrics", "fid50k"])
    assert result.exit_code == 1 and "Error: unknown metric 'fid50k'" in result.output
    result = runner.invoke(
        main, ["metrics", "--network", str(run_checkpoint), "--metrics", "fid0.01k_full", "--device", "cpu"]
    )
    assert result.exit_code == 1 and "compares with real images" in result.output

    def offline(*args, **kwargs):
        raise OSError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    result = runner.invoke(
        main, ["metrics", "--network", str(run_checkpoint), "--metrics", "is0.01k", "--device", "cpu"]
    )
    assert result.exit_code == 1 and "put weights-inception-2015-12-05-6726825d.pth" in result.output
    assert "Traceback" not in result.output


def test_cost_command(run_checkpoint):
    result = CliRunner().invoke(
        main, ["cost", str(run_checkpoint), "--batch", "2", "--iterations", "1", "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    assert "multiply-adds / image" in result.output and "images / s" in result.output


def test_stage_bars_start_a_new_bar_for_a_new_stage_and_for_a_new_pass_of_the_same_stage():
    from contextlib import ExitStack

    from polyinr.cli.metrics import StageBars

    with ExitStack() as stack:
        bars = StageBars(stack)
        bars("fid: generated images", 8, 10)
        first = bars.bar
        bars("fid: generated images", 10, 10)
        assert bars.bar is first and first.n == 10
        bars("fid: generated images", 4, 10)  # the same metric at the next snapshot: counting again
        assert bars.bar is not first and bars.bar.n == 4
