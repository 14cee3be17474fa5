"""The README's main job: train the CPU preset on the built-in digits, then show what a continuous image can do.

Writes, next to the run directory: a sample grid (one row per class) at the training resolution, the same
samples on a 4× denser grid, and an extrapolation of the same samples beyond the frame's borders.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from polyinr.checkpoint import latest_snapshot, load_generator
from polyinr.grid import Grid
from polyinr.image_io import image_grid, save_image
from polyinr.metrics import evaluate_snapshot
from polyinr.sampling import ws_for
from polyinr.tools.render import render_ws
from polyinr.training.loop import TickReport, training_loop
from polyinr.training.options import resolve_options

SAMPLES_PER_CLASS = 8
DEMO_RESOLUTION = 16  # the scans are 8×8: 16² shows them whole and trains fast on two cores


@torch.no_grad()
def render_showcase(G, grid: Grid, seeds_per_class: int = SAMPLES_PER_CLASS) -> np.ndarray:
    """One row per class (or one row of seeds when unconditional), rendered on ``grid``: ``[H, W, 3]``."""
    rows = []
    for class_idx in range(G.num_classes) if G.num_classes else [None]:
        rows.extend(render_ws(G, ws_for(G, seeds=range(seeds_per_class), classes=class_idx), grid))
    return image_grid(rows, seeds_per_class, len(rows) // seeds_per_class)


def run_demo(
    outdir: str | Path, kimg: float | None = None, resume: str = "auto",
    on_tick: Callable[[TickReport], None] | None = None, on_message: Callable[[str], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> dict[str, Path]:  # fmt: skip
    """Train (or resume) the demo run, then write the three pictures; returns their paths and the run."""
    outdir = Path(outdir)
    options = resolve_options(
        "cpu", data="builtin:digits", cond=True, resolution=DEMO_RESOLUTION, outdir=str(outdir), kimg=kimg, workers=0
    )
    run_dir = training_loop(options, resume=resume, on_tick=on_tick, on_message=on_message, evaluate=evaluate_snapshot,
                            on_step=on_step)  # fmt: skip
    G = load_generator(latest_snapshot(run_dir))
    R = G.img_resolution
    paths = {
        "run": run_dir,
        "checkpoint": latest_snapshot(run_dir),
        "samples": save_image(render_showcase(G, Grid.frame(R)), outdir / f"samples_{R}x{R}.png"),
        "dense": save_image(render_showcase(G, Grid.frame(4 * R)), outdir / f"samples_{4 * R}x{4 * R}.png"),
        "extrapolation": save_image(
            render_showcase(G, Grid.window(-0.5, -0.5, 1.5, 1.5, 4 * R, 4 * R)), outdir / "extrapolation_-0.5_1.5.png"
        ),
    }
    return paths
