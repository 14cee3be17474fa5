"""The environment of a test's child process, read when the child starts."""

from __future__ import annotations

import os


def child_env() -> dict[str, str]:
    """The environment now, one thread, unbuffered output: the test's isolated cache included (a copy taken at
    import, before the fixtures run, would send the child's feature spaces and statistics to the user's cache)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
