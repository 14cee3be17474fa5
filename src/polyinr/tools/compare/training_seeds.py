"""One row from a model's runs with several training seeds: the mean of each value the seeds measured, each seed's
value kept beside it (:attr:`Cell.per_seed`), so the table shows one number and the reading its spread."""

from __future__ import annotations

import statistics
from collections.abc import Mapping

from polyinr.tools.compare.cell import Cell


def combine_seeds(rows: Mapping[int, Mapping[str, Cell]]) -> dict[str, Cell]:
    """The row of one model from its rows by training seed (the first seed's row has every cell; the others the
    ones that differ between seeds). A number every seed measured becomes their mean, with each seed's value; a
    cell only the first seed has is kept as it is. Notes the seeds share are kept; differing ones are each given
    with their seed."""
    first, *others = rows.values()
    if not others:
        return dict(first)
    combined = {}
    for name, cell in first.items():
        cells = {seed: row.get(name) for seed, row in rows.items()}
        values = {seed: c.value for seed, c in cells.items() if c is not None and _is_number(c.value)}
        if len(values) < len(cells):  # a seed without this number: the first seed's cell, as it is
            combined[name] = cell
            continue
        notes = {seed: c.note for seed, c in cells.items()}
        note = (
            cell.note if len(set(notes.values())) == 1 else "; ".join(f"seed {s}: {n}" for s, n in notes.items() if n)
        )
        combined[name] = Cell(
            statistics.fmean(values.values()), cell.unit, note or None, per_seed={str(s): v for s, v in values.items()}
        )
    return combined


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
