"""One data set, one budget, one discriminator and loss: every registered generator trained and measured alike.

:func:`run_comparison` trains each model through :func:`~polyinr.training.loop.training_loop` in its own
run directory under ``outdir/runs/<model>/`` (a shared recipe by default, or each model's own) for the same
budget (kimg, and optionally minutes of training or until its curve metric reaches a plateau), then measures
each trained generator (the EMA weights of its last snapshot) with the same metric code and real statistics:
quality metrics with the detectors available without a download (on the built-in data, by default, FID,
precision/recall, CAS and ScaleInv FID in that data's offline feature space), equivariance where the grid
contract allows, parameters, multiply-adds per pixel, how far and how long it trained, training images/s (the
run's ``stats.jsonl``), rendering megapixels/s at 1× and 4× density (4× the pixels per side; each timed call
renders a batch of at least :data:`SPEED_PIXELS` pixels, so both densities pay the same per-call overhead) and
the peak memory of one big render. It writes ``report.md``, ``report.json``, PNG plots and sample sheets into
``outdir``. Every cell of the table holds a value, or the one-line reason why there is none.

With several training seeds each model trains once per seed (seed 0 in ``runs/<model>/``, seed ``s`` in
``runs/<model>/seed-<s>/``); a measurement that differs between runs is their mean, each seed's value kept in
``report.json``, and the reading of the table gives the range and whether two models' ranges overlap.

A model that cannot train under the settings (the training refuses with a one-line
:class:`~polyinr.errors.PolyinrError`, e.g. images smaller than a patch-trained model's patch) does not stop the
others: every cell of its row holds that reason (``outdir/runs/<model>/refused.json`` keeps it for a report
written from runs trained in other processes).

Re-running continues unfinished runs, skips finished ones and tries refused ones again (the settings may have
changed): ``outdir/runs/<model>/trained.json`` marks a finished training run and
``outdir/runs/<model>/evaluation.json`` its measurements (for the same settings). A signal
(:class:`~polyinr.interrupt.Interrupted`) stops the comparison and records nothing of the model it was on: its
training continues from its newest snapshot.

The package by job: :mod:`.settings` (what every model shares), :mod:`.runs` (running the trainings),
:mod:`.measure` (measuring a trained model: :mod:`.detectors` says which metrics can be measured offline,
:mod:`.memory_probe` is the big render's own process, :mod:`.cell` one value of the table), :mod:`.sheets` and
:mod:`.plots` (pictures), :mod:`.training_seeds` (one row from several seeds' runs), :mod:`.table`,
:mod:`.reading` and :mod:`.report` (writing the report) and
:mod:`.comparison` (all of it in order).
"""

from polyinr.tools.compare.cell import Cell
from polyinr.tools.compare.comparison import Event, run_comparison
from polyinr.tools.compare.detectors import detector_unavailable
from polyinr.tools.compare.measure import (
    SPEED_PIXELS,
    RenderSpeed,
    big_render_memory,
    evaluate_model,
    macs_cell,
    metric_cells,
    render_speed,
    sample_sheet_cell,
    training_speed,
)
from polyinr.tools.compare.report import write_report
from polyinr.tools.compare.runs import (
    finished_run,
    model_preset,
    native_recipe,
    record_refusal,
    refusal,
    train_in_processes,
    train_model,
    training_options,
)
from polyinr.tools.compare.settings import (
    CPU,
    PAPER,
    CompareSettings,
    check_settings,
    default_curve_metric,
    default_metrics,
    describe_budget,
)
from polyinr.tools.compare.sheets import sample_sheet, sheet_grids
from polyinr.tools.compare.training_seeds import combine_seeds

__all__ = [
    "CPU",
    "PAPER",
    "SPEED_PIXELS",
    "Cell",
    "CompareSettings",
    "Event",
    "RenderSpeed",
    "big_render_memory",
    "check_settings",
    "combine_seeds",
    "default_curve_metric",
    "default_metrics",
    "describe_budget",
    "detector_unavailable",
    "evaluate_model",
    "finished_run",
    "macs_cell",
    "metric_cells",
    "model_preset",
    "native_recipe",
    "record_refusal",
    "refusal",
    "render_speed",
    "run_comparison",
    "sample_sheet",
    "sample_sheet_cell",
    "sheet_grids",
    "train_in_processes",
    "train_model",
    "training_options",
    "training_speed",
    "write_report",
]
