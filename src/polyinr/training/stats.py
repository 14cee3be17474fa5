"""Training statistics: ``report(name, value)`` from anywhere, averaged and flushed once per tick.

Flushed to ``stats.jsonl`` and TensorBoard by the loop; across processes the sums are all-reduced so every
rank sees the same means.
"""

from __future__ import annotations

from collections import defaultdict

import torch

from polyinr.training import distributed

_sums: dict[str, float] = defaultdict(float)
_counts: dict[str, int] = defaultdict(int)


def report(name: str, value: torch.Tensor | float) -> None:
    """Add ``value`` (a scalar or a tensor, averaged over its elements) to the running mean of ``name``."""
    if isinstance(value, torch.Tensor):
        value = value.detach().float()
        _sums[name] += float(value.sum())
        _counts[name] += value.numel()
    else:
        _sums[name] += float(value)
        _counts[name] += 1


def collect() -> dict[str, float]:
    """The means of everything reported since the last call (all ranks), and reset."""
    names = sorted(_sums)
    if distributed.world_size() > 1:
        names = distributed.all_gather_names(names)
        totals = torch.tensor([[_sums.get(n, 0.0), _counts.get(n, 0)] for n in names], dtype=torch.float64)
        distributed.all_reduce_sum(totals)
        means = {n: float(s / c) for n, (s, c) in zip(names, totals.tolist()) if c > 0}
    else:
        means = {n: _sums[n] / _counts[n] for n in names if _counts[n] > 0}
    _sums.clear()
    _counts.clear()
    return means
