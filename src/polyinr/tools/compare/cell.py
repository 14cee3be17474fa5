"""One value of a comparison's table: :class:`Cell`, a value with its unit or the reason why there is none."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Cell:
    """One value of the table: ``value`` with its ``unit``, or ``note`` saying why there is none."""

    value: float | int | str | None = None
    unit: str = ""
    note: str | None = None

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
