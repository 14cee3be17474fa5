"""Cost of a generator, to report beside its quality: parameters, multiply-adds, speed and peak memory.

Multiply-adds are counted by PyTorch's ``FlopCounterMode`` (matrix products and convolutions, the bulk of the
work; element-wise operations are not counted) for one image of the whole generator, mapping included, at the
given resolution. Speed is images per second of ``G(z, c, grid)`` at a batch size, after a warm-up call. Peak
memory is the CUDA allocator's peak on a GPU, and the process's peak resident set size on a CPU (which includes
everything the process has held so far).
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from polyinr.errors import PolyinrError


@dataclass(frozen=True)
class CostReport:
    model: str
    parameters: int  # all parameters
    mapping_parameters: int
    synthesis_parameters: int
    resolution: int  # pixels a side of the measured images
    macs_per_image: int  # multiply-adds of matrix products and convolutions, one image
    batch_size: int
    images_per_second: float
    peak_memory_bytes: int
    memory_kind: str  # what peak_memory_bytes measures
    device: str
    dtype: str

    def rows(self) -> list[tuple[str, str]]:
        """``(label, value)`` pairs for a table."""
        return [
            ("model", self.model),
            (
                "parameters",
                f"{self.parameters:,} (mapping {self.mapping_parameters:,}, synthesis {self.synthesis_parameters:,})",
            ),
            ("resolution", f"{self.resolution}x{self.resolution}"),
            ("multiply-adds / image", f"{self.macs_per_image:,} ({self.macs_per_image / 1e9:.3f} G)"),
            ("images / s", f"{self.images_per_second:.2f} at batch {self.batch_size}"),
            ("peak memory", f"{self.peak_memory_bytes / 2**20:.1f} MiB ({self.memory_kind})"),
            ("device, dtype", f"{self.device}, {self.dtype}"),
        ]


def _inputs(G: Any, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(batch_size, G.z_dim, generator=gen).to(device)
    c = torch.zeros(batch_size, dtype=torch.long, device=device) if G.num_classes else None
    return z, c


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def count_macs(G: Any, resolution: int, device: torch.device | str = "cpu") -> int:
    """Multiply-adds of matrix products and convolutions for one ``resolution``² image of ``G`` (its default view:
    the frame; a canvas model's pixel lattice)."""
    device = torch.device(device)
    z, c = _inputs(G, 1, device)
    with FlopCounterMode(display=False) as counter:
        G(z, c, grid=G.grid_support.sized(G, resolution, resolution))
    return counter.get_total_flops() // 2


@torch.no_grad()
def measure_cost(
    G: Any,
    resolution: int | None = None,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    iterations: int = 3,
) -> CostReport:
    """Measure ``G`` (already on ``device``) at ``resolution`` (default: native), timing ``iterations`` batches.

    ``dtype`` other than float32 runs the generator under autocast to that dtype.
    """
    device = torch.device(device)
    resolution = resolution or G.img_resolution
    if resolution < 1 or batch_size < 1 or iterations < 1:
        raise PolyinrError("resolution, batch size and iterations must be positive")
    autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    grid = G.grid_support.sized(G, resolution, resolution)
    z, c = _inputs(G, batch_size, device)
    with autocast:
        G(z, c, grid=grid)  # warm-up
        _synchronize(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        for _ in range(iterations):
            G(z, c, grid=grid)
        _synchronize(device)
        seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(device), "CUDA allocator peak"
    else:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak, kind = rss if sys.platform == "darwin" else rss * 1024, "process peak RSS"
    return CostReport(
        model=getattr(G, "model_name", type(G).__name__),
        parameters=sum(p.numel() for p in G.parameters()),
        mapping_parameters=sum(p.numel() for p in G.mapping.parameters()),
        synthesis_parameters=sum(p.numel() for p in G.synthesis.parameters()),
        resolution=resolution,
        macs_per_image=count_macs(G, resolution, device),
        batch_size=batch_size,
        images_per_second=batch_size * iterations / seconds,
        peak_memory_bytes=int(peak),
        memory_kind=kind,
        device=str(device),
        dtype=str(dtype).removeprefix("torch."),
    )
