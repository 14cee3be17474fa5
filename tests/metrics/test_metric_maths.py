"""FID/KID/IS/PR from features against float64 references (scipy, plain numpy, torch-fidelity's maths)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torch_fidelity.metric_fid import fid_statistics_to_metric
from torch_fidelity.metric_kid import kernel_poly, mmd2
from torch_fidelity.metric_prc import calculate_precision_recall_full

from polyinr.errors import PolyinrError
from polyinr.metrics.fid import (
    FeatureStats,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)

RTOL = 1e-6
POLY = {"kid_kernel_poly_degree": 3, "kid_kernel_poly_gamma": None, "kid_kernel_poly_coef0": 1}  # d³ kernel, γ = 1/D


def random_features(n, d, seed, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return torch.from_numpy((rng.standard_normal((n, d)) @ mix * scale + shift).astype(np.float32))


def test_moments_match_numpy_float64():
    x = random_features(300, 16, 0, shift=2.0)
    stats = FeatureStats()
    for chunk in x.split(37):
        stats.append(chunk)
    mean, cov = stats.mean_cov()
    x64 = x.double().numpy()
    np.testing.assert_allclose(mean, x64.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x64, rowvar=False), rtol=1e-9, atol=1e-12)


def test_fid_matches_scipy_sqrtm_and_torch_fidelity():
    a, b = random_features(400, 24, 1), random_features(500, 24, 2, shift=0.3, scale=1.3)
    mu1, s1 = a.double().numpy().mean(0), np.cov(a.double().numpy(), rowvar=False)
    mu2, s2 = b.double().numpy().mean(0), np.cov(b.double().numpy(), rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    reference = np.square(mu1 - mu2).sum() + np.trace(s1 + s2 - 2 * covmean)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(reference, rel=RTOL)
    fidelity = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, False)
    assert ours == pytest.approx(fidelity["frechet_inception_distance"], rel=RTOL)


def test_fid_is_zero_for_identical_statistics_and_stays_real_when_singular():
    x = random_features(10, 32, 3)  # fewer samples than dimensions: singular covariance
    stats = FeatureStats()
    stats.append(x)
    mu, cov = stats.mean_cov()
    # the square roots of round-off eigenvalues of the null space leave ~1e-6 (as in every sqrtm-based FID)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0, abs=1e-5 * np.trace(cov))
    assert np.isfinite(frechet_distance(mu, cov, mu + 1, cov))


def test_kid_matches_float64_reference_on_the_same_subsets():
    real, gen = random_features(150, 20, 4), random_features(120, 20, 5, shift=0.2)
    ours = kernel_inception_distance(real, gen, num_subsets=7, max_subset_size=50, seed=3)
    rng = np.random.default_rng(3)
    r64, g64 = real.double().numpy(), gen.double().numpy()
    values = []
    for _ in range(7):
        x = g64[rng.choice(len(g64), 50, replace=False)]
        y = r64[rng.choice(len(r64), 50, replace=False)]
        kxx, kyy, kxy = (kernel_poly(u, v, **POLY) for u, v in ((x, x), (y, y), (x, y)))
        values.append(mmd2(kxx, kxy, kyy))  # torch-fidelity's unbiased MMD²
    assert ours == pytest.approx(np.mean(values), rel=RTOL)


def test_kid_single_full_subset_equals_explicit_double_sum():
    real, gen = random_features(30, 6, 6), random_features(30, 6, 7, shift=0.5)
    ours = kernel_inception_distance(real, gen, num_subsets=1, max_subset_size=30)
    x, y = gen.double().numpy(), real.double().numpy()  # one subset of everything: order does not matter
    k = lambda u, v: (u @ v / 6 + 1) ** 3  # noqa: E731
    m = 30
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert ours == pytest.approx(xx + yy - 2 * xy, rel=RTOL)


def test_inception_score_matches_stylegan3_formula_on_probabilities():
    logits = random_features(100, 12, 8, scale=3.0)
    mean, std = inception_score(logits, num_splits=4)
    p = torch.softmax(logits.double(), dim=1).numpy()
    scores = []
    for i in range(4):
        part = p[i * 25 : (i + 1) * 25]
        kl = part * (np.log(part) - np.log(part.mean(axis=0, keepdims=True)))
        scores.append(np.exp(kl.sum(axis=1).mean()))
    assert mean == pytest.approx(np.mean(scores), rel=RTOL)
    assert std == pytest.approx(np.std(scores), rel=RTOL)


def test_inception_score_bounds():
    confident_distinct = torch.eye(10).repeat(5, 1) * 50  # each sample sure of its class, classes balanced
    assert inception_score(confident_distinct, 1)[0] == pytest.approx(10, rel=1e-6)
    assert inception_score(torch.zeros(20, 10), 2)[0] == pytest.approx(1.0)


def test_precision_recall_matches_torch_fidelity_and_float64_brute_force():
    real, gen = random_features(90, 8, 9), random_features(70, 8, 10, shift=0.8)
    precision, recall = precision_recall(real, gen, k=3, block=32)
    ref_p, ref_r = calculate_precision_recall_full(gen.double(), real.double(), neighborhood=3)
    assert precision == pytest.approx(ref_p, rel=RTOL)
    assert recall == pytest.approx(ref_r, rel=RTOL)
    r64, g64 = real.double(), gen.double()
    radius = torch.cdist(r64, r64).kthvalue(4, dim=1).values
    brute = float((torch.cdist(g64, r64) <= radius).any(dim=1).double().mean())
    assert precision == pytest.approx(brute, rel=RTOL)
    assert 0 < precision < 1 and 0 < recall < 1


def test_precision_recall_of_a_distribution_with_itself_is_one():
    x = random_features(40, 5, 11)
    assert precision_recall(x, x.clone(), k=3) == (1.0, 1.0)


def test_too_few_samples_are_clear_errors():
    with pytest.raises(PolyinrError, match="KID needs"):
        kernel_inception_distance(torch.zeros(1, 4), torch.zeros(5, 4))
    with pytest.raises(PolyinrError, match="IS needs"):
        inception_score(torch.zeros(3, 4), num_splits=10)
    with pytest.raises(PolyinrError, match="k=3"):
        precision_recall(torch.zeros(3, 4), torch.zeros(10, 4))
