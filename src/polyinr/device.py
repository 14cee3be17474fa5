"""Choosing the device: an argument, never an assumption (CPU is the tested default)."""

from __future__ import annotations

import torch

from polyinr.errors import PolyinrError


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` = CUDA when available, else CPU; ``cpu``, ``cuda``, ``cuda:N`` are checked."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise PolyinrError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PolyinrError("CUDA was asked for but is not available on this machine; use the CPU")
    return device
