"""The peak memory of one big render, measured in a fresh process of its own.

:func:`~polyinr.tools.compare.measure.big_render_memory` runs ``python -m polyinr.tools.compare.memory_probe
SNAPSHOT SIZE OUT DEVICE``: the process loads the snapshot's generator, renders ``SIZE``² tile by tile to ``OUT``
and prints one line, ``<bytes> <what was measured>``. A process of its own, so that the peak is the render's and
not the comparison's (a forked child's high-water mark would start at its parent's pages).
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from polyinr.checkpoint import load_generator
from polyinr.sampling import iter_ws
from polyinr.tools.render import render_tiled

TILE = 512  # side of the tiles of the big render


def render_peak_memory(snapshot: Path, size: int, out: Path, device: torch.device) -> tuple[int, str]:
    """Render ``size``² of the snapshot's generator (seed 0, class 0) to ``out``; ``(peak bytes, what they are)``:
    the CUDA allocator's peak, or this process's peak resident memory on the CPU."""
    G = load_generator(snapshot, device)
    ws = next(iter_ws(G, [0], 0 if G.num_classes else None, device=device, batch_size=1))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    render_tiled(G, ws, G.grid_support.sized(G, size, size), out, tile=min(size, TILE))
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device), "CUDA allocator peak"
    return _peak_resident_bytes(), "peak RSS of the rendering process"


def _peak_resident_bytes() -> int:
    """This process's own high-water mark (``ru_maxrss`` may keep the forking parent's, across exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv: Sequence[str]) -> None:
    snapshot, size, out, device = argv
    peak, what = render_peak_memory(Path(snapshot), int(size), Path(out), torch.device(device))
    print(peak, what)


if __name__ == "__main__":
    main(sys.argv[1:])
