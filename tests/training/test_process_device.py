"""Under torchrun each process trains on its own GPU, cuda:$LOCAL_RANK (tested with the environment set)."""

from __future__ import annotations

import pytest
import torch

from polyinr.errors import PolyinrError
from polyinr.training.distributed import process_device


@pytest.fixture
def two_gpus(monkeypatch):
    """A machine that says it has two CUDA devices (nothing touches a real one)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def _torchrun(monkeypatch, local_rank: int, world_size: int = 2) -> None:
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    monkeypatch.setenv("RANK", str(local_rank))
    monkeypatch.setenv("WORLD_SIZE", str(world_size))


@pytest.mark.parametrize("name", ["auto", "cuda"])
def test_each_torchrun_process_takes_the_gpu_of_its_local_rank(monkeypatch, two_gpus, name):
    for rank in (0, 1):
        _torchrun(monkeypatch, rank)
        assert process_device(name) == torch.device("cuda", rank)


def test_without_torchrun_the_device_is_as_given(monkeypatch, two_gpus):
    for var in ("LOCAL_RANK", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert process_device("cuda") == torch.device("cuda")
    assert process_device("cuda:1") == torch.device("cuda", 1)


def test_cpu_processes_stay_on_the_cpu(monkeypatch):
    _torchrun(monkeypatch, 1)
    assert process_device("cpu") == torch.device("cpu")


def test_one_gpu_for_all_processes_or_too_few_gpus_is_refused(monkeypatch, two_gpus):
    _torchrun(monkeypatch, 1)
    with pytest.raises(PolyinrError, match=r"needs its own GPU.*cuda:1"):
        process_device("cuda:1")
    _torchrun(monkeypatch, 2, world_size=3)
    with pytest.raises(PolyinrError, match=r"local rank 2 has no GPU.*has 2"):
        process_device("cuda")
