"""Pretrained class embeddings (StyleGAN-XL): the per-class mean of a CNN's lowest-resolution pooled features.

For each class, the images are resized to 224 (bilinear), normalised as the feature network expects, passed
through it, and the last of the four stages the projected discriminator uses is average-pooled; the mean over
the class's images is its embedding (``[num_classes, 320]`` for ``tf_efficientnet_lite0``). Generator mapping
and conditional discriminators start their class tables from it. Stored as safetensors, key ``embeddings``,
with the feature network named in the metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from polyinr.atomic import atomic_save_tensors
from polyinr.checkpoint import load_generator
from polyinr.discriminators.feature_networks import create_feature_network
from polyinr.errors import PolyinrError

EMBEDDINGS_KEY = "embeddings"


def compute_class_embeddings(
    dataset: Any,
    feature_network: str = "tf_efficientnet_lite0",
    pretrained: bool = True,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    on_progress: Callable[[int, int], None] | None = None,
    weights: str | Path | None = None,
) -> torch.Tensor:
    """Per-class mean pooled features of ``dataset`` → ``[num_classes, E]`` float32 on the CPU.

    ``dataset``: ``len()``, ``dataset[i] → (uint8 [3, R, R], label)``, ``num_classes``, ``labels`` (int array).
    ``weights``: a local weights file for the feature network (else downloaded when ``pretrained``, else
    random). ``on_progress(done, total)`` is called after each batch. A class with no images is an error.
    """
    num_classes = int(getattr(dataset, "num_classes", 0) or 0)
    if num_classes <= 0:
        raise PolyinrError("the dataset has no class labels; class embeddings need a labelled dataset")
    if batch_size < 1:
        raise PolyinrError(f"batch size must be ≥ 1, got {batch_size}")
    labels = np.asarray(dataset.labels, dtype=np.int64)
    if len(labels) != len(dataset) or (len(labels) and (labels.min() < 0 or labels.max() >= num_classes)):
        raise PolyinrError(f"the dataset's labels must be {len(dataset)} class indices in 0..{num_classes - 1}")
    counts = np.bincount(labels, minlength=num_classes)
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        shown = ", ".join(map(str, empty[:10])) + (", …" if len(empty) > 10 else "")
        raise PolyinrError(f"{len(empty)} of {num_classes} classes have no images (classes {shown})")
    device = torch.device(device)
    net = create_feature_network(feature_network, pretrained, weights).to(device)
    sums = torch.zeros(num_classes, net.channels[-1], dtype=torch.float64, device=device)
    total = len(dataset)
    with torch.inference_mode():
        for start in range(0, total, batch_size):
            items = [dataset[i] for i in range(start, min(start + batch_size, total))]
            images = torch.stack([torch.as_tensor(img) for img, _ in items]).to(device)  # [B, 3, R, R] uint8
            batch_labels = torch.tensor([int(label) for _, label in items], device=device)  # [B]
            x = net.prepare(images.float() / 255, resize=True)  # [B, 3, 224, 224]
            pooled = net(x)[-1].mean(dim=(2, 3))  # [B, E]
            sums.index_add_(0, batch_labels, pooled.double())
            if on_progress is not None:
                on_progress(start + len(items), total)
    return (sums / torch.as_tensor(counts, dtype=torch.float64, device=device)[:, None]).float().cpu()


def save_class_embeddings(
    table: torch.Tensor, path: str | Path, feature_network: str = "tf_efficientnet_lite0"
) -> Path:
    """Write ``table [num_classes, E]`` to the safetensors file ``path`` (atomically)."""
    if table.ndim != 2:
        raise PolyinrError(f"a class embedding table is [num_classes, E], got {tuple(table.shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_save_tensors(path, {EMBEDDINGS_KEY: table.float()}, metadata={"feature_network": feature_network})


def load_class_embeddings(path: str | Path) -> torch.Tensor:
    """The table ``[num_classes, E]`` stored by :func:`save_class_embeddings`, or the class table of a
    conditional generator checkpoint (e.g. the authors' 1000×320 ImageNet table after ``polyinr convert``)."""
    path = Path(path)
    if path.is_dir():
        G = load_generator(path)
        if G.mapping.embed is None:
            raise PolyinrError(f"{path} is an unconditional generator: it has no class table")
        return G.mapping.embed.weight.detach().float().clone()
    if not path.is_file():
        raise PolyinrError(f"class embeddings not found: {path}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise PolyinrError(f"{path} is not a readable safetensors file ({e})") from None
    if EMBEDDINGS_KEY not in tensors:
        raise PolyinrError(f"{path} holds no class embeddings (no {EMBEDDINGS_KEY!r} tensor)")
    table = tensors[EMBEDDINGS_KEY]
    if table.ndim != 2:
        raise PolyinrError(f"{path}: class embeddings must be [num_classes, E], got {tuple(table.shape)}")
    return table.float()
