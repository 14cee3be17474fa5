"""Real-data feature statistics, computed once and cached in ``<cache>/gan-metrics/`` (never the working dir).

A cache entry is keyed by the dataset's content hash, the detector (network and weights), the feature, the
resolution, the number of images, the mirror flag and what is kept (moments and/or every feature). It is a
safetensors file named by the SHA-256 of that key, which is also stored in its metadata; writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from polyinr.atomic import atomic_save_tensors
from polyinr.metrics.features import Detector, cache_dir
from polyinr.metrics.fid import FeatureStats
from polyinr.metrics.sampling import Progress, dataset_batches, subset_indices

log = logging.getLogger("polyinr")
CACHE_FORMAT = 1


def stats_key(dataset: Any, detector: Detector, feature: str, count: int, capture_all: bool) -> dict[str, Any]:
    """The identity of a real-data statistics entry."""
    return {
        "format": CACHE_FORMAT,
        "dataset": dataset.content_hash,
        "detector": detector.name,
        "feature": feature,
        "resolution": int(dataset.resolution),
        "count": int(count),
        "mirror": bool(getattr(dataset, "mirror", False)),
        "capture_all": bool(capture_all),
    }


def stats_path(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir() / "gan-metrics" / f"{key['feature']}-{digest}.safetensors"


def real_feature_stats(
    dataset: Any,
    detector: Detector,
    feature: str,
    max_items: int | None = None,
    capture_all: bool = False,
    batch_size: int = 32,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    on_progress: Progress | None = None,
    use_cache: bool = True,
) -> FeatureStats:
    """Moments (and every feature when ``capture_all``) of ``feature`` over the dataset's images.

    ``max_items`` caps the number of images (a fixed random subset when the dataset is larger; None = all).
    """
    indices = subset_indices(len(dataset), max_items)
    key = stats_key(dataset, detector, feature, len(indices), capture_all)
    path = stats_path(key)
    if use_cache and path.is_file():
        stats = _load(path, key, capture_all)
        if stats is not None:
            return stats
    stats = FeatureStats(capture_moments=True, capture_all=capture_all)
    done = 0
    with torch.no_grad():
        for images, _ in dataset_batches(dataset, indices, batch_size, num_workers):
            stats.append(detector(images.to(device), (feature,))[feature])
            done += len(images)
            if on_progress is not None:
                on_progress("real images", done, len(indices))
    if use_cache:
        _save(path, key, stats)
    return stats


def _save(path: Path, key: dict[str, Any], stats: FeatureStats) -> None:
    tensors = {
        "raw_sum": stats.raw_sum,
        "raw_outer": stats.raw_outer,
        "num_items": torch.tensor([stats.num_items], dtype=torch.int64),
    }
    if stats.capture_all:
        tensors["features"] = stats.all_features()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_tensors(path, tensors, metadata={"key": json.dumps(key, sort_keys=True)})
    except OSError as e:
        log.warning("could not cache real-data statistics in %s: %s", path, e.strerror or e)


def _load(path: Path, key: dict[str, Any], capture_all: bool) -> FeatureStats | None:
    """The cached statistics, or None (with a warning) when the file is unreadable or holds another key."""
    try:
        with safe_open(str(path), framework="pt") as f:
            if json.loads((f.metadata() or {}).get("key", "null")) != key:
                log.warning("ignoring cache file %s: it holds other statistics", path)
                return None
            return FeatureStats.restore(
                int(f.get_tensor("num_items")[0]),
                f.get_tensor("raw_sum"),
                f.get_tensor("raw_outer"),
                f.get_tensor("features") if capture_all else None,
            )
    except (SafetensorError, OSError, ValueError, KeyError) as e:
        log.warning("ignoring unreadable cache file %s: %s", path, e)
        return None
