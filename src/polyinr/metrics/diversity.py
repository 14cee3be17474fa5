"""Within-class diversity: are the samples of a class as varied as the real images of that class?

For each class, the mean Euclidean distance between two different samples of the class, divided by the same
mean over the real images of the class: 1.0 = as varied as the data, 0 = every sample identical (a collapsed
class). Distances are taken between image vectors as a feature space's network sees them (e.g. 8×8 grey for
the digits), so the figure reads in pixels rather than in some network's units, and is reported beside recall.
"""

from __future__ import annotations

import numpy as np
import torch

from polyinr.errors import PolyinrError


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """Mean distance between distinct rows of ``x [N, D]`` (float64); N ≥ 2."""
    if len(x) < 2:
        raise PolyinrError(f"a mean pairwise distance needs at least 2 vectors, got {len(x)}")
    x = x.double()
    n = len(x)
    return float(torch.cdist(x, x).sum() / (n * (n - 1)))  # the diagonal is 0


def class_diversity(
    gen: torch.Tensor, gen_labels: np.ndarray, real: torch.Tensor, real_labels: np.ndarray, num_classes: int
) -> dict[int, float]:
    """``{class: samples' mean pairwise distance / real images'}`` for the classes with ≥ 2 of each.

    ``gen [M, D]`` with ``gen_labels [M]``, ``real [N, D]`` with ``real_labels [N]``; unconditional data is one
    class (``num_classes`` 0, labels ignored).
    """
    if num_classes == 0:
        gen_labels, real_labels, num_classes = np.zeros(len(gen), int), np.zeros(len(real), int), 1
    ratios = {}
    for k in range(num_classes):
        g, r = gen[torch.from_numpy(gen_labels == k)], real[torch.from_numpy(real_labels == k)]
        if len(g) < 2 or len(r) < 2:
            continue
        spread = mean_pairwise_distance(r)
        if spread > 0:
            ratios[k] = mean_pairwise_distance(g) / spread
    if not ratios:
        raise PolyinrError("diversity needs at least 2 samples and 2 varied real images of some class")
    return ratios
