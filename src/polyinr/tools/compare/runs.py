"""Running the trainings of a comparison: each model and training seed in its folder, resumable, refusals kept.

Seed 0 trains in ``outdir/runs/<model>/``, another seed ``s`` in ``runs/<model>/seed-<s>/`` (so adding seeds to a
comparison keeps its runs). ``trained.json`` in the folder marks a finished training run (for the same settings)
and ``runs/<model>/refused.json`` why a model cannot train under the settings (for a report written from runs
trained in other processes).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from polyinr.atomic import atomic_write_json
from polyinr.checkpoint import STATE_JSON, latest_snapshot
from polyinr.errors import PolyinrError
from polyinr.interrupt import Interrupted
from polyinr.metrics import evaluate_snapshot, metric_goal
from polyinr.metrics.sampling import Progress
from polyinr.models.registry import get_entry, resolve_config
from polyinr.tools.compare.detectors import detector_unavailable
from polyinr.tools.compare.settings import CPU, CompareSettings
from polyinr.training.loop import training_loop
from polyinr.training.options import TrainingOptions, resolve_options
from polyinr.training.recipes import RECIPES, pair_recipe_and_preset, preset_size


def model_preset(model: str, size: str, resolution: int | None) -> str:
    """The model's preset of size class ``size``: ``cpu``, or its only paper-sized preset, or the one whose
    native resolution is the training resolution."""
    presets = sorted(p for p in get_entry(model).presets if preset_size(p) == size)
    if not presets:
        raise PolyinrError(f"{model} has no {size}-sized preset")
    if len(presets) == 1:
        return presets[0]
    fitting = [p for p in presets if resolve_config(model, p).img_resolution == resolution]
    if len(fitting) != 1:
        raise PolyinrError(
            f"{model} has several {size}-sized presets ({', '.join(presets)}); give a training "
            f"resolution that exactly one of them has"
        )
    return fitting[0]


def training_resolution(settings: CompareSettings, model: str, preset: str) -> int | None:
    """The comparison's training resolution (None: the data's), raised for a model that cannot train on images
    that small (a patch model: to its patch)."""
    if settings.resolution is None:
        return None
    smallest = get_entry(model).generator_cls.smallest_images(resolve_config(model, preset))
    return max(settings.resolution, smallest)


def native_recipe(model: str, preset: str) -> str:
    """A model's own recipe: the longest registered recipe whose name begins the model's name (``stylegan3-t`` →
    ``stylegan3``), of the preset's size; else the recipe paired with the preset (``cpu`` for cpu presets)."""
    size = preset_size(preset)
    own = [r for r in RECIPES if model.startswith(r) and RECIPES[r].size == size]
    if own:
        return max(own, key=len)
    return pair_recipe_and_preset(model, None, preset)[0]


def training_options(
    settings: CompareSettings, model: str, outdir: Path, metrics: tuple[str, ...] = (), seed: int = 0
) -> TrainingOptions:
    """The :class:`~polyinr.training.options.TrainingOptions` of ``model``'s run with training ``seed``."""
    preset = model_preset(model, settings.preset, settings.resolution)
    if settings.native_recipes:
        recipe = native_recipe(model, preset)
    else:
        recipe = settings.recipe or ("cpu" if settings.preset == CPU else "stylegan3")
    options = resolve_options(
        recipe,
        preset=preset,
        model=model,
        data=settings.data,
        outdir=str(outdir),
        kimg=settings.kimg,
        resolution=training_resolution(settings, model, preset),
        batch=settings.batch,
        cond=settings.cond,
        workers=settings.workers,
        device=settings.device,
        seed=seed,
        metrics=metrics,
        learn_grid=False,  # uniform grids: like for like
        model_overrides=settings.model_overrides.get(model) or None,
    )
    if settings.snap_kimg is not None:
        options = dataclasses.replace(options, tick_kimg=settings.snap_kimg, snap_ticks=1)
    return options


def model_dir(outdir: Path, model: str, seed: int = 0) -> Path:
    """The folder of ``model``'s training run with ``seed`` (and of its evaluation)."""
    folder = outdir / "runs" / model
    return folder if seed == 0 else folder / f"seed-{seed}"


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def finished_run(outdir: Path, settings: CompareSettings, model: str, seed: int = 0) -> Path | None:
    """The finished training run of ``model`` with ``seed`` for these settings, or None."""
    marker = read_json(model_dir(outdir, model, seed) / "trained.json")
    if marker is None or marker.get("training") != _training_key(settings, model, seed, outdir):
        return None
    run = Path(marker["run_dir"])
    return run if run.is_dir() else None


def _training_key(settings: CompareSettings, model: str, seed: int, outdir: Path) -> dict[str, Any]:
    options = training_options(settings, model, model_dir(outdir, model, seed), seed=seed).to_json()
    key = {k: v for k, v in options.items() if k not in ("workers", "device", "outdir")}
    budget = {"minutes": settings.minutes, "plateau": settings.plateau and dataclasses.asdict(settings.plateau)}
    return {**key, **{k: v for k, v in budget.items() if v is not None}}  # a run of kimg alone keeps its old key


def record_refusal(outdir: Path, settings: CompareSettings, model: str, reason: str | None) -> None:
    """Keep why ``model`` cannot train under ``settings`` in ``runs/<model>/refused.json`` (None: forget it)."""
    path = model_dir(outdir, model) / "refused.json"
    if reason is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"settings": settings.one_model_json(), "reason": reason})


def refusal(outdir: Path, settings: CompareSettings, model: str) -> str | None:
    """Why ``model`` could not train under these settings (see :func:`record_refusal`), or None."""
    marker = read_json(model_dir(outdir, model) / "refused.json")
    if marker is None or marker.get("settings") != settings.one_model_json():
        return None
    return marker["reason"]


def train_model(
    settings: CompareSettings,
    model: str,
    seed: int,
    outdir: Path,
    on_step: Callable[[int, int], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    detectors: dict[str, Any] | None = None,
    on_progress: Progress | None = None,
) -> tuple[Path, bool]:
    """Train ``model`` with training ``seed`` (or continue its unfinished run); ``(run directory, trained now)``.
    A finished run is returned without training. ``on_progress(stage, done, total)`` follows the curve metric's
    passes."""
    done = finished_run(outdir, settings, model, seed)
    if done is not None:
        return done, False
    folder = model_dir(outdir, model, seed)
    curve = (settings.curve_metric,) if settings.curve_metric else ()
    options = training_options(settings, model, folder, curve, seed)
    evaluator = _SnapshotMetric(detectors, on_progress)
    max_seconds = None if settings.minutes is None else settings.minutes * 60
    run_dir = training_loop(
        options,
        resume="auto",
        on_step=on_step,
        on_message=on_message,
        evaluate=evaluator,
        goal=metric_goal,
        max_seconds=max_seconds,
        plateau=settings.plateau,
    )
    state = json.loads((latest_snapshot(run_dir) / STATE_JSON).read_text(encoding="utf-8"))
    atomic_write_json(
        folder / "trained.json",
        {
            "run_dir": str(run_dir),
            "kimg": state["cur_nimg"] / 1000,
            "training": _training_key(settings, model, seed, outdir),
        },
    )
    return run_dir, True


class _SnapshotMetric:
    """The training loop's evaluator: the curve metric at each snapshot, with offline detectors only (a metric
    whose detector is missing is skipped, as in the final table)."""

    def __init__(self, detectors: dict[str, Any] | None, on_progress: Progress | None) -> None:
        self.detectors, self.on_progress = detectors, on_progress

    def __call__(self, names, G, dataset, run_dir, snapshot, device) -> dict[str, dict]:
        available = [name for name in names if detector_unavailable(name, self.detectors) is None]
        return evaluate_snapshot(
            available,
            G,
            dataset,
            run_dir,
            snapshot,
            device,
            detectors=self.detectors,
            download=False,
            on_progress=self.on_progress,
        )


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
                procs[model] = subprocess.Popen(
                    argv_for(model), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
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
