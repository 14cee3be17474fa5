"""``import polyinr`` makes OpenMP wait passively (shared CPUs) unless the user chose a wait policy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PROBE = "import os, polyinr; print(os.environ['OMP_WAIT_POLICY'])"


def _policy(env: dict[str, str]) -> str:
    env = {**env, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True).stdout


def test_import_sets_passive_waiting_and_keeps_a_users_choice():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy(env).strip() == "PASSIVE"
    assert _policy({**env, "OMP_WAIT_POLICY": "ACTIVE"}).strip() == "ACTIVE"
