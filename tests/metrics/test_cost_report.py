"""Cost report: multiply-adds counted exactly on a known network; a Poly-INR report is consistent."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from polyinr.errors import PolyinrError
from polyinr.metrics.cost import count_macs, measure_cost
from polyinr.models.generator import CONTINUOUS
from polyinr.models.registry import create


class LinearField(nn.Module):
    """mapping: Linear(4 → 6, no bias); synthesis: each pixel's (row, col) through Linear(2 → 3, no bias)."""

    z_dim, num_classes, img_resolution, grid_support = 4, 0, 8, CONTINUOUS

    def __init__(self):
        super().__init__()
        self.mapping = nn.Linear(4, 6, bias=False)
        self.synthesis = nn.Linear(2, 3, bias=False)

    def forward(self, z, c=None, grid=None):
        ws = self.mapping(z)
        H, W = grid.shape
        rgb = self.synthesis(grid.coords().view(-1, 2))  # [H·W, 3]
        return rgb.T.reshape(1, 3, H, W).expand(len(ws), -1, -1, -1)


def test_multiply_adds_are_counted_exactly():
    assert count_macs(LinearField(), 8) == 4 * 6 + 8 * 8 * 2 * 3
    assert count_macs(LinearField(), 16) == 4 * 6 + 16 * 16 * 2 * 3


def test_poly_inr_report_is_consistent():
    torch.manual_seed(0)
    G = create("poly-inr", "cpu", img_resolution=8).eval().requires_grad_(False)
    report = measure_cost(G, batch_size=2, iterations=1)
    n, levels = G.cfg.channels, G.cfg.num_levels
    assert report.parameters == G.parameter_count() == report.mapping_parameters + report.synthesis_parameters
    assert report.resolution == 8 and report.model == "poly-inr"
    assert levels * n * n * 64 <= report.macs_per_image <= G.macs_per_pixel() * 64 + 10 * G.parameter_count()
    assert report.images_per_second > 0 and report.peak_memory_bytes > 0
    assert report.memory_kind == "process peak RSS" and report.device == "cpu" and report.dtype == "float32"
    labels = [label for label, _ in report.rows()]
    assert labels[:4] == ["model", "parameters", "resolution", "multiply-adds / image"]
    assert measure_cost(G, resolution=16, batch_size=1, iterations=1).macs_per_image > report.macs_per_image


def test_a_canvas_model_is_counted_on_its_lattice_at_any_size():
    torch.manual_seed(0)
    G = create("infinitygan", "cpu").eval().requires_grad_(False)
    R = G.img_resolution
    assert count_macs(G, 2 * R) > count_macs(G, R) > 0  # a wider canvas window (more patches), not a refused frame


def test_bad_settings_are_errors():
    with pytest.raises(PolyinrError, match="positive"):
        measure_cost(LinearField(), batch_size=0)
