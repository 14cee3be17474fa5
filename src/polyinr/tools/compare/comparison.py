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
                    settings,
                    model,
                    outdir,
                    on_step=step,
                    on_message=messages.append,
                    detectors=detectors,
                    on_progress=_for_model(model, on_progress),
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
        measured[model] = evaluate_model(
            settings, model, runs[model], outdir, messages.append, detectors, _for_model(model, on_progress)
        )
        while messages:
            yield Event("message", model, messages.pop(0))
        options = json.loads((runs[model] / "training_options.json").read_text(encoding="utf-8"))
        training[model] = {
            "run_dir": str(runs[model]),
            "recipe": options["recipe"],
            "preset": options["preset"],
            "kimg": measured[model]["trained_kimg"].value,
        }
    names = list(dict.fromkeys(n for cells in measured.values() for n in cells)) or ["training"]
    rows = {
        m: measured[m] if m in runs else {n: Cell(None, note=f"not trained: {refused[m]}") for n in names}
        for m in settings.models
    }
    training = {m: training.get(m) or {"refused": refused[m]} for m in settings.models}
    curves = {m: curve_points(runs[m], settings.curve_metric) for m in runs} if settings.curve_metric else {}
    plots = write_plots(outdir, curves, settings.curve_metric, rows)
    if runs:
        plots.append(combine_sheets({m: outdir / f"samples-{m}.png" for m in runs}, outdir / "samples.png"))
    md, _ = write_report(outdir, settings, rows, command, training, plots)
    yield Event("done", None, str(md))


def _for_model(model: str, on_progress: Callable[[str, str, int, int], None] | None) -> Progress | None:
    """``on_progress`` of ``model``: ``(stage, done, total)`` → ``on_progress(model, stage, done, total)``."""
    if on_progress is None:
        return None
    return lambda stage, done, total: on_progress(model, stage, done, total)
