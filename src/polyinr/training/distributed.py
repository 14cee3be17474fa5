"""Scale-out with PyTorch's own engine: ``torchrun`` sets the environment, ``torch.distributed`` does the rest.

NCCL on GPUs, Gloo on CPU. Gradients are averaged with an all-reduce after each accumulated batch (as
StyleGAN3 does) rather than by the DistributedDataParallel wrapper, because GAN training needs what DDP's
reducer does not support: double backward for R1, and parameters switched on and off per phase.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist

from polyinr.device import resolve_device
from polyinr.errors import PolyinrError


def process_device(name: str | torch.device) -> torch.device:
    """This process's device: ``name`` resolved (``auto`` = CUDA when available), and under ``torchrun`` a CUDA
    device without an index becomes ``cuda:$LOCAL_RANK``, one GPU per process."""
    device = resolve_device(name)
    if device.type != "cuda" or "LOCAL_RANK" not in os.environ:
        return device
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if device.index is not None:
        if processes > 1:
            raise PolyinrError(
                f"each of the {processes} processes needs its own GPU, but all were given "
                f"{device}; give the device as cuda (process k uses cuda:LOCAL_RANK)"
            )
        return device
    index, count = local_rank(), torch.cuda.device_count()
    if index >= count:
        raise PolyinrError(f"the process of local rank {index} has no GPU of its own: this machine has {count}")
    return torch.device("cuda", index)


def init_from_environment(device: torch.device) -> None:
    """Join the process group that ``torchrun`` described in the environment (no-op for one process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_names(names: list[str]) -> list[str]:
    gathered: list[list[str] | None] = [None] * world_size()
    dist.all_gather_object(gathered, names)
    return sorted({n for part in gathered for n in (part or [])})


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Sum the gradients of ``params`` over all processes (each process already scaled its share)."""
    params = [p for p in params if p.grad is not None]
    if world_size() <= 1 or not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    for p, g in zip(params, flat.split([p.numel() for p in params]), strict=True):
        p.grad.copy_(g.view_as(p))


def broadcast_module(module: torch.nn.Module) -> None:
    """Make every process start from rank 0's parameters and buffers."""
    if world_size() <= 1:
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()
