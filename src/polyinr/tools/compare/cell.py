"""One value of a comparison's table: :class:`Cell`, a value with its unit or the reason why there is none."""

from __future__ import annotations

import math
from dataclasses import dataclass

from polyinr.models.generator import GridRefused


@dataclass
class Cell:
    """One value of the table: ``value`` with its ``unit``, or ``note`` saying why there is none.

    ``refused`` is what the model renders when it refused a grid this cell needed (the words of
    :class:`~polyinr.models.generator.GridRefused`, the same for each grid one model refuses): the cell is empty, or
    (a sample sheet) partly made. ``per_seed`` holds each training seed's value when the cell is their mean.
    """

    value: float | int | str | None = None
    unit: str = ""
    note: str | None = None
    refused: str | None = None
    per_seed: dict[str, float] | None = None  # seed (a JSON key) → value

    @classmethod
    def of_refusal(cls, error: GridRefused, note: str | None = None) -> Cell:
        """The empty cell of a grid the model refused: ``note`` (default: the refusal's message) and what the
        model renders instead."""
        return cls(None, note=note or str(error), refused=error.renders)

    def text(self) -> str:
        """The value with its unit and note, or "— (why not)"."""
        if self.value is None:
            return f"— ({self.note})"
        return f"{self.number()} {self.unit}".strip() + (f" ({self.note})" if self.note else "")

    def number(self) -> str:
        """The value alone, as the table shows it (empty when there is none)."""
        if self.value is None:
            return ""
        if isinstance(self.value, float):
            return "inf" if math.isinf(self.value) else f"{self.value:.4g}"
        if isinstance(self.value, int):
            return f"{self.value:,}"
        return str(self.value)
