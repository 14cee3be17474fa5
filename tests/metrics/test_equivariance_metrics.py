"""EQ-T, EQ-T_frac, EQ-R: exact generators score high, transform-blind ones low; reference operators."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from metrics_testlib import FieldGenerator

from polyinr.errors import PolyinrError
from polyinr.metrics.equivariance import (
    equivariance_psnr,
    fractional_rotation,
    fractional_translation,
    integer_translation,
)
from polyinr.models.registry import create


def test_exactly_translation_equivariant_generator_scores_at_least_100db():
    assert equivariance_psnr(FieldGenerator(), "eqt_int", 12) >= 100


@pytest.mark.parametrize("kind", ["eqt_int", "eqt_frac", "eqr"])
def test_a_generator_that_ignores_the_transform_scores_low(kind):
    assert equivariance_psnr(FieldGenerator(ignore_transform=True), kind, 4) < 15


@pytest.mark.parametrize("kind", ["eqt_frac", "eqr"])
def test_band_limited_coordinate_field_scores_high_on_fractional_transforms(kind):
    # Smooth fields are reproduced by the band-limited references up to the Lanczos filters' error.
    assert equivariance_psnr(FieldGenerator(resolution=24, max_cycles=2.0), kind, 4) > 40


def test_result_is_reproducible_and_seeded():
    G = FieldGenerator()
    a = equivariance_psnr(G, "eqt_frac", 8, seed=1)
    assert equivariance_psnr(G, "eqt_frac", 8, seed=1) == a
    assert equivariance_psnr(G, "eqt_frac", 8, seed=2) != a


def test_poly_inr_is_translation_equivariant_on_whole_pixels():
    torch.manual_seed(0)
    G = create("poly-inr", "cpu", img_resolution=16).eval().requires_grad_(False)
    assert equivariance_psnr(G, "eqt_int", 4) >= 100  # a pure function of coordinates: only float rounding


def test_integer_translation_moves_content_down_right_with_a_zero_fill_mask():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    z, m = integer_translation(x, 1, 2)
    assert torch.equal(z[0, 0, 1:, 2:], x[0, 0, :3, :2])
    assert m.sum() == 3 * 2 and m[0, 0, 0].sum() == 0 and z[0, 0, 0].sum() == 0


def test_fractional_translation_by_whole_pixels_equals_integer_translation_inside_its_mask():
    x = torch.randn(2, 3, 12, 12)
    z, m = fractional_translation(x, 2.0, -1.0)
    zi, mi = integer_translation(x, 2, -1)
    assert (m <= mi).all() and m.sum() > 0
    torch.testing.assert_close(z * m, zi * m, atol=1e-5, rtol=0)


def test_fractional_translation_of_a_slow_sinusoid_matches_sampling_it_shifted():
    cols = torch.arange(32.0)
    signal = lambda shift: torch.sin(2 * math.pi * (cols - shift) / 16).expand(1, 1, 32, 32)  # noqa: E731
    z, m = fractional_translation(signal(0), 0.0, 0.4)
    assert m.sum() > 0
    assert ((z - signal(0.4)) * m).abs().max() < 1e-2  # Lanczos-3 error at 1/16 cycle per pixel
    assert ((z - signal(-0.4)) * m).abs().max() > 0.2  # the other direction is far off


def test_rotation_by_zero_is_identity_inside_the_mask_and_full_turn_agrees():
    y, x = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    img = torch.cos(2 * math.pi * (x + 0.5 * y) / 12)[None, None].float()
    z, m = fractional_rotation(img, 0.0)
    assert m.sum() > 0
    assert ((z - img) * m).abs().max() < 2e-2
    z2, m2 = fractional_rotation(img, 2 * math.pi)
    torch.testing.assert_close(z2 * m * m2, z * m * m2, atol=1e-4, rtol=0)


def test_class_conditional_generators_use_the_given_labels():
    G = FieldGenerator(num_classes=3)
    labels = np.arange(8) % 3
    assert equivariance_psnr(G, "eqt_int", 8, labels=labels) >= 100
    with pytest.raises(PolyinrError, match="unknown equivariance metric"):
        equivariance_psnr(G, "eqs", 4, labels=labels)
