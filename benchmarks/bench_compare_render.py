"""`polyinr compare`'s rendering speed at 1× and 4× density: the old timing (one call of 8 renders at 1×, 2 at 4×)
against the new one (a batch of at least 262,144 pixels a call at either density), interleaved in rounds.

Untrained cpu-preset generators at 16² (speed does not depend on the weights); each round times every
(model, density, method) once, a call after its own warm-up; best and median megapixels/s over the rounds.

    python benchmarks/bench_compare_render.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from polyinr.grid import Grid
from polyinr.models.registry import create
from polyinr.sampling import iter_ws
from polyinr.tools.compare import render_speed


@torch.no_grad()
def old_timing(G, grid: Grid, batch: int) -> float:
    """Megapixels/s of one call of ``batch`` renders after a warm-up, as compare measured before."""
    ws = next(iter_ws(G, list(range(batch)), None, device="cpu", batch_size=batch))
    G.synthesize(ws, grid)
    start = time.perf_counter()
    G.synthesize(ws, grid)
    return batch * grid.num_pixels / (time.perf_counter() - start) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", default="poly-inr,inr-gan")
    parser.add_argument("--resolution", type=int, default=16)
    args = parser.parse_args()
    torch.manual_seed(0)
    models = {m: create(m, "cpu", img_resolution=args.resolution).eval() for m in args.models.split(",")}
    R, device = args.resolution, torch.device("cpu")
    cases = [(m, f, method) for m in models for f in (1, 4) for method in ("old", "new")]
    results: dict[tuple, list[float]] = {case: [] for case in cases}
    notes = {}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()}")
    for _ in range(args.rounds):
        for model, factor, method in cases:
            grid = Grid.frame(R * factor)
            if method == "old":
                results[(model, factor, method)].append(old_timing(models[model], grid, 8 if factor == 1 else 2))
            else:
                speed = render_speed(models[model], grid, device, rounds=1)
                results[(model, factor, method)].append(speed.megapixels_per_s)
                notes[(model, factor)] = speed.note(grid, rounds=1)
    print(f"load average at the end {os.getloadavg()}")
    print("| model | density | timing | best MP/s | median MP/s |")
    print("|---|---|---|---|---|")
    for (model, factor, method), values in results.items():
        what = f"{8 if factor == 1 else 2} renders a call" if method == "old" else notes[(model, factor)]
        print(
            f"| {model} | {factor}× ({R * factor}²) | {method}: {what} | {max(values):.3f} | "
            f"{statistics.median(values):.3f} |"
        )


if __name__ == "__main__":
    main()
