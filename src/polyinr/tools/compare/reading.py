"""The "reading the table" paragraph, written from the numbers: which model leads on each measurement, by how much."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from polyinr.tools.compare.cell import Cell

# Measurements of cost and speed that have a better direction (True: lower is better); metrics get theirs from
# the metrics layer (polyinr.metrics.metric_goal), passed in.
COST_GOALS: dict[str, bool] = {
    "parameters": True,
    "macs_per_pixel": True,
    "train_speed": False,
    "render_1x": False,
    "render_4x": False,
    "big_render_memory": True,
}


def reading_the_table(
    rows: Mapping[str, Mapping[str, Cell]],
    names: Sequence[str],
    lower_is_better: Callable[[str], bool | None],
    titles: Mapping[str, str],
) -> list[str]:
    """One sentence per measurement of ``names`` with a better direction (``lower_is_better(name)``: True, False,
    or None for none) and a value for at least two models of ``rows``: the leader, its value, and its lead over
    the runner-up (absolute and relative)."""
    sentences = []
    for name in names:
        lower = COST_GOALS.get(name, lower_is_better(name))
        values = {
            m: c.value
            for m, c in ((m, cells.get(name)) for m, cells in rows.items())
            if c is not None and isinstance(c.value, (int, float))
        }
        if lower is None or len(values) < 2:
            continue
        ranked = sorted(values.items(), key=lambda item: item[1], reverse=not lower)
        (leader, best), (runner_up, second) = ranked[0], ranked[1]
        title = titles.get(name, name)
        unit = rows[leader][name].unit
        if best == second:
            sentences.append(f"{title}: {leader} and {runner_up} tie at {_shown(best, unit)}.")
            continue
        if math.isinf(best):  # e.g. an exact equivariance: no finite lead to state
            sentences.append(
                f"{title}: {leader} leads with {_shown(best, unit)} (exact); next is {runner_up} at "
                f"{_shown(second, unit)}."
            )
            continue
        gap = abs(best - second)
        relative = f" ({gap / abs(second):.0%})" if second else ""
        sentences.append(
            f"{title}: {leader} leads with {_shown(best, unit)}, {_shown(gap, unit)}{relative} "
            f"{'lower' if lower else 'higher'} than {runner_up}."
        )
    return sentences


def _shown(value: float, unit: str) -> str:
    return f"{Cell(value, unit).number()} {unit}".strip()
