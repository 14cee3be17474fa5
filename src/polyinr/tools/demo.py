"""The README's main job: train the CPU preset on the built-in digits, then show what a continuous image can do.

Writes, next to the run directory: a sample grid (one row per class) at the training resolution, the same
samples on a 4× denser grid, an extrapolation of the same samples beyond the frame's borders, and a sheet of
real digits beside generated ones, one row per class. Measures the run's quality in the digits feature space
(:mod:`polyinr.metrics.feature_spaces`): samples recognised as their digit, within-class diversity vs real, FID.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyinr.checkpoint import latest_snapshot, load_generator
from polyinr.data.datasets import open_dataset
from polyinr.grid import Grid
from polyinr.image_io import image_grid, save_image
from polyinr.metrics import compute_metric, evaluate_snapshot, metric_goal
from polyinr.sampling import ws_for
from polyinr.tools.render import render_ws
from polyinr.training.loop import TickReport, training_loop
from polyinr.training.options import resolve_options

SAMPLES_PER_CLASS = 8
DEMO_RESOLUTION = 16  # the scans are 8×8: 16² shows them whole and trains fast on two cores
QUALITY_METRICS = ("cas_digits", "div_digits", "pr_digits", "fid_digits")  # 2,000 samples each


@torch.no_grad()
def render_showcase(G, grid: Grid, seeds_per_class: int = SAMPLES_PER_CLASS) -> np.ndarray:
    """One row per class (or one row of seeds when unconditional), rendered on ``grid``: ``[H, W, 3]``."""
    rows = []
    for class_idx in range(G.num_classes) if G.num_classes else [None]:
        rows.extend(render_ws(G, ws_for(G, seeds=range(seeds_per_class), classes=class_idx), grid))
    return image_grid(rows, seeds_per_class, len(rows) // seeds_per_class)


@torch.no_grad()
def real_vs_generated(G, dataset, grid: Grid, per_side: int = SAMPLES_PER_CLASS) -> np.ndarray:
    """One row per class: ``per_side`` real images of the class, a grey gap, ``per_side`` samples. ``[H, W, 3]``.

    Real images are the dataset's first of each class, read at the grid's height; samples use seeds 0….
    """
    rows = []
    for class_idx in range(G.num_classes):
        real_idx = np.flatnonzero(dataset.labels == class_idx)[:per_side]
        reals = [dataset[int(i)][0].permute(1, 2, 0).numpy() for i in real_idx]
        fakes = list(render_ws(G, ws_for(G, seeds=range(per_side), classes=class_idx), grid))
        blank, gap = np.zeros_like(fakes[0]), np.full_like(fakes[0], 128)
        rows.extend(reals + [blank] * (per_side - len(reals)) + [gap] + fakes)
    return image_grid(rows, 2 * per_side + 1, G.num_classes)


def measure_quality(G, device: torch.device | str = "cpu") -> dict[str, float]:
    """The demo's quality figures in the digits feature space (see :data:`QUALITY_METRICS`)."""
    results: dict[str, float] = {}
    for name in QUALITY_METRICS:
        results.update(compute_metric(name, G, None, device=device))
    return results


def quality_line(results: dict[str, float]) -> str:
    """One line a person can read: recognised %, diversity vs real (worst class), then recall, precision and FID,
    named by the feature space they are measured in (the digits LeNet, never Inception or VGG16)."""
    return (
        f"{100 * results['cas_digits']:.1f} % of samples recognised as their digit, within-class diversity "
        f"{results['div_digits']:.2f} of real (lowest class {results['div_digits_min']:.2f}); in the digits "
        f"space: recall {results['pr_digits_recall']:.2f}, precision {results['pr_digits_precision']:.2f}, "
        f"FID {results['fid_digits']:.2f}"
    )


def run_demo(
    outdir: str | Path,
    kimg: float | None = None,
    resume: str = "auto",
    on_tick: Callable[[TickReport], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Train (or resume) the demo run, write the pictures and measure it.

    Returns the paths (run, checkpoint, pictures) and ``quality``: the figures of :func:`measure_quality`.
    """
    outdir = Path(outdir)
    options = resolve_options(
        "cpu", data="builtin:digits", cond=True, resolution=DEMO_RESOLUTION, outdir=str(outdir), kimg=kimg, workers=0
    )
    run_dir = training_loop(
        options,
        resume=resume,
        on_tick=on_tick,
        on_message=on_message,
        evaluate=evaluate_snapshot,
        on_step=on_step,
        goal=metric_goal,
    )
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
        "real_vs_generated": save_image(
            real_vs_generated(G, open_dataset("builtin:digits", resolution=4 * R, cond=True), Grid.frame(4 * R)),
            outdir / "real_vs_generated.png",
        ),
    }
    if on_message is not None:
        on_message("measuring quality in the digits feature space")
    return {**paths, "quality": measure_quality(G)}
