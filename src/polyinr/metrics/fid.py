"""The distribution metrics computed from features: FID (and sFID, rFID, ScaleInv FID), KID, IS, precision/recall.

All arithmetic is float64. Definitions follow StyleGAN3's ``metrics/`` (which match the original TTUR, Bińkowski
et al., Salimans et al. and Kynkäänniemi et al. implementations), with one documented difference: the covariance
is the unbiased one (divided by n − 1, as TTUR, torch-fidelity and clean-fid compute it; StyleGAN3 divides by n,
which changes FID by O(1/n)).
"""

from __future__ import annotations

import numpy as np
import torch

from polyinr.errors import PolyinrError


class FeatureStats:
    """Streaming statistics of feature vectors ``[B, D]``: float64 moments and/or every feature (float32)."""

    def __init__(self, capture_moments: bool = True, capture_all: bool = False) -> None:
        self.capture_moments, self.capture_all = capture_moments, capture_all
        self.num_items = 0
        self.raw_sum: torch.Tensor | None = None  # [D] float64
        self.raw_outer: torch.Tensor | None = None  # [D, D] float64
        self._chunks: list[torch.Tensor] = []

    @classmethod
    def restore(
        cls, num_items: int, raw_sum: torch.Tensor, raw_outer: torch.Tensor, features: torch.Tensor | None = None
    ) -> FeatureStats:
        """Statistics saved earlier: moments ``[D]``, ``[D, D]`` and, optionally, every feature ``[N, D]``."""
        stats = cls(capture_moments=True, capture_all=features is not None)
        stats.num_items, stats.raw_sum, stats.raw_outer = num_items, raw_sum, raw_outer
        stats._chunks = [] if features is None else [features]
        return stats

    def append(self, x: torch.Tensor) -> None:
        """Add features ``[B, D]`` (any device; moments accumulate on that device in float64)."""
        if x.ndim != 2:
            raise ValueError(f"features must be [B, D], got {tuple(x.shape)}")
        self.num_items += x.shape[0]
        if self.capture_moments:
            x64 = x.detach().double()
            if self.raw_sum is None:
                self.raw_sum = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
                self.raw_outer = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
            self.raw_sum += x64.sum(dim=0)
            self.raw_outer += x64.T @ x64
        if self.capture_all:
            self._chunks.append(x.detach().float().cpu())

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``[D]`` and unbiased covariance ``[D, D]`` (float64)."""
        if self.raw_sum is None or self.num_items < 2:
            raise PolyinrError(f"need at least 2 feature vectors for a covariance, got {self.num_items}")
        n = self.num_items
        mean = (self.raw_sum / n).cpu().numpy()
        cov = (self.raw_outer.cpu().numpy() - n * np.outer(mean, mean)) / (n - 1)
        return mean, cov

    def all_features(self) -> torch.Tensor:
        """Every feature vector, ``[N, D]`` float32 on CPU."""
        return torch.cat(self._chunks) if self._chunks else torch.zeros(0, 0)


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """``‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½)`` in float64.

    ``Tr (Σ1 Σ2)^½`` is the sum of square roots of the eigenvalues of the symmetric PSD matrix ``Σ1^½ Σ2 Σ1^½``
    (the same spectrum as ``Σ1 Σ2``), which stays real and stable when the covariances are singular (fewer
    samples than dimensions).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    vals, vecs = np.linalg.eigh((cov1 + cov1.T) / 2)
    sqrt1 = (vecs * np.sqrt(vals.clip(min=0))) @ vecs.T  # Σ1^½
    middle = sqrt1 @ cov2 @ sqrt1
    tr_covmean = np.sqrt(np.linalg.eigvalsh((middle + middle.T) / 2).clip(min=0)).sum()
    return float(np.square(mu1 - mu2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * tr_covmean)


def kernel_inception_distance(
    real: torch.Tensor, gen: torch.Tensor, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0
) -> float:
    """Unbiased MMD² with the kernel ``(x·y / D + 1)³``, averaged over ``num_subsets`` random subsets.

    ``real [N, D]``, ``gen [M, D]``; each subset draws ``m = min(N, M, max_subset_size)`` rows of each without
    replacement from ``np.random.default_rng(seed)`` (generated rows first, then real, as StyleGAN3).
    """
    n_real, n_gen = len(real), len(gen)
    m = min(n_real, n_gen, max_subset_size)
    if m < 2:
        raise PolyinrError(f"KID needs at least 2 real and 2 generated feature vectors, got {n_real} and {n_gen}")
    dim = real.shape[1]
    rng = np.random.default_rng(seed)
    real64, gen64 = real.double(), gen.double()
    total = 0.0
    for _ in range(num_subsets):
        x = gen64[torch.from_numpy(rng.choice(n_gen, m, replace=False))]
        y = real64[torch.from_numpy(rng.choice(n_real, m, replace=False))]
        a = (x @ x.T / dim + 1) ** 3 + (y @ y.T / dim + 1) ** 3
        b = (x @ y.T / dim + 1) ** 3
        total += float((a.sum() - a.diagonal().sum()) / (m - 1) - b.sum() * 2 / m)
    return total / num_subsets / m


def inception_score(logits: torch.Tensor, num_splits: int = 10) -> tuple[float, float]:
    """Mean and standard deviation over ``num_splits`` consecutive splits of ``exp E_x KL(p(y|x) ‖ p(y))``.

    ``logits [N, C]`` are the classifier's logits without the output bias (any per-row constant is harmless).
    """
    n = len(logits)
    if n < num_splits:
        raise PolyinrError(f"IS needs at least {num_splits} samples (one per split), got {n}")
    log_p = torch.log_softmax(logits.double(), dim=1)  # [N, C]
    scores = []
    for i in range(num_splits):
        part = log_p[i * n // num_splits : (i + 1) * n // num_splits]
        log_py = torch.logsumexp(part, dim=0) - np.log(len(part))  # log of the split's mean p(y)
        kl = (part.exp() * (part - log_py)).sum(dim=1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))


def _kth_neighbour_radius(features: torch.Tensor, k: int, block: int) -> torch.Tensor:
    """Distance of each row of ``features [N, D]`` to its k-th nearest other row, ``[N]`` float64."""
    radii = []
    for rows in features.split(block):
        dist = torch.cat([torch.cdist(rows.double(), cols.double()) for cols in features.split(block)], dim=1)
        radii.append(dist.kthvalue(k + 1, dim=1).values)  # k + 1: the row itself is at distance 0
    return torch.cat(radii)


def _fraction_inside(probes: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor, block: int) -> float:
    """Fraction of ``probes`` within ``radii`` of at least one ``manifold`` row."""
    inside = []
    for rows in probes.split(block):
        hit = torch.zeros(len(rows), dtype=torch.bool, device=rows.device)
        for cols, r in zip(manifold.split(block), radii.split(block)):
            hit |= (torch.cdist(rows.double(), cols.double()) <= r).any(dim=1)
        inside.append(hit)
    return float(torch.cat(inside).double().mean())


def precision_recall(real: torch.Tensor, gen: torch.Tensor, k: int = 3, block: int = 10000) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifolds, float64 distances.

    Precision: fraction of generated samples inside the real manifold (union of balls reaching each real
    sample's k-th nearest real neighbour); recall: the same with the roles swapped. ``real [N, D]``, ``gen [M,
    D]``, both with more than ``k`` rows; distances are computed in ``block × block`` tiles on their device.
    """
    if len(real) <= k or len(gen) <= k:
        raise PolyinrError(f"precision/recall with k={k} needs more than {k} real and generated samples")
    precision = _fraction_inside(gen, real, _kth_neighbour_radius(real, k, block), block)
    recall = _fraction_inside(real, gen, _kth_neighbour_radius(gen, k, block), block)
    return precision, recall
