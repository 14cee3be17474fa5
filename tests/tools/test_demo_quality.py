"""The demo's last outputs: the real-vs-generated sheet and its one quality line."""

from __future__ import annotations

import numpy as np

from polyinr.data.datasets import open_dataset
from polyinr.grid import Grid
from polyinr.tools.demo import quality_line, real_vs_generated


def test_real_vs_generated_sheet_has_a_row_per_class_reals_left_samples_right(digits_G):
    G = digits_G
    digits = open_dataset("builtin:digits", resolution=16, cond=True)
    sheet = real_vs_generated(G, digits, Grid.frame(16), per_side=3)
    assert sheet.shape == (10 * 16, 7 * 16, 3) and sheet.dtype == np.uint8
    first_three = np.flatnonzero(digits.labels == 4)[:3]
    for col, index in enumerate(first_three):  # row 4 starts with three real fours
        assert np.array_equal(sheet[64:80, 16 * col : 16 * (col + 1)], digits[int(index)][0].permute(1, 2, 0).numpy())
    assert (sheet[64:80, 48:64] == 128).all()  # the grey gap between reals and samples
    assert sheet[64:80, 64:].std() > 0  # samples


def test_quality_line_reads_the_figures():
    figures = {
        "cas_digits": 0.9731,
        "div_digits": 0.84,
        "div_digits_min": 0.71,
        "pr_digits_recall": 0.62,
        "pr_digits_precision": 0.8,
        "fid_digits": 12.345,
    }
    line = quality_line(figures)
    assert "\n" not in line and "97.3 %" in line and "diversity 0.84 of real (lowest class 0.71)" in line
    assert "in the digits space: recall 0.62, precision 0.80, FID 12.35" in line  # the space names the detector
