"""benchmarks/device_check.py on a machine without CUDA: one line, exit status 0, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the script runs the whole check")
def test_device_check_says_so_in_one_line_and_exits_0_without_cuda(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "device_check.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().count("\n") == 0 and "no CUDA device" in proc.stdout
    assert not (tmp_path / "out").exists()
