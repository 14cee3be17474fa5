"""Loading training batches in worker processes, in an order fixed in advance.

The training loop decides which images each step uses (a pure function of the images shown so far, so a
resumed run continues exactly); :func:`step_batches` only fetches them. With ``workers`` > 0 the images are
read and stacked by a :class:`torch.utils.data.DataLoader` in that many processes; the DataLoader returns
batches in the order it was asked for them, so the batches are the same, bit for bit, with any number of
workers (0 = fetch in this process). The workers ignore SIGINT (the terminal sends Ctrl+C to them too): the
training process decides when to stop, at the end of a step, and closes them.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

PREFETCH_BATCHES = 2  # batches each worker reads ahead


class StepIndices(Sampler[list[int]]):
    """For each step from ``start_nimg`` until ``end_nimg`` in steps of ``step_nimg`` images, the dataset indices
    ``indices_at(nimg)`` (any shape) as one flat list: the batch sampler of :func:`step_batches`."""

    def __init__(self, indices_at: Callable[[int], np.ndarray], start_nimg: int, end_nimg: int, step_nimg: int) -> None:
        self.indices_at = indices_at
        self.steps = range(start_nimg, end_nimg, step_nimg)

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[list[int]]:
        for nimg in self.steps:
            yield [int(i) for i in np.asarray(self.indices_at(nimg)).reshape(-1)]


def step_batches(
    dataset: Dataset,
    indices_at: Callable[[int], np.ndarray],
    start_nimg: int,
    end_nimg: int,
    step_nimg: int,
    workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(images uint8 [N, 3, R, R], labels int64 [N])`` for each step from ``start_nimg`` (inclusive) to
    ``end_nimg`` (exclusive), ``N`` = the number of indices ``indices_at(nimg)`` names, read by ``workers``
    processes (0 = this one), which read the next batches while the training step runs.

    ``pin_memory`` (for a CUDA device) returns the batches in page-locked memory, so the copy to the GPU can
    be issued with ``non_blocking=True`` and overlap the step's work.
    """
    loader = DataLoader(
        dataset,
        batch_sampler=StepIndices(indices_at, start_nimg, end_nimg, step_nimg),
        num_workers=workers,
        prefetch_factor=PREFETCH_BATCHES if workers > 0 else None,
        pin_memory=pin_memory,
        worker_init_fn=_ignore_sigint,
    )
    yield from loader


def _ignore_sigint(_worker_id: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
