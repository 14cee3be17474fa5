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
        spread = _spread(rows[leader][name], rows[runner_up][name], leader, runner_up, unit)
        sentences.append(
            f"{title}: {leader} leads with {_shown(best, unit)}, {_shown(gap, unit)}{relative} "
            f"{'lower' if lower else 'higher'} than {runner_up}{spread}."
        )
    return sentences


def _spread(leader: Cell, runner_up: Cell, leader_name: str, runner_up_name: str, unit: str) -> str:
    """The two models' ranges over their training seeds, and whether they overlap (empty for single runs)."""
    if not leader.per_seed or not runner_up.per_seed or len(leader.per_seed) < 2:
        return ""
    (lo1, hi1), (lo2, hi2) = ((min(c.per_seed.values()), max(c.per_seed.values())) for c in (leader, runner_up))
    verdict = "the ranges overlap: not a clear lead" if lo1 <= hi2 and lo2 <= hi1 else "the ranges do not overlap"
    return (
        f"; over {len(leader.per_seed)} seeds {leader_name} ranges {_shown(lo1, unit)}–{_shown(hi1, unit)} and "
        f"{runner_up_name} {_shown(lo2, unit)}–{_shown(hi2, unit)}: {verdict}"
    )


def _shown(value: float, unit: str) -> str:
    return f"{Cell(value, unit).number()} {unit}".strip()
