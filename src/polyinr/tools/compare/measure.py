"""Measuring a trained model of a comparison: every cell of its row, cached in ``runs/<model>/evaluation.json``.

Quality metrics with the detectors available without a download, equivariance where the grid contract allows,
parameters, multiply-adds per pixel, training images/s (the run's ``stats.jsonl``), rendering megapixels/s at 1×
and 4× density (4× the pixels per side; each timed call renders a batch of at least :data:`SPEED_PIXELS` pixels,
so both densities pay the same per-call overhead), the peak memory of one big render and a sample sheet.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from polyinr.atomic import atomic_write_json
from polyinr.checkpoint import STATE_JSON, latest_snapshot, load_generator
from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.metrics import compute_metric, metric_detector, metric_goal
from polyinr.metrics.api import named_progress
from polyinr.metrics.cost import count_macs
from polyinr.metrics.sampling import Progress
from polyinr.models.generator import GridRefused
from polyinr.sampling import iter_ws
from polyinr.tools.compare import memory_probe
from polyinr.tools.compare.cell import Cell
from polyinr.tools.compare.detectors import detector_unavailable
from polyinr.tools.compare.runs import model_dir, read_json, training_options
from polyinr.tools.compare.settings import CompareSettings
from polyinr.tools.compare.sheets import sample_sheet
from polyinr.training.setup import open_training_data
from polyinr.training.snapshot import best_snapshot, recorded_metrics

SPEED_ROUNDS = 3  # timed renders per density (the best is reported)
SPEED_PIXELS = 1 << 18  # pixels a timed render call paints at least (a batch of small images)
EVALUATION_VERSION = 7  # bump when a measurement changes: cached evaluations of older versions are redone


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class RenderSpeed:
    """What :func:`render_speed` timed: ``batch`` images of ``grid`` a call, ``pixels_per_call`` in all."""

    megapixels_per_s: float  # pixels_per_call / seconds
    batch: int
    pixels_per_call: int
    seconds: float  # the fastest call

    def note(self, grid: Grid, rounds: int = SPEED_ROUNDS) -> str:
        return (
            f"{grid.height}x{grid.width} renders, {self.batch} a call ({self.pixels_per_call:,} px), best of "
            f"{rounds} calls after a warm-up"
        )


@torch.no_grad()
def render_speed(
    G: Any, grid: Grid, device: torch.device, min_pixels: int = SPEED_PIXELS, rounds: int = SPEED_ROUNDS
) -> RenderSpeed:
    """Megapixels per second of ``G.synthesize`` on ``grid``, for a batch of at least ``min_pixels`` pixels a call
    (so small renders are not timed by their per-call overhead): the fastest of ``rounds`` calls after a warm-up.
    The latents are mapped beforehand: only the synthesis is timed."""
    batch = max(1, math.ceil(min_pixels / grid.num_pixels))
    ws = next(iter_ws(G, list(range(batch)), None if not G.num_classes else 0, device=device, batch_size=batch))
    G.synthesize(ws, grid)
    best = math.inf
    for _ in range(rounds):
        _synchronize(device)
        start = time.perf_counter()
        G.synthesize(ws, grid)
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    pixels = batch * grid.num_pixels
    return RenderSpeed(pixels / best / 1e6, batch, pixels, best)


def big_render_memory(G: Any, snapshot: Path, size: int, device: torch.device, scratch: Path) -> Cell:
    """Peak memory of one ``size``² render of ``G``'s default view (the frame; a canvas model's lattice), tiles
    where the contract allows them, measured in a fresh process; "cannot" with the contract's reason when the
    generator cannot paint that grid."""
    grid = G.grid_support.sized(G, size, size)
    try:
        G.check_grid(grid)
        if size > memory_probe.TILE:
            G.check_tiles(memory_probe.TILE, memory_probe.TILE)
    except GridRefused as e:
        return Cell.of_refusal(e, note=f"cannot: {e}")
    out = scratch / f"big-{size}.png"
    probe = [sys.executable, "-m", memory_probe.__name__, str(snapshot), str(size), str(out), str(device)]
    try:
        result = subprocess.run(probe, capture_output=True, text=True)
    finally:
        out.unlink(missing_ok=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        return Cell(None, note=f"cannot: the render failed: {last}")
    peak, _, kind = result.stdout.strip().splitlines()[-1].partition(" ")
    return Cell(round(int(peak) / 2**20, 1), "MiB", kind)


def macs_cell(G: Any) -> Cell:
    """Multiply-adds per pixel: the model's own count, else counted by PyTorch's FlopCounterMode at the native
    resolution (matrix products and convolutions, mapping included)."""
    own = G.macs_per_pixel()
    if own is not None:
        return Cell(int(own), "MACs/px", "synthesis, the model's count")
    try:
        counted = count_macs(G, G.img_resolution, next(G.parameters()).device)
    except (RuntimeError, PolyinrError) as e:
        return Cell(None, note=f"unknown: {e}")
    return Cell(round(counted / G.img_resolution**2), "MACs/px", "counted by FlopCounterMode")


def training_speed(run_dir: Path) -> Cell:
    """Median training images/s over the run's ticks (``stats.jsonl``, ``Timing/images_per_sec``)."""
    values = []
    for line in (run_dir / "stats.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            value = json.loads(line).get("Timing/images_per_sec")
        except ValueError:
            continue
        if value is not None:
            values.append(value)
    if not values:
        return Cell(None, note="no ticks in stats.jsonl")
    return Cell(round(statistics.median(values), 2), "img/s", f"median of {len(values)} ticks")


def measured_snapshot(settings: CompareSettings, run_dir: Path, latest: Path) -> Path:
    """The snapshot a comparison measures: when models stop at a plateau of the curve metric, the last stage's
    snapshot where that metric was best (a curve can worsen before the plateau rule stops it); else the newest,
    ``latest``."""
    goal = metric_goal(settings.curve_metric) if settings.plateau is not None and settings.curve_metric else None
    if goal is None:
        return latest
    stage = json.loads((latest / STATE_JSON).read_text(encoding="utf-8")).get("stage", 0)
    best = best_snapshot(run_dir, stage, settings.curve_metric, *goal)
    return latest if best is None else best[0]


def training_reached(settings: CompareSettings, latest: Path, measured: Path) -> dict[str, Cell]:
    """How far the run trained (to snapshot ``latest``): ``trained_kimg`` and ``training_time`` (the ticks' time,
    without snapshots and their metrics); the kimg of ``measured`` when the row measures an earlier snapshot."""
    state = json.loads((latest / STATE_JSON).read_text(encoding="utf-8"))
    kimg = state["cur_nimg"] / 1000
    seconds = state.get("train_seconds")  # None: a run from before the training time was recorded
    notes = [] if kimg >= settings.kimg else [f"stopped early, of {settings.kimg:g}{_why_early(settings, seconds)}"]
    if measured != latest:
        measured_kimg = json.loads((measured / STATE_JSON).read_text(encoding="utf-8"))["cur_nimg"] / 1000
        notes.append(f"measured at its best {settings.curve_metric} snapshot, {measured_kimg:g} kimg")
    return {
        "trained_kimg": Cell(kimg, "kimg", "; ".join(notes) or None),
        "training_time": Cell(None, note="not recorded by the run")
        if seconds is None
        else Cell(round(seconds / 60, 2), "min", "snapshots and their metrics aside"),
    }


def _why_early(settings: CompareSettings, train_seconds: float | None) -> str:
    """Why a finished run ended before its kimg: its time budget was spent, else the plateau rule stopped it (the
    only two ways a comparison ends a run early); empty when the run did not record its training time."""
    if settings.minutes is not None:
        if train_seconds is None:
            return ""
        if train_seconds >= settings.minutes * 60:
            return f": its {settings.minutes:g} min of training were spent"
    return f": {settings.curve_metric} reached a plateau" if settings.plateau is not None else ""


def metric_cells(
    names: Sequence[str],
    G: Any,
    dataset: Any,
    device: torch.device,
    detectors: dict[str, Any] | None = None,
    on_progress: Progress | None = None,
    recorded: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, Cell]:
    """Each metric's value(s), or why it is not computed (a detector missing offline, a refused grid, a metric
    the model or data cannot give). ``detectors`` replaces named detectors (see
    :func:`~polyinr.metrics.compute_metric`); ``on_progress(stage, done, total)`` follows each metric's passes,
    each stage named after its metric. A metric in ``recorded`` (the results the training recorded at this
    snapshot: the curve metric) is taken from there, not measured again."""
    cells: dict[str, Cell] = {}
    for name in names:
        missing = detector_unavailable(name, detectors)
        if missing is not None:
            cells[name] = Cell(None, note=missing)
            continue
        unit = "dB" if name.startswith("eq") else ""
        try:
            values = (recorded or {}).get(name) or compute_metric(
                name,
                G,
                dataset,
                device=device,
                download=False,
                detectors=detectors,
                on_progress=named_progress(name, on_progress),
            )
        except GridRefused as e:
            cells[name] = Cell.of_refusal(e)
            continue
        except PolyinrError as e:  # a metric this model or data cannot give
            cells[name] = Cell(None, note=str(e))
            continue
        detector = metric_detector(name, detectors, dataset)  # after the metric: a space is trained when first used
        for key, value in values.items():
            cells[key] = Cell(float(value), unit, None if detector == "none" else f"detector {detector}")
    return cells


def evaluate_model(
    settings: CompareSettings,
    model: str,
    seed: int,
    run_dir: Path,
    outdir: Path,
    on_message: Callable[[str], None] | None = None,
    detectors: dict[str, Any] | None = None,
    on_progress: Progress | None = None,
) -> dict[str, Cell]:
    """Every cell of the row of ``model``'s run with training ``seed`` (cached in its folder's
    ``evaluation.json`` for the same settings); ``on_progress(stage, done, total)`` follows the metrics' passes.
    The first training seed's row has every cell; another seed's only what differs between seeds: the training
    it reached and the metrics (its architecture, speed and memory are the first's; its samples are not shown)."""
    folder = model_dir(outdir, model, seed)
    latest = latest_snapshot(run_dir)
    snapshot = measured_snapshot(settings, run_dir, latest)
    whole = seed == settings.train_seeds[0]
    key = {
        "settings": settings.one_model_json(),
        "snapshot": str(snapshot),
        "whole": whole,
        "version": EVALUATION_VERSION,
    }
    cached = read_json(folder / "evaluation.json")
    if cached is not None and cached.get("key") == key:
        order = cached.get("order") or list(cached["cells"])  # the file's keys are sorted; the row order is kept
        cells = {name: Cell(**cached["cells"][name]) for name in order}
        cells.update(training_reached(settings, latest, snapshot))  # bookkeeping, not a measurement: read afresh
        return cells
    device = torch.device(settings.device)
    G = load_generator(snapshot, device)
    options = training_options(settings, model, folder, seed=seed)
    data = options.split().data
    dataset = open_training_data(data, G.img_resolution).unmirrored()  # the reals the snapshot metrics use
    say = on_message or (lambda _text: None)
    cells: dict[str, Cell] = {}
    if whole:
        cells["resolution"] = Cell(G.img_resolution, "px", "a side")
        cells["parameters"] = Cell(sum(p.numel() for p in G.parameters()), "params", "G, mapping included")
        cells["macs_per_pixel"] = macs_cell(G)
    cells["train_speed"] = training_speed(run_dir)
    cells.update(training_reached(settings, latest, snapshot))
    say("metrics" if whole else f"metrics of seed {seed}")
    recorded = recorded_metrics(snapshot)  # the curve metric, measured at this snapshot during training
    cells.update(metric_cells(settings.metrics, G, dataset, device, detectors, on_progress, recorded))
    if whole:
        cells.update(_rendering_cells(settings, G, snapshot, device, folder, say))
        say("sample sheet")
        cells["sample_sheet"] = sample_sheet_cell(G, settings.seeds, outdir / f"samples-{model}.png", device)
    atomic_write_json(
        folder / "evaluation.json",
        {"key": key, "order": list(cells), "cells": {n: dataclasses.asdict(c) for n, c in cells.items()}},
    )
    return cells


def _rendering_cells(
    settings: CompareSettings, G: Any, snapshot: Path, device: torch.device, folder: Path, say: Callable[[str], None]
) -> dict[str, Cell]:
    """Rendering megapixels/s at 1× and 4× density, and the peak memory of the big render."""
    cells = {}
    say("rendering speed")
    R = G.img_resolution
    for label, factor in (("render_1x", 1), ("render_4x", 4)):
        grid = Grid.frame(R * factor)
        try:
            G.check_grid(grid)
        except GridRefused as e:
            cells[label] = Cell.of_refusal(e)
            continue
        speed = render_speed(G, grid, device)
        cells[label] = Cell(round(speed.megapixels_per_s, 3), "MP/s", speed.note(grid))
    say(f"{settings.big_render}² render")
    cells["big_render_memory"] = big_render_memory(G, snapshot, settings.big_render, device, folder)
    return cells


def sample_sheet_cell(G: Any, seeds: Sequence[int], sheet: Path, device: torch.device) -> Cell:
    """Write ``G``'s sample sheet (:func:`~polyinr.tools.compare.sheets.sample_sheet`); its cell names the file and,
    when the model refused some of its rows, which (the reason is the model's grid refusal)."""
    refused = sample_sheet(G, seeds, sheet, device)
    if not refused:
        return Cell(sheet.name)
    reasons = {e.renders for e in refused.values()}
    return Cell(sheet.name, "", f"without the {' and '.join(refused)} rows", "; ".join(sorted(reasons)))


# ------------------------------------------------------------------------------------------------ pictures
