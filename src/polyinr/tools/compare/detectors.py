"""Which metrics a comparison can measure offline: a detector whose weights would need a download is skipped."""

from __future__ import annotations

from typing import Any

from polyinr.errors import PolyinrError
from polyinr.metrics.api import _FEATURE_METRICS, parse_metric
from polyinr.metrics.features import find_weights


def detector_unavailable(metric: str, detectors: dict[str, Any] | None = None) -> str | None:
    """Why ``metric``'s detector cannot be used without a download, or None when it can (or needs none, or is
    among the given ``detectors``)."""
    spec = parse_metric(metric)
    if spec.space is not None:
        return None  # an offline feature space: trained from the built-in data when first used
    if spec.kind not in _FEATURE_METRICS or _FEATURE_METRICS[spec.kind][0] in ("inception-random", *(detectors or {})):
        return None
    detector = _FEATURE_METRICS[spec.kind][0]
    try:
        find_weights(detector, download=False)
    except PolyinrError:
        return f"not computed: the {detector} detector's weights are not available offline (no downloads)"
    return None
