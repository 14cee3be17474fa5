"""Quality, equivariance and cost metrics (FID/KID/IS/PR/sFID/rFID, EQ-T/EQ-R, ScaleInv FID, CAS, cost).

The training loop and the ``polyinr metrics`` command use :func:`parse_metrics`, :func:`compute_metric` and
:func:`append_metric_result`; see :mod:`polyinr.metrics.api` for the metric names.
"""

from polyinr.metrics.api import (
    MetricSpec,
    append_metric_result,
    compute_metric,
    find_run_dir,
    metric_detector,
    parse_metric,
    parse_metrics,
)
from polyinr.metrics.cas import classification_accuracy_score

__all__ = [
    "MetricSpec",
    "append_metric_result",
    "classification_accuracy_score",
    "compute_metric",
    "find_run_dir",
    "metric_detector",
    "parse_metric",
    "parse_metrics",
]
