"""When a run has stopped improving: the plateau rule on the first metric's values at snapshots.

The rule looks at the history of ``(kimg, value)`` of the metric that ranks the snapshots (the first metric at
snapshots, in its better direction, as :func:`~polyinr.training.setup.snapshot_ranking` gives it): the run has
reached a plateau when the best of its last ``patience`` snapshots improves on the best before them by no more
than ``margin`` of that earlier best. A pure function of the history, so a stage switch can use it as well as the
end of a run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from polyinr.errors import PolyinrError


@dataclass(frozen=True)
class PlateauRule:
    """Stop when the last ``patience`` snapshots improve the first metric's best by at most ``margin`` of it."""

    margin: float = 0.02  # fraction of the best value before the last `patience` snapshots (0 = any gain counts)
    patience: int = 3  # snapshots that must bring no more than `margin` of improvement (≥ 1)

    def __post_init__(self) -> None:
        if not self.margin >= 0:
            raise PolyinrError(f"the plateau margin must be 0 or more, got {self.margin}")
        if self.patience < 1:
            raise PolyinrError(f"the plateau rule needs at least 1 snapshot to watch, got {self.patience}")

    def describe(self, metric: str, lower: bool) -> str:
        """The rule in words, for ``metric`` (lower is better when ``lower``)."""
        better = "lower" if lower else "higher"
        return (
            f"stop when the best {metric} of the last {self.patience} snapshots is not {better} than the best "
            f"before them by more than {self.margin:.1%} of it"
        )


def plateau_rule(margin: float | None = None, patience: int | None = None) -> PlateauRule:
    """The default rule with the settings given (None keeps the default's), as the commands' flags give them."""
    given = {"margin": margin, "patience": patience}
    return PlateauRule(**{name: value for name, value in given.items() if value is not None})


def plateaued(history: Sequence[tuple[float, float]], lower: bool, rule: PlateauRule) -> bool:
    """True when ``history`` (``(kimg, value)`` at each snapshot, in any order; non-finite values are ignored) has
    more than ``rule.patience`` points and the best of the last ``rule.patience`` improves on the best before
    them by at most ``rule.margin`` of the earlier best (``lower``: lower values are better)."""
    values = [value for _, value in sorted(history) if math.isfinite(value)]
    if len(values) <= rule.patience:
        return False
    best = min if lower else max
    before, recent = best(values[: -rule.patience]), best(values[-rule.patience :])
    gain = before - recent if lower else recent - before
    return gain <= rule.margin * abs(before)
