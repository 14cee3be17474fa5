"""The one progress helper: a tqdm bar on stderr, quiet when asked."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm


def progress_bar(
    total: int | None = None, desc: str = "", unit: str = "it", disable: bool = False, **kwargs: Any
) -> tqdm:
    """A progress bar on stderr; use as a context manager and call ``update(n)``."""
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True, leave=True, **kwargs)
