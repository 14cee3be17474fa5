"""Samples for the metrics: the labels of generated samples, and real-data batches.

Generated sample ``i`` of a metric uses seed ``seed + i`` for its latent (StyleGAN's seed convention, so a
sample is the same at any batch size; mapped by :func:`polyinr.sampling.iter_ws`) and, for
class-conditional generators, the ``i``-th label drawn from
``np.random.default_rng(seed)``: from the dataset's label distribution (``'dataset'``, StyleGAN3) or uniform
over the classes (``'uniform'``, StyleGAN-XL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from polyinr.errors import PolyinrError

LABEL_SAMPLING = ("dataset", "uniform")
Progress = Callable[[str, int, int], None]  # (stage, done, total)


def sample_labels(num_classes: int, count: int, label_sampling: str, dataset: Any, seed: int) -> np.ndarray | None:
    """``count`` class indices (int64) for a generator with ``num_classes`` classes; None when unconditional."""
    if label_sampling not in LABEL_SAMPLING:
        raise PolyinrError(f"unknown label sampling {label_sampling!r}; use one of {', '.join(LABEL_SAMPLING)}")
    if num_classes == 0:
        return None
    rng = np.random.default_rng(seed)
    if label_sampling == "uniform":
        return rng.integers(0, num_classes, size=count)
    if dataset is None or getattr(dataset, "num_classes", 0) == 0:
        raise PolyinrError(
            "the generator is class-conditional but no labelled dataset gives the label "
            "distribution: give labelled data, or sample labels uniformly"
        )
    if dataset.num_classes != num_classes:
        raise PolyinrError(f"the dataset has {dataset.num_classes} classes, the generator {num_classes}")
    p = np.asarray(dataset.label_distribution(), dtype=np.float64)
    return rng.choice(num_classes, size=count, p=p / p.sum())


def dataset_batches(
    dataset: Any, indices: np.ndarray, batch_size: int, num_workers: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(images uint8 [b, 3, R, R], labels int64 [b])`` for the dataset items ``indices``, in order."""
    subset = torch.utils.data.Subset(dataset, indices.tolist())
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, num_workers=num_workers, shuffle=False)
    for images, labels in loader:
        yield images, torch.as_tensor(labels)


def subset_indices(size: int, max_items: int | None) -> np.ndarray:
    """All of ``range(size)``, or a random subset of ``max_items`` (seed 0, sorted) when the data is larger."""
    if max_items is None or max_items >= size:
        return np.arange(size)
    return np.sort(np.random.default_rng(0).choice(size, max_items, replace=False))
