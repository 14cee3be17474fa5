"""Reading the small text files a user gives us (configs, run records) with a bound on the bytes read.

A path may name anything: ``/dev/zero``, an endless stream, a multi-gigabyte file given by mistake. Reading at
most ``limit + 1`` bytes tells a small file from one that is too large without ever holding more.
"""

from __future__ import annotations

from pathlib import Path

SMALL_FILE_BYTES = 1 << 20  # 1 MiB: far above any config or run record polyinr reads


def read_small_text(path: str | Path, limit: int = SMALL_FILE_BYTES) -> str:
    """The UTF-8 text of ``path``, reading at most ``limit + 1`` bytes.

    Raises ``OSError`` when the file cannot be read and ``ValueError`` when it holds more than ``limit`` bytes
    or is not UTF-8 text (the errors a parser of its text raises too, so one ``except`` serves both).
    """
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"it holds more than {limit:,} bytes, more than a file of this kind ever needs")
    return data.decode("utf-8")
