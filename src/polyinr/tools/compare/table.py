"""The comparison's table in Markdown: one number per cell, units in a column of their own, every note once.

A note that every measured cell of a row shares (the detector of a metric, how a speed was timed) is a numbered
footnote on the row's unit; a note of one cell only is a numbered mark beside its number. A cell without a value
shows a lettered mark, and each reason (a model that did not train, the grids it paints when it refused one) is
written once, as a lettered footnote, however many cells it empties; a cell the refusal left partly made (a
sample sheet without some rows) shows the same letter beside its value.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence

from polyinr.tools.compare.cell import Cell


class _Footnotes:
    """Each distinct text once, under the mark it was first given (``[1]``, ``[2]``, … or ``(a)``, ``(b)``, …)."""

    def __init__(self, lettered: bool) -> None:
        self.lettered = lettered
        self.marks: dict[str, str] = {}

    def mark(self, text: str) -> str:
        if text not in self.marks:
            n = len(self.marks)
            self.marks[text] = f"({_letters(n)})" if self.lettered else f"[{n + 1}]"
        return self.marks[text]

    def lines(self) -> list[str]:
        return [f"- {mark} {text}" for text, mark in self.marks.items()]


def _letters(n: int) -> str:
    """a, b, …, z, aa, ab, …"""
    letters = string.ascii_lowercase
    return letters[n] if n < len(letters) else _letters(n // len(letters) - 1) + letters[n % len(letters)]


def markdown_table(
    rows: Mapping[str, Mapping[str, Cell]], names: Sequence[str], titles: Mapping[str, str]
) -> list[str]:
    """The lines of the table (one row per measurement ``names``, one column per model of ``rows``, titles from
    ``titles`` or the name) and, under it, its footnotes."""
    notes, reasons = _Footnotes(lettered=False), _Footnotes(lettered=True)
    models = list(rows)
    lines = ["| | unit | " + " | ".join(models) + " |", "|---|---|" + "---|" * len(models)]
    for name in names:
        cells = [rows[m].get(name, Cell(None, note="not measured for this model")) for m in models]
        measured = [c for c in cells if c.value is not None]
        shared = {c.note for c in measured}
        row_note = shared.pop() if len(shared) == 1 else None  # every measured cell's note, when they share one
        title = titles.get(name, name)
        unit = next((c.unit for c in measured if c.unit), "") + (f" {notes.mark(row_note)}" if row_note else "")
        values = []
        for cell in cells:
            if cell.value is None:  # a refused grid is named by what the model renders (the row says which grid)
                values.append(f"— {reasons.mark(cell.refused or cell.note or 'no value')}")
                continue
            marks = [notes.mark(cell.note)] if cell.note and cell.note != row_note else []
            marks += [reasons.mark(cell.refused)] if cell.refused else []
            values.append(" ".join([cell.number(), *marks]))
        lines.append("| " + " | ".join(v.replace("|", "/") for v in [title, unit, *values]) + " |")
    footnotes = notes.lines() + reasons.lines()
    return lines + (["", *footnotes] if footnotes else [])
