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
        if self.value is None:
            return f"— ({self.note})"
        if isinstance(self.value, float):
            shown = "inf" if math.isinf(self.value) else f"{self.value:.4g}"
        elif isinstance(self.value, int):
            shown = f"{self.value:,}"
        else:
            shown = str(self.value)
        return f"{shown} {self.unit}".strip() + (f" ({self.note})" if self.note else "")
