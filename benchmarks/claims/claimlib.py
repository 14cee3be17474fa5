"""What the claim scripts share: paper networks built for a resolution, interleaved timing, the machine, the output.

The scripts beside this file import it (``python benchmarks/claims/NAME.py`` puts this folder on the path).
Timing runs every case in turn each round, after one warm-up call each, so load from other processes hits all
cases alike; the best round is the figure, the median shows the noise, and the load average is recorded.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from polyinr.grid import Grid
from polyinr.models.generator import Generator
from polyinr.models.registry import create, get_entry, list_models, resolve_config
from polyinr.sampling import iter_ws
from polyinr.training.recipes import PAPER, preset_size


def paper_presets() -> list[tuple[str, str]]:
    """``(model, preset)`` for every paper-sized preset of every registered model, in name order."""
    return [(m, p) for m in list_models() for p in sorted(get_entry(m).presets) if preset_size(p) == PAPER]


def native_resolution(model: str, preset: str) -> int:
    """The side of the images the preset's own network renders (a canvas model: its training patch)."""
    return resolve_config(model, preset).img_resolution


def growth(native: int, resolution: int) -> list[int]:
    """Stage resolutions of a run that takes a ``native``-resolution network to ``resolution`` by ×2 stages, as
    the papers grow theirs; ``[resolution]`` (the layout built at that size) when no such run exists."""
    stages = [native]
    while stages[-1] < resolution:
        stages.append(2 * stages[-1])
    return stages if stages[-1] == resolution else [resolution]


def network_for(model: str, preset: str, resolution: int) -> Generator:
    """The preset's network for ``resolution``² images as training builds it (the model's own stage settings:
    StyleGAN-XL grows heads on its stem, the others size their layout to the resolution, a canvas model keeps
    its patch), random weights, in eval mode without gradients."""
    stages = growth(native_resolution(model, preset), resolution)
    settings = get_entry(model).generator_cls.stage_settings(stages, len(stages) - 1)
    torch.manual_seed(0)
    return create(model, preset, **settings).eval().requires_grad_(False)


def image_grid(G: Generator, resolution: int) -> Grid:
    """A ``resolution``² image of ``G``'s default view (the frame; a canvas model's pixel lattice)."""
    return G.grid_support.sized(G, resolution, resolution)


def one_ws(G: Generator) -> torch.Tensor:
    """``ws [1, num_ws, w_dim]`` of seed 0 (class 0 for a conditional model), mapped once, outside any timing."""
    return next(iter_ws(G, [0], 0 if G.num_classes else None, batch_size=1))


def interleaved(cases: dict[str, Callable[[], object]], rounds: int) -> dict[str, dict[str, float]]:
    """Best and median seconds of each case: one warm-up call each, then ``rounds`` rounds of every case in turn."""
    for fn in cases.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: {"best_s": min(t), "median_s": statistics.median(t)} for name, t in times.items()}


def machine() -> dict[str, Any]:
    """The CPU, its threads, the software and the load average now."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def panel_figure(
    titles: Sequence[str], rows: dict[str, Sequence[np.ndarray | None]], panel: int, label_width: int
) -> np.ndarray:
    """A white sheet, uint8 ``[H, W, 3]``: ``titles`` over the columns, then a row per entry of ``rows`` (its name
    in a ``label_width``-pixel column, then its images, uint8 ``[h, w, 3]``, each resized to ``panel``² by nearest
    neighbour; None leaves its place blank)."""
    font = ImageFont.load_default()
    header = 16
    canvas = Image.new("RGB", (label_width + len(titles) * panel, header + len(rows) * panel), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for col, title in enumerate(titles):
        draw.text((label_width + col * panel + 4, 2), title, fill=(0, 0, 0), font=font)
    for row, (name, images) in enumerate(rows.items()):
        y = header + row * panel
        draw.text((4, y + panel // 2), name, fill=(0, 0, 0), font=font)
        for col, image in enumerate(images):
            if image is not None:
                pixels = Image.fromarray(image).resize((panel, panel), Image.Resampling.NEAREST)
                canvas.paste(pixels, (label_width + col * panel, y))
    return np.asarray(canvas)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def write_outputs(out: Path, stem: str, markdown: str, report: dict[str, Any]) -> None:
    """``out/stem.md`` and ``out/stem.json``; prints the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(markdown + "\n")
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(markdown)
    print(f"\nwrote {out / stem}.md and .json")
