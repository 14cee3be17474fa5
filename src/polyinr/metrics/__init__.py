"""Quality, equivariance and cost metrics (FID/KID/IS/PR/sFID/rFID, EQ-T/EQ-R, ScaleInv FID, CAS, cost).

The ``polyinr metrics`` command uses :func:`parse_metrics`, :func:`compute_metric` and
:func:`append_metric_result`; training runs get :func:`evaluate_snapshot` as the loop's ``evaluate`` hook. See
:mod:`polyinr.metrics.api` for the metric names.
"""

from polyinr.metrics.api import (
    MetricSpec,
    append_metric_result,
    compute_metric,
    evaluate_snapshot,
    find_run_dir,
    metric_detector,
    metric_goal,
    parse_metric,
    parse_metrics,
)
from polyinr.metrics.cas import classification_accuracy_score

__all__ = [
    "MetricSpec",
    "append_metric_result",
    "classification_accuracy_score",
    "compute_metric",
    "evaluate_snapshot",
    "find_run_dir",
    "metric_detector",
    "metric_goal",
    "parse_metric",
    "parse_metrics",
]
