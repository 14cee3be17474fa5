"""Classification accuracy score: does a classifier trained on the real labelled data recognise the samples?

A multinomial logistic regression (scikit-learn) is trained on real images reduced to ``image_size²`` grayscale
pixels in ``[0, 1]``, on 80% of them (stratified); its accuracy on the other 20% is reported for context. The
score is its accuracy on class-conditional samples, an equal number of each class, labelled with the class
they were asked for. A cheap quality proxy on small labelled data (e.g. ``builtin:digits``) that needs no
downloaded network.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.image_io import quantize_rgb
from polyinr.metrics.sampling import Progress, dataset_batches, subset_indices
from polyinr.sampling import iter_ws


def small_gray(images: torch.Tensor, image_size: int) -> np.ndarray:
    """uint8 images ``[B, 3, H, W]`` → float64 ``[B, image_size²]`` grayscale box averages in ``[0, 1]``."""
    gray = images.float().mean(dim=1, keepdim=True) / 255  # [B, 1, H, W]
    return F.adaptive_avg_pool2d(gray, image_size).flatten(1).double().cpu().numpy()


@torch.no_grad()
def classification_accuracy_score(
    G: Any,
    dataset: Any,
    num_samples: int,
    image_size: int = 8,
    device: torch.device | str = "cpu",
    seed: int = 0,
    max_real: int | None = 20000,
    batch_size: int = 64,
    num_workers: int = 0,
    on_progress: Progress | None = None,
) -> dict[str, float]:
    """``{'cas': accuracy on generated samples, 'cas_real': held-out accuracy on real images}``.

    ``max_real`` caps the real images used (a fixed random subset of larger datasets; None = all). Samples use
    seeds ``seed + i`` and class ``i mod num_classes``; ``seed`` also fixes the train/test split.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    if G.num_classes == 0:
        raise PolyinrError("the classification accuracy score needs a class-conditional generator")
    data_classes = getattr(dataset, "num_classes", 0)
    if data_classes != G.num_classes:
        raise PolyinrError(
            f"the classification accuracy score needs labelled data with the generator's "
            f"{G.num_classes} classes; the dataset has {data_classes}"
        )
    if image_size < 1 or num_samples < 1:
        raise PolyinrError("the classification accuracy score needs image_size >= 1 and num_samples >= 1")

    indices = subset_indices(len(dataset), max_real)
    features, labels = [], []
    for images, y in dataset_batches(dataset, indices, batch_size, num_workers):
        features.append(small_gray(images, image_size))
        labels.append(y.numpy())
        if on_progress is not None:
            on_progress("real images", sum(map(len, labels)), len(indices))
    x_real, y_real = np.concatenate(features), np.concatenate(labels)
    counts = np.bincount(y_real, minlength=G.num_classes)
    stratify = y_real if counts[counts > 0].min() >= 2 else None
    x_train, x_test, y_train, y_test = train_test_split(
        x_real, y_real, test_size=0.2, random_state=seed, stratify=stratify
    )
    classifier = LogisticRegression(max_iter=1000).fit(x_train, y_train)

    gen_labels = np.arange(num_samples) % G.num_classes
    grid = Grid.frame(dataset.resolution)
    predictions = []
    for ws in iter_ws(G, range(seed, seed + num_samples), gen_labels, device=device, batch_size=batch_size):
        predictions.append(classifier.predict(small_gray(quantize_rgb(G.synthesize(ws, grid)), image_size)))
        if on_progress is not None:
            on_progress("generated images", sum(map(len, predictions)), num_samples)
    return {
        "cas": float(np.mean(np.concatenate(predictions) == gen_labels)),
        "cas_real": float(classifier.score(x_test, y_test)),
    }
