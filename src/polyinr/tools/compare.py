"""One data set, one budget, one discriminator and loss: every registered generator trained and measured alike.

:func:`run_comparison` trains each model through :func:`~polyinr.training.loop.training_loop` in its own
run directory under ``outdir/runs/<model>/`` (a shared recipe by default, or each model's own), then measures
each trained generator (the EMA weights of its last snapshot) with the same metric code and real statistics:
quality metrics with the detectors available without a download (on the built-in data, by default, FID,
precision/recall, CAS and ScaleInv FID in that data's offline feature space), equivariance where the grid
contract allows, parameters, multiply-adds per pixel, training images/s (the run's ``stats.jsonl``), rendering
megapixels/s at 1× and 4× density (4× the pixels per side; each timed call renders a batch of at least
:data:`SPEED_PIXELS` pixels, so both densities pay the same per-call overhead) and the peak memory of one big
render. It writes ``report.md``,
``report.json``, PNG plots and sample sheets into ``outdir``. Every cell of the table holds a value with its
unit, or the one-line reason why there is none.

A model that cannot train under the settings (the training refuses with a one-line
:class:`~polyinr.errors.PolyinrError`, e.g. images smaller than a patch-trained model's patch) does not stop the
others: every cell of its row holds that reason (``outdir/runs/<model>/refused.json`` keeps it for a report
written from runs trained in other processes).

Re-running continues unfinished runs, skips finished ones and tries refused ones again (the settings may have
changed): ``outdir/runs/<model>/trained.json`` marks a finished training run and
``outdir/runs/<model>/evaluation.json`` its measurements (for the same settings). A signal
(:class:`~polyinr.interrupt.Interrupted`) stops the comparison and records nothing of the model it was on: its
training continues from its newest snapshot.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyinr.atomic import atomic_write_json
from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.interrupt import Interrupted

CPU, PAPER = "cpu", "paper"
SPEED_ROUNDS = 3  # timed renders per density (the best is reported)
SPEED_PIXELS = 1 << 18  # pixels a timed render call paints at least (a batch of small images)
EVALUATION_VERSION = 4  # bump when a measurement changes: cached evaluations of older versions are redone
SHEET_SEEDS = 6  # default seeds of the sample sheets


@dataclass(frozen=True)
class CompareSettings:
    """What every model of a comparison shares."""

    data: str
    models: tuple[str, ...]
    preset: str = CPU  # 'cpu' or 'paper': the size class of each model's preset
    kimg: float = 10.0  # training budget, thousands of real images shown to D
    metrics: tuple[str, ...] = ()  # metric names (polyinr.metrics); empty = default_metrics(preset, data, cond)
    seeds: tuple[int, ...] = tuple(range(SHEET_SEEDS))  # seeds of the sample sheets
    native_recipes: bool = False  # each model's own recipe instead of the shared one
    recipe: str | None = None  # the shared recipe; None = 'cpu' for cpu presets, 'stylegan3' for paper ones
    resolution: int | None = None  # training resolution; None = the data's
    batch: int | None = None  # None = the recipe's
    cond: bool = False  # class-conditional on the data's labels
    curve_metric: str | None = None  # metric computed at every snapshot (None = the first quality metric)
    snap_kimg: float | None = None  # snapshot (and curve point) interval in kimg; None = the recipe's
    big_render: int = 4096  # side of the render whose peak memory is measured
    workers: int = 0
    device: str = "cpu"
    seed: int = 0
    model_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # model → generator config fields

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["models"], values["metrics"], values["seeds"] = list(self.models), list(self.metrics), list(self.seeds)
        return values


def default_metrics(preset: str, data: str | None = None, cond: bool = False) -> tuple[str, ...]:
    """The metrics of a comparison when none are named.

    On a built-in dataset (``builtin:digits``, ``shapes``, ``photos``): FID, precision/recall, CAS (labelled data,
    class-conditional models) and ScaleInv FID at ×2 and ×4 in that dataset's offline feature space, 2,000
    samples each. Elsewhere the standard detectors: small sample counts for ``cpu``, the papers' for ``paper``.
    Then the equivariance metrics (50 samples for ``cpu``, 50k for ``paper``).
    """
    from polyinr.metrics.feature_spaces import UNLABELLED, builtin_space

    eq = ("eqt0.05k_int", "eqt0.05k_frac", "eqr0.05k") if preset == CPU else ("eqt50k_int", "eqt50k_frac", "eqr50k")
    space = builtin_space(data)
    if space is not None:
        cas = (f"cas_{space}",) if cond and space not in UNLABELLED else ()
        return (f"fid_{space}", f"pr_{space}", *cas, f"scaleinv_fid_S2_{space}", f"scaleinv_fid_S4_{space}", *eq)
    if preset == CPU:
        return ("rfid0.5k_full", "fid0.5k_full", "kid0.5k_full", "pr0.5k3_full", *eq)
    return ("fid50k_full", "kid50k_full", "rfid50k_full", "pr50k3_full", *eq, "scaleinv_fid50k_S2",
            "scaleinv_fid50k_S4")  # fmt: skip


def check_settings(settings: CompareSettings) -> CompareSettings:
    """Validate model names, the preset and metric names (one-line errors); fill in the default metrics."""
    from polyinr.metrics import parse_metric
    from polyinr.models.registry import list_models

    known = list_models()
    if not settings.models:
        raise PolyinrError("name at least one model to compare")
    for name in settings.models:
        if name not in known:
            raise PolyinrError(f"unknown model {name!r}; registered models: {', '.join(known)}")
    if len(set(settings.models)) != len(settings.models):
        raise PolyinrError("each model may be named only once")
    if settings.preset not in (CPU, PAPER):
        raise PolyinrError(f"the comparison preset must be {CPU!r} or {PAPER!r}, got {settings.preset!r}")
    if not settings.kimg > 0:
        raise PolyinrError(f"the training budget must be positive, got {settings.kimg} kimg")
    if settings.big_render < 1:
        raise PolyinrError(f"the big render's size must be positive, got {settings.big_render}")
    metrics = settings.metrics or default_metrics(settings.preset, settings.data, settings.cond)
    for name in metrics:
        parse_metric(name)
    curve = settings.curve_metric
    if curve is not None:
        parse_metric(curve)
    else:
        curve = next((m for m in metrics if not parse_metric(m).kind.startswith("eq")), None)
    return dataclasses.replace(settings, metrics=tuple(metrics), curve_metric=curve)


# ------------------------------------------------------------------------------------------------ training


def model_preset(model: str, size: str, resolution: int | None) -> str:
    """The model's preset of size class ``size``: ``cpu``, or its only paper-sized preset, or the one whose
    native resolution is the training resolution."""
    from polyinr.models.registry import get_entry, resolve_config
    from polyinr.training.recipes import preset_size

    presets = sorted(p for p in get_entry(model).presets if preset_size(p) == size)
    if not presets:
        raise PolyinrError(f"{model} has no {size}-sized preset")
    if len(presets) == 1:
        return presets[0]
    fitting = [p for p in presets if resolve_config(model, p).img_resolution == resolution]
    if len(fitting) != 1:
        raise PolyinrError(f"{model} has several {size}-sized presets ({', '.join(presets)}); give a training "
                           f"resolution that exactly one of them has")  # fmt: skip
    return fitting[0]


def native_recipe(model: str, preset: str) -> str:
    """A model's own recipe: the longest registered recipe whose name begins the model's name (``stylegan3-t`` →
    ``stylegan3``), of the preset's size; else the recipe paired with the preset (``cpu`` for cpu presets)."""
    from polyinr.training.recipes import RECIPES, pair_recipe_and_preset, preset_size

    size = preset_size(preset)
    own = [r for r in RECIPES if model.startswith(r) and RECIPES[r].size == size]
    if own:
        return max(own, key=len)
    return pair_recipe_and_preset(model, None, preset)[0]


def training_options(settings: CompareSettings, model: str, outdir: Path, metrics: tuple[str, ...] = ()) -> Any:
    """The :class:`~polyinr.training.options.TrainingOptions` of ``model`` in the comparison."""
    from polyinr.training.options import resolve_options

    preset = model_preset(model, settings.preset, settings.resolution)
    if settings.native_recipes:
        recipe = native_recipe(model, preset)
    else:
        recipe = settings.recipe or ("cpu" if settings.preset == CPU else "stylegan3")
    options = resolve_options(recipe, preset=preset, model=model, data=settings.data, outdir=str(outdir),
                              kimg=settings.kimg, resolution=settings.resolution, batch=settings.batch,
                              cond=settings.cond, workers=settings.workers, device=settings.device,
                              seed=settings.seed, metrics=metrics, learn_grid=False,  # uniform grids: like for like
                              model_overrides=settings.model_overrides.get(model) or None)  # fmt: skip
    if settings.snap_kimg is not None:
        options = dataclasses.replace(options, tick_kimg=settings.snap_kimg, snap_ticks=1)
    return options


def model_dir(outdir: Path, model: str) -> Path:
    return outdir / "runs" / model


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def finished_run(outdir: Path, settings: CompareSettings, model: str) -> Path | None:
    """The finished training run of ``model`` for these settings, or None."""
    marker = _read_json(model_dir(outdir, model) / "trained.json")
    if marker is None or marker.get("training") != _training_key(settings, model, outdir):
        return None
    run = Path(marker["run_dir"])
    return run if run.is_dir() else None


def _training_key(settings: CompareSettings, model: str, outdir: Path) -> dict[str, Any]:
    options = training_options(settings, model, model_dir(outdir, model)).to_json()
    return {k: v for k, v in options.items() if k not in ("workers", "device", "outdir")}


def record_refusal(outdir: Path, settings: CompareSettings, model: str, reason: str | None) -> None:
    """Keep why ``model`` cannot train under ``settings`` in ``runs/<model>/refused.json`` (None: forget it)."""
    path = model_dir(outdir, model) / "refused.json"
    if reason is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"settings": _refusal_key(settings), "reason": reason})


def refusal(outdir: Path, settings: CompareSettings, model: str) -> str | None:
    """Why ``model`` could not train under these settings (see :func:`record_refusal`), or None."""
    marker = _read_json(model_dir(outdir, model) / "refused.json")
    if marker is None or marker.get("settings") != _refusal_key(settings):
        return None
    return marker["reason"]


def _refusal_key(settings: CompareSettings) -> dict[str, Any]:
    """The settings a refusal holds for: all but the list of models (one process per model trains one)."""
    return {k: v for k, v in settings.to_json().items() if k != "models"}


def train_model(
    settings: CompareSettings,
    model: str,
    outdir: Path,
    on_step: Callable[[int, int], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    detectors: dict[str, Any] | None = None,
) -> tuple[Path, bool]:
    """Train ``model`` (or continue its unfinished run); ``(run directory, trained now)``. A finished run is
    returned without training."""
    from polyinr.checkpoint import STATE_JSON, latest_snapshot
    from polyinr.metrics import metric_goal
    from polyinr.training.loop import training_loop

    done = finished_run(outdir, settings, model)
    if done is not None:
        return done, False
    folder = model_dir(outdir, model)
    options = training_options(settings, model, folder, (settings.curve_metric,) if settings.curve_metric else ())
    evaluator = _SnapshotMetric(detectors)
    run_dir = training_loop(options, resume="auto", on_step=on_step, on_message=on_message, evaluate=evaluator,
                            goal=metric_goal)  # fmt: skip
    reached = json.loads((latest_snapshot(run_dir) / STATE_JSON).read_text(encoding="utf-8"))["cur_nimg"]
    atomic_write_json(folder / "trained.json", {"run_dir": str(run_dir), "kimg": reached / 1000,
                                                "training": _training_key(settings, model, outdir)})  # fmt: skip
    return run_dir, True


class _SnapshotMetric:
    """The training loop's evaluator: the curve metric at each snapshot, with offline detectors only (a metric
    whose detector is missing is skipped, as in the final table)."""

    def __init__(self, detectors: dict[str, Any] | None) -> None:
        self.detectors = detectors

    def __call__(self, names, G, dataset, run_dir, snapshot, device) -> dict[str, dict]:
        from polyinr.metrics import evaluate_snapshot

        available = [name for name in names if detector_unavailable(name, self.detectors) is None]
        return evaluate_snapshot(available, G, dataset, run_dir, snapshot, device, detectors=self.detectors,
                                 download=False)  # fmt: skip


def train_in_processes(argv_for: Callable[[str], list[str]], models: Sequence[str], log_dir: Path) -> dict[str, int]:
    """Run ``argv_for(model)`` for every model at once, one process each (output to ``log_dir/<model>.log``);
    returns each process's exit status.

    The processes hear signals only from here (each leads its own session, out of the terminal's reach): when
    this one is interrupted, or fails, it passes the signal (SIGTERM for a failure) on to each and waits for them
    to stop, so that none trains on behind it.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen] = {}
    try:
        for model in models:
            with open(log_dir / f"{model}.log", "ab") as log:
                procs[model] = subprocess.Popen(argv_for(model), stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)  # fmt: skip
        return {model: proc.wait() for model, proc in procs.items()}
    except BaseException as e:
        _stop_processes(list(procs.values()), e.signum if isinstance(e, Interrupted) else signal.SIGTERM)
        raise


def _stop_processes(procs: Sequence[subprocess.Popen], signum: int) -> None:
    """Send ``signum`` to each of ``procs`` still running and wait for them all; a signal meanwhile is passed on
    in turn (a second one stops a training process at once)."""
    while True:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)
        try:
            for proc in procs:
                proc.wait()
            return
        except KeyboardInterrupt as again:
            signum = again.signum if isinstance(again, Interrupted) else signal.SIGINT


# ------------------------------------------------------------------------------------------------ measuring


def detector_unavailable(metric: str, detectors: dict[str, Any] | None = None) -> str | None:
    """Why ``metric``'s detector cannot be used without a download, or None when it can (or needs none, or is
    among the given ``detectors``)."""
    from polyinr.metrics.api import _FEATURE_METRICS, parse_metric
    from polyinr.metrics.features import find_weights

    spec = parse_metric(metric)
    if spec.space is not None:
        return None  # an offline feature space: trained from the built-in data when first used
    if spec.kind not in _FEATURE_METRICS or _FEATURE_METRICS[spec.kind][0] in ("inception-random", *(detectors or {})):
        return None
    detector = _FEATURE_METRICS[spec.kind][0]
    try:
        find_weights(detector, download=False)
    except PolyinrError:
        return f"not computed: the {detector} detector's weights are not available offline (no downloads)"
    return None


@dataclass
class Cell:
    """One value of the table: ``value`` with its ``unit``, or ``note`` saying why there is none."""

    value: float | int | str | None = None
    unit: str = ""
    note: str | None = None

    def text(self) -> str:
        if self.value is None:
            return f"— ({self.note})"
        if isinstance(self.value, float):
            shown = "inf" if math.isinf(self.value) else f"{self.value:.4g}"
        elif isinstance(self.value, int):
            shown = f"{self.value:,}"
        else:
            shown = str(self.value)
        return f"{shown} {self.unit}".strip() + (f" ({self.note})" if self.note else "")


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
        return (f"{grid.height}x{grid.width} renders, {self.batch} a call ({self.pixels_per_call:,} px), best of "
                f"{rounds} calls after a warm-up")  # fmt: skip


@torch.no_grad()
def render_speed(
    G: Any, grid: Grid, device: torch.device, min_pixels: int = SPEED_PIXELS, rounds: int = SPEED_ROUNDS
) -> RenderSpeed:
    """Megapixels per second of ``G.synthesize`` on ``grid``, for a batch of at least ``min_pixels`` pixels a call
    (so small renders are not timed by their per-call overhead): the fastest of ``rounds`` calls after a warm-up.
    The latents are mapped beforehand: only the synthesis is timed."""
    from polyinr.sampling import iter_ws

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


_BIG_RENDER = textwrap.dedent("""
    import resource, sys, torch
    from polyinr.checkpoint import load_generator
    from polyinr.sampling import iter_ws
    from polyinr.tools.render import render_tiled
    snapshot, size, out, device = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    G = load_generator(snapshot, device)
    ws = next(iter_ws(G, [0], 0 if G.num_classes else None, device=device, batch_size=1))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    render_tiled(G, ws, G.grid_support.sized(G, size, size), out, tile=min(size, 512))
    if device.startswith("cuda"):
        print(torch.cuda.max_memory_allocated(), "CUDA allocator peak")
    else:
        try:  # this process's own high-water mark (ru_maxrss may keep the forking parent's, across exec)
            with open("/proc/self/status") as f:
                peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024
        except (OSError, StopIteration):
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(peak, "peak RSS of the rendering process")
""")


def big_render_memory(G: Any, snapshot: Path, size: int, device: torch.device, scratch: Path) -> Cell:
    """Peak memory of one ``size``² render of ``G``'s default view (the frame; a canvas model's lattice), tiles
    where the contract allows them, measured in a fresh process; "cannot" with the contract's reason when the
    generator cannot paint that grid."""
    from polyinr.models.generator import GridRefused

    grid = G.grid_support.sized(G, size, size)
    try:
        G.check_grid(grid)
        if size > 512:
            G.check_tiles(512, 512)
    except GridRefused as e:
        return Cell(None, note=f"cannot: {e}")
    out = scratch / f"big-{size}.png"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(Path(__file__).parents[2]),
                                                                 os.environ.get("PYTHONPATH", "")] if p)}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", _BIG_RENDER, str(snapshot), str(size), str(out), str(device)],
                            capture_output=True, text=True, env=env)  # fmt: skip
    out.unlink(missing_ok=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        return Cell(None, note=f"cannot: the render failed: {last}")
    peak, _, kind = result.stdout.strip().splitlines()[-1].partition(" ")
    return Cell(round(int(peak) / 2**20, 1), "MiB", kind)


def macs_cell(G: Any) -> Cell:
    """Multiply-adds per pixel: the model's own count, else counted by PyTorch's FlopCounterMode at the native
    resolution (matrix products and convolutions, mapping included)."""
    from polyinr.metrics.cost import count_macs

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


def metric_cells(
    names: Sequence[str], G: Any, dataset: Any, device: torch.device, detectors: dict[str, Any] | None = None
) -> dict[str, Cell]:
    """Each metric's value(s), or why it is not computed (a detector missing offline, a refused grid, a metric
    the model or data cannot give). ``detectors`` replaces named detectors (see
    :func:`~polyinr.metrics.compute_metric`)."""
    from polyinr.metrics import compute_metric, metric_detector

    cells: dict[str, Cell] = {}
    for name in names:
        missing = detector_unavailable(name, detectors)
        if missing is not None:
            cells[name] = Cell(None, note=missing)
            continue
        unit = "dB" if name.startswith("eq") else ""
        try:
            values = compute_metric(name, G, dataset, device=device, download=False, detectors=detectors)
        except PolyinrError as e:  # the grid contract's refusal, or a metric this model or data cannot give
            cells[name] = Cell(None, note=str(e))
            continue
        detector = metric_detector(name, detectors)  # after the metric: a feature space is trained when first used
        for key, value in values.items():
            cells[key] = Cell(float(value), unit, None if detector == "none" else f"detector {detector}")
    return cells


def evaluate_model(
    settings: CompareSettings,
    model: str,
    run_dir: Path,
    outdir: Path,
    on_message: Callable[[str], None] | None = None,
    detectors: dict[str, Any] | None = None,
) -> dict[str, Cell]:
    """Every cell of ``model``'s row (cached in ``runs/<model>/evaluation.json`` for the same settings)."""
    from polyinr.checkpoint import latest_snapshot, load_generator
    from polyinr.models.generator import GridRefused
    from polyinr.training.setup import open_training_data

    folder = model_dir(outdir, model)
    snapshot = latest_snapshot(run_dir)
    key = {"settings": settings.to_json(), "snapshot": str(snapshot), "version": EVALUATION_VERSION}
    cached = _read_json(folder / "evaluation.json")
    if cached is not None and cached.get("key") == key:
        return {name: Cell(**cell) for name, cell in cached["cells"].items()}
    device = torch.device(settings.device)
    G = load_generator(snapshot, device)
    options = training_options(settings, model, folder)
    dataset = open_training_data(options, G.img_resolution).unmirrored()  # the reals the snapshot metrics use
    say = on_message or (lambda _text: None)
    cells: dict[str, Cell] = {
        "resolution": Cell(G.img_resolution, "px", "a side"),
        "parameters": Cell(sum(p.numel() for p in G.parameters()), "params", "G, mapping included"),
        "macs_per_pixel": macs_cell(G),
        "train_speed": training_speed(run_dir),
    }
    say("metrics")
    cells.update(metric_cells(settings.metrics, G, dataset, device, detectors))
    say("rendering speed")
    R = G.img_resolution
    for label, factor in (("render_1x", 1), ("render_4x", 4)):
        grid = Grid.frame(R * factor)
        try:
            G.check_grid(grid)
        except GridRefused as e:
            cells[label] = Cell(None, note=str(e))
            continue
        speed = render_speed(G, grid, device)
        cells[label] = Cell(round(speed.megapixels_per_s, 3), "MP/s", speed.note(grid))
    say(f"{settings.big_render}² render")
    cells["big_render_memory"] = big_render_memory(G, snapshot, settings.big_render, device, folder)
    say("sample sheet")
    sheet = outdir / f"samples-{model}.png"
    notes = sample_sheet(G, settings.seeds, sheet, device)
    cells["sample_sheet"] = Cell(sheet.name, "", "; ".join(notes) if notes else None)
    atomic_write_json(folder / "evaluation.json",
                      {"key": key, "cells": {n: dataclasses.asdict(c) for n, c in cells.items()}})  # fmt: skip
    return cells


# ------------------------------------------------------------------------------------------------ pictures


def sheet_grids(R: int) -> list[tuple[str, Grid]]:
    """The rows of a sample sheet: the native frame, 4× denser (4R² pixels over the same frame) and 2× wider
    (2R columns at the frame's pixel spacing, starting R//2 pixels left of the frame: on the pixel lattice)."""
    step = 1.0 / (R - 1)
    left = -(R // 2) * step
    return [("native", Grid.frame(R)), ("4x denser", Grid.frame(4 * R)),
            ("2x wider", Grid.window(0.0, left, 1.0, left + (2 * R - 1) * step, R, 2 * R))]  # fmt: skip


@torch.no_grad()
def sample_sheet(G: Any, seeds: Sequence[int], path: Path, device: torch.device) -> list[str]:
    """Write ``path``: one column per seed (class ``seed mod classes``), one row per accepted grid of
    :func:`sheet_grids`, each shown at the 4× denser render's size. Returns the refused rows' reasons."""
    from PIL import Image

    from polyinr.image_io import to_uint8
    from polyinr.models.generator import GridRefused
    from polyinr.sampling import sample_inputs

    R = G.img_resolution
    classes = [s % G.num_classes for s in seeds] if G.num_classes else None
    z, c = sample_inputs(G, list(seeds), classes, device)
    ws = G.mapping(z, c)
    cell, pad = 4 * R, 2
    rows, notes = [], []
    for label, grid in sheet_grids(R):
        try:
            images = to_uint8(G.synthesize(ws, grid))  # [N, H, W, 3]
        except GridRefused as e:
            notes.append(f"{label}: {e}")
            continue
        H, W = images.shape[1:3]
        scale = cell // H
        rows.append([np.asarray(Image.fromarray(im).resize((W * scale, H * scale), Image.NEAREST)) for im in images])
    width = sum(im.shape[1] for im in rows[0]) + pad * (len(seeds) + 1)
    widest = max(sum(im.shape[1] for im in row) + pad * (len(row) + 1) for row in rows)
    canvas = np.full((sum(row[0].shape[0] + pad for row in rows) + pad, max(width, widest), 3), 255, np.uint8)
    top = pad
    for row in rows:
        left = pad
        for im in row:
            canvas[top : top + im.shape[0], left : left + im.shape[1]] = im
            left += im.shape[1] + pad
        top += row[0].shape[0] + pad
    Image.fromarray(canvas).save(path)
    return notes


def curve_points(run_dir: Path, metric: str) -> list[tuple[float, float]]:
    """``(kimg, value)`` of ``metric`` at each snapshot of the run (``metric-<name>.jsonl``)."""
    path = run_dir / f"metric-{metric}.jsonl"
    points = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            value = entry["results"].get(metric)
            if value is not None:
                points.append((float(entry["snapshot"]), float(value)))
    return sorted(points)


def write_plots(outdir: Path, curves: dict[str, list[tuple[float, float]]], metric: str | None,
                rows: dict[str, dict[str, Cell]]) -> list[Path]:  # fmt: skip
    """``curve.png`` (the curve metric over training images per model) and ``speed_quality.png`` (rendering
    megapixels/s at 1× against the curve metric); returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    if metric is None:
        return written
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, points in curves.items():
        if points:
            ax.plot([k for k, _ in points], [v for _, v in points], marker="o", label=model)
    ax.set_xlabel("training images shown (kimg)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} over training")
    if ax.lines:
        ax.legend()
    fig.tight_layout()
    fig.savefig(outdir / "curve.png", dpi=100)
    plt.close(fig)
    written.append(outdir / "curve.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, cells in rows.items():
        speed, quality = cells.get("render_1x"), cells.get(metric)
        if speed and quality and isinstance(speed.value, float) and isinstance(quality.value, float):
            ax.scatter([speed.value], [quality.value])
            ax.annotate(model, (speed.value, quality.value))
    ax.set_xscale("log")
    ax.set_xlabel("rendering speed at native density (megapixels/s)")
    ax.set_ylabel(f"{metric} (last snapshot)")
    ax.set_title("speed vs quality")
    fig.tight_layout()
    fig.savefig(outdir / "speed_quality.png", dpi=100)
    plt.close(fig)
    written.append(outdir / "speed_quality.png")
    return written


# ------------------------------------------------------------------------------------------------ the report

COLUMN_TITLES = {
    "resolution": "resolution",
    "parameters": "parameters",
    "macs_per_pixel": "multiply-adds / pixel",
    "train_speed": "training speed",
    "render_1x": "rendering, 1× density",
    "render_4x": "rendering, 4× density (4× per side)",
    "big_render_memory": "peak memory of a {big}² render",
    "sample_sheet": "sample sheet",
}


def _environment(device: str) -> dict[str, Any]:
    return {"torch": torch.__version__, "device": device, "load_average": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip


def write_report(outdir: Path, settings: CompareSettings, rows: dict[str, dict[str, Cell]], command: str | None,
                 training: dict[str, dict[str, Any]], plots: list[Path]) -> tuple[Path, Path]:  # fmt: skip
    """``report.md`` (one section per model: each cell with its unit, or why it is empty) and ``report.json``."""
    environment = _environment(settings.device)
    names: list[str] = []
    for cells in rows.values():
        names += [n for n in cells if n not in names]
    lines = ["# Generator comparison", ""]
    if command:
        lines += ["```", command, "```", ""]
    recipe = "each model's own recipe" if settings.native_recipes else \
        f"the shared recipe `{settings.recipe or ('cpu' if settings.preset == CPU else 'stylegan3')}`"  # fmt: skip
    lines += [
        f"Data `{settings.data}`, {settings.preset} presets, {settings.kimg:g} kimg each, {recipe}; "
        f"device {settings.device}, torch {environment['torch']}, load average "
        f"{', '.join(map(str, environment['load_average']))} at the end ({environment['cpus']} CPUs).",
        "",
    ]
    header = ["", *rows]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        title = COLUMN_TITLES.get(name, name).format(big=settings.big_render)
        values = [rows[m][name].text() if name in rows[m] else "— (not measured for this model)" for m in rows]
        lines.append("| " + " | ".join([title, *(v.replace("|", "/") for v in values)]) + " |")
    lines += ["", "Training runs:", ""]
    lines += [f"- {m}: not trained: {t['refused']}" if "refused" in t else
              f"- {m}: `{t['run_dir']}` ({t['recipe']} recipe, {t['preset']} preset, {t['kimg']:g} kimg)"
              for m, t in training.items()]  # fmt: skip
    lines += ["", "Plots: " + ", ".join(f"![{p.stem}]({p.name})" for p in plots) if plots else "Plots: none", ""]
    lines += [f"![samples {m}](samples-{m}.png)" for m in rows if "refused" not in training.get(m, {})]
    md = outdir / "report.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    js = outdir / "report.json"
    atomic_write_json(js, {"command": command, "settings": settings.to_json(), "environment": environment,
                           "training": training, "plots": [p.name for p in plots],
                           "models": {m: {n: dataclasses.asdict(c) for n, c in cells.items()}
                                      for m, cells in rows.items()}})  # fmt: skip
    return md, js


@dataclass(frozen=True)
class Event:
    """Progress of a comparison: ``kind`` is 'train' (training starts), 'skip' (already trained), 'refused' (the
    model cannot train under the settings; ``text`` says why), 'evaluate', 'message' or 'done'."""

    kind: str
    model: str | None
    text: str


def run_comparison(
    settings: CompareSettings,
    outdir: str | Path,
    *,
    command: str | None = None,
    train: bool = True,
    evaluate: bool = True,
    on_step: Callable[[str, int, int], None] | None = None,
    detectors: dict[str, Any] | None = None,
) -> Iterator[Event]:
    """Train (``train``) and measure (``evaluate``, writing the report) every model of ``settings``; yields
    :class:`Event` s as it goes. ``on_step(model, cur_nimg, total_nimg)`` follows each training step;
    ``detectors`` replaces named feature detectors (e.g. small random networks in tests)."""
    settings = check_settings(settings)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Path] = {}
    refused: dict[str, str] = {}  # model → why it cannot train under the settings
    messages: list[str] = []
    for model in settings.models:
        if train:
            try:
                done = finished_run(outdir, settings, model)
                yield Event("skip" if done else "train", model, "already trained" if done else "training")
                step = None if on_step is None else (lambda cur, total, m=model: on_step(m, cur, total))
                runs[model], _ = train_model(
                    settings, model, outdir, on_step=step, on_message=messages.append, detectors=detectors
                )
            except PolyinrError as e:  # this model cannot train under the settings: the others still do
                refused[model] = str(e)
            record_refusal(outdir, settings, model, refused.get(model))
            while messages:
                yield Event("message", model, messages.pop(0))
            if model in refused:
                yield Event("refused", model, refused[model])
        else:
            run = finished_run(outdir, settings, model)
            if run is not None:
                runs[model] = run
            elif (reason := refusal(outdir, settings, model)) is not None:
                refused[model] = reason
            else:
                raise PolyinrError(f"{model} has not finished training in {outdir}")
    if not evaluate:
        return
    measured, training = {}, {}
    for model in runs:
        yield Event("evaluate", model, "measuring")
        measured[model] = evaluate_model(settings, model, runs[model], outdir, messages.append, detectors)
        while messages:
            yield Event("message", model, messages.pop(0))
        options = json.loads((runs[model] / "training_options.json").read_text(encoding="utf-8"))
        training[model] = {"run_dir": str(runs[model]), "recipe": options["recipe"], "preset": options["preset"],
                           "kimg": settings.kimg}  # fmt: skip
    names = list(dict.fromkeys(n for cells in measured.values() for n in cells)) or ["training"]
    rows = {m: measured[m] if m in runs else {n: Cell(None, note=f"not trained: {refused[m]}") for n in names}
            for m in settings.models}  # fmt: skip
    training = {m: training.get(m) or {"refused": refused[m]} for m in settings.models}
    curves = {m: curve_points(runs[m], settings.curve_metric) for m in runs} if settings.curve_metric else {}
    plots = write_plots(outdir, curves, settings.curve_metric, rows)
    md, _ = write_report(outdir, settings, rows, command, training, plots)
    yield Event("done", None, str(md))
