"""A comparison from start to end: train every model, measure each, write the report (:func:`run_comparison`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyinr.errors import PolyinrError
from polyinr.metrics.sampling import Progress
from polyinr.tools.compare.cell import Cell
from polyinr.tools.compare.measure import evaluate_model
from polyinr.tools.compare.plots import curve_points, write_plots
from polyinr.tools.compare.report import write_report
from polyinr.tools.compare.runs import finished_run, record_refusal, refusal, train_model
from polyinr.tools.compare.settings import CompareSettings, check_settings
from polyinr.tools.compare.sheets import combine_sheets
from polyinr.tools.compare.training_seeds import combine_seeds


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
    on_progress: Callable[[str, str, int, int], None] | None = None,
    detectors: dict[str, Any] | None = None,
) -> Iterator[Event]:
    """Train (``train``) and measure (``evaluate``, writing the report) every model of ``settings``; yields
    :class:`Event` s as it goes. ``on_step(model, cur_nimg, total_nimg)`` follows each training step and
    ``on_progress(model, stage, done, total)`` each metric pass (at snapshots and in the final measurement);
    ``detectors`` replaces named feature detectors (e.g. small random networks in tests)."""
    settings = check_settings(settings)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[int, Path]] = {}  # model → training seed → its run
    refused: dict[str, str] = {}  # model → why it cannot train under the settings
    for model in settings.models:
        if train:
            yield from _train_seeds(settings, model, outdir, runs, refused, on_step, on_progress, detectors)
        elif (reason := refusal(outdir, settings, model)) is not None:
            refused[model] = reason
        else:
            runs[model] = {seed: _finished(outdir, settings, model, seed) for seed in settings.train_seeds}
    if not evaluate:
        return
    messages: list[str] = []
    measured, training = {}, {}
    for model, by_seed in runs.items():
        rows = {}
        for seed, run_dir in by_seed.items():
            yield Event("evaluate", model, _with_seed(settings, seed, "measuring"))
            rows[seed] = evaluate_model(
                settings, model, seed, run_dir, outdir, messages.append, detectors, _for_model(model, on_progress)
            )
            while messages:
                yield Event("message", model, messages.pop(0))
        measured[model] = combine_seeds(rows)
        options = json.loads((by_seed[settings.train_seeds[0]] / "training_options.json").read_text(encoding="utf-8"))
        training[model] = {
            "recipe": options["recipe"],
            "preset": options["preset"],
            "runs": {
                str(seed): {"run_dir": str(run), "kimg": rows[seed]["trained_kimg"].value}
                for seed, run in by_seed.items()
            },
        }
    names = list(dict.fromkeys(n for cells in measured.values() for n in cells)) or ["training"]
    rows = {
        m: measured[m] if m in runs else {n: Cell(None, note=f"not trained: {refused[m]}") for n in names}
        for m in settings.models
    }
    training = {m: training.get(m) or {"refused": refused[m]} for m in settings.models}
    curves = (
        {m: {seed: curve_points(run, settings.curve_metric) for seed, run in runs[m].items()} for m in runs}
        if settings.curve_metric
        else {}
    )
    plots = write_plots(outdir, curves, settings.curve_metric, rows)
    if runs:
        plots.append(combine_sheets({m: outdir / f"samples-{m}.png" for m in runs}, outdir / "samples.png"))
    md, _ = write_report(outdir, settings, rows, command, training, plots)
    yield Event("done", None, str(md))


def _train_seeds(
    settings: CompareSettings,
    model: str,
    outdir: Path,
    runs: dict[str, dict[int, Path]],
    refused: dict[str, str],
    on_step: Callable[[str, int, int], None] | None,
    on_progress: Callable[[str, str, int, int], None] | None,
    detectors: dict[str, Any] | None,
) -> Iterator[Event]:
    """Train ``model`` once per training seed, adding its runs to ``runs``, or why it cannot train to ``refused``
    (the refusal is kept in its folder for later processes)."""
    messages: list[str] = []
    step = None if on_step is None else (lambda cur, total: on_step(model, cur, total))
    for seed in settings.train_seeds:
        try:  # the settings are checked for this model on the way: a refusal can come from any step
            done = finished_run(outdir, settings, model, seed)
            said = "already trained" if done else "training"
            yield Event("skip" if done else "train", model, _with_seed(settings, seed, said))
            runs.setdefault(model, {})[seed], _ = train_model(
                settings,
                model,
                seed,
                outdir,
                on_step=step,
                on_message=messages.append,
                detectors=detectors,
                on_progress=_for_model(model, on_progress),
            )
        except PolyinrError as e:  # this model cannot train under the settings: the others still do
            refused[model] = str(e)
            runs.pop(model, None)
        while messages:
            yield Event("message", model, messages.pop(0))
        if model in refused:
            break
    record_refusal(outdir, settings, model, refused.get(model))
    if model in refused:
        yield Event("refused", model, refused[model])


def _with_seed(settings: CompareSettings, seed: int, text: str) -> str:
    """``text``, naming the training seed when the comparison has several."""
    return text if len(settings.train_seeds) == 1 else f"{text} (seed {seed})"


def _finished(outdir: Path, settings: CompareSettings, model: str, seed: int) -> Path:
    """The finished run of ``model`` with ``seed`` (trained by another process); an error when there is none."""
    run = finished_run(outdir, settings, model, seed)
    if run is None:
        raise PolyinrError(f"{_with_seed(settings, seed, model)} has not finished training in {outdir}")
    return run


def _for_model(model: str, on_progress: Callable[[str, str, int, int], None] | None) -> Progress | None:
    """``on_progress`` of ``model``: ``(stage, done, total)`` → ``on_progress(model, stage, done, total)``."""
    if on_progress is None:
        return None
    return lambda stage, done, total: on_progress(model, stage, done, total)
