"""Batches of a fixed order, read by worker processes: the same bytes with any number of workers."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from polyinr.data.loading import step_batches


class _PidDataset(Dataset):
    """Item ``i``: a [3, 2, 2] uint8 image of value ``i`` and label ``i``; records which process read it."""

    def __init__(self, pid_dir) -> None:
        self.pid_dir = pid_dir

    def __len__(self) -> int:
        return 50

    def __getitem__(self, idx: int):
        (self.pid_dir / str(os.getpid())).touch()
        return torch.full((3, 2, 2), idx, dtype=torch.uint8), idx


def _indices_at(nimg: int) -> np.ndarray:
    """A shuffled [2, 3] block of indices per step, a pure function of the images shown."""
    return np.random.default_rng(nimg).permutation(50)[:6].reshape(2, 3)


def test_workers_give_the_same_batches_in_the_same_order(tmp_path):
    runs = {}
    for workers in (0, 2):
        pid_dir = tmp_path / f"pids{workers}"
        pid_dir.mkdir()
        runs[workers] = list(step_batches(_PidDataset(pid_dir), _indices_at, 12, 60, 6, workers=workers))
        pids = {int(p.name) for p in pid_dir.iterdir()}
        assert (pids == {os.getpid()}) if workers == 0 else (len(pids) == 2 and os.getpid() not in pids)
    assert len(runs[0]) == len(runs[2]) == 8  # steps at 12, 18, …, 54 images
    for step, ((img0, lab0), (img2, lab2)) in enumerate(zip(runs[0], runs[2], strict=True)):
        expected = _indices_at(12 + 6 * step).reshape(-1)
        assert lab0.tolist() == expected.tolist() and torch.equal(lab0, lab2)
        assert img0.dtype == torch.uint8 and img0.shape == (6, 3, 2, 2) and torch.equal(img0, img2)
