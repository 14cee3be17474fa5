"""The training progress bar moves with every step and never overshoots, whatever the batch and --kimg."""

from __future__ import annotations

import warnings

from polyinr.cli.train import TrainingProgress


def test_the_bar_stops_at_100_percent_and_never_goes_back():
    progress = TrainingProgress("train")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a TqdmWarning (n > total) would fail here
        for cur in range(8, 105, 8):  # --kimg 0.1 with batch 8: the last step ends at 104 images
            progress.on_step(cur, 100)
            assert progress.bar.n <= progress.bar.total == 0.1
        progress.on_step(96, 100)  # an out-of-order report does not move the bar back
        assert progress.bar.n == 0.1
    progress.close()


def test_a_resumed_run_starts_the_bar_where_it_left_off():
    progress = TrainingProgress("train")
    progress.on_step(5000, 8000)
    assert progress.bar.n == 5.0 and progress.bar.total == 8.0
    progress.on_step(5008, 8000)
    assert progress.bar.format_dict["rate"] is None or progress.bar.format_dict["rate"] >= 0
    progress.close()


def test_each_metric_pass_at_a_snapshot_shows_a_bar(tmp_path):
    from click.testing import CliRunner

    from polyinr.cli import main

    args = [
        "train",
        "--data",
        "builtin:digits",
        "--resolution",
        "8",
        "--kimg",
        "0.032",
        "--tick",
        "0.032",
        "--snap",
        "1",
        "--metrics",
        "fid0.05k_digits",
        "--workers",
        "0",
        "--outdir",
        str(tmp_path),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "fid0.05k_digits: generated images: 100%" in result.output
