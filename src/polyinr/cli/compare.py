"""``polyinr compare``: train every named generator alike on one data set and write one report."""

from __future__ import annotations

import json
import os
import shlex
import sys
from contextlib import ExitStack
from pathlib import Path

import click
import torch

from polyinr.cli.group import main, resumable
from polyinr.cli.metrics import StageBars
from polyinr.cli.train import TrainingProgress
from polyinr.errors import PolyinrError
from polyinr.metrics import parse_metrics
from polyinr.sampling import parse_range_list
from polyinr.tools.compare import CompareSettings, check_settings, describe_budget, run_comparison, train_in_processes
from polyinr.training.plateau import PlateauRule, plateau_rule


def _flags(params: dict, skip: tuple[str, ...]) -> list[str]:
    """The command line that gives ``params`` (flags set to None or False left out)."""
    args: list[str] = []
    for name, value in params.items():
        if name in skip or value is None or value is False:
            continue
        args += [f"--{name.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return args


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


class _TrainingBars:
    """``on_step(model, cur_nimg, total_nimg)`` → one training progress bar per model, closed when the next starts."""

    def __init__(self) -> None:
        self.model: str | None = None
        self.progress: TrainingProgress | None = None

    def on_step(self, model: str, cur_nimg: int, total_nimg: int) -> None:
        if model != self.model:
            self.close()
            self.model, self.progress = model, TrainingProgress(f"{model}: training")
        self.progress.on_step(cur_nimg, total_nimg)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        self.model, self.progress = None, None

    def __enter__(self) -> _TrainingBars:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@main.command()
@click.option(
    "--data",
    required=True,
    metavar="PATH",
    help="Image folder, dataset zip or builtin:NAME (digits, shapes, photos, faces, textures).",
)
@click.option("--models", required=True, metavar="A,B,…", help="Registered generators to compare (polyinr list).")
@click.option("--preset", type=click.Choice(["cpu", "paper"]), default="cpu", help="Size class of each model's preset.")
@click.option(
    "--kimg",
    type=float,
    required=True,
    help="Training budget of every model, thousands of images (with --minutes or --until-plateau: the most).",
)
@click.option(
    "--minutes",
    type=float,
    default=None,
    help="Equal training time for every model, in minutes (snapshots and their curve metric aside).",
)
@click.option(
    "--until-plateau",
    is_flag=True,
    help="Stop a model when its curve metric stops improving (see --plateau-margin, --plateau-snapshots).",
)
@click.option(
    "--plateau-margin",
    type=float,
    default=None,
    help=f"Improvement that still counts, as a fraction of the best value so far.  [default: {PlateauRule.margin}]",
)
@click.option(
    "--plateau-snapshots",
    type=int,
    default=None,
    help=f"Snapshots that must bring no more than the margin to stop.  [default: {PlateauRule.patience}]",
)
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Runs, report and plots go here.")
@click.option(
    "--metrics",
    default=None,
    metavar="LIST",
    help="Metrics of the table (polyinr metrics names), measured once, at the end; only the curve metric runs at "
    "each snapshot (on builtin data its first quality metric; elsewhere, with --preset cpu, fid0.5k_data, in a "
    "small space fitted to the data).  [default: on builtin data, fid_D, pr_D, cas_D (with --cond), "
    "scaleinv_fid_S2_D, scaleinv_fid_S4_D in its offline feature space D; else, for cpu, fid0.5k_data, "
    "pr0.5k_data and 500-sample Inception/VGG16 metrics, the papers' for paper; then EQ-T, EQ-T_frac, EQ-R]",
)
@click.option("--seeds", default=None, metavar="LIST", help="Seeds of the sample sheets, e.g. 0-5.  [default: 0-5]")
@click.option(
    "--train-seeds",
    default=None,
    metavar="LIST",
    help="Train each model once per seed, e.g. 0,1: the table gives the mean, the reading the range.  [default: 0]",
)
@click.option("--native-recipes", is_flag=True, help="Each model's own training recipe instead of one shared recipe.")
@click.option("--recipe", default=None, help="The shared recipe.  [default: cpu, or stylegan3 for paper presets]")
@click.option("--resolution", type=int, default=None, help="Training resolution.  [default: the data's]")
@click.option("--batch", type=int, default=None, help="Total batch size.  [default: the recipe's]")
@click.option("--cond", is_flag=True, help="Class-conditional on the data's labels.")
@click.option("--snap-kimg", type=float, default=None, help="Snapshot and curve-point interval in kimg.")
@click.option(
    "--big-render", type=click.IntRange(min=1), default=4096, help="Side of the render whose memory is measured."
)
@click.option("--workers", type=click.IntRange(min=0), default=0, help="Data-loading worker processes.")
@click.option("--device", default="cpu", help="cpu, cuda or cuda:N.")
@click.option(
    "--parallel", is_flag=True, help="Train one model per process, all at once, each on an equal share of the cores."
)
@click.option("-n", "--dry-run", is_flag=True, help="Print the resolved settings and when training ends, and exit.")
@click.option("--train-only", is_flag=True, hidden=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, hidden=True)  # a --parallel process's share
@resumable
def compare(
    data,
    models,
    preset,
    kimg,
    minutes,
    until_plateau,
    plateau_margin,
    plateau_snapshots,
    outdir,
    metrics,
    seeds,
    train_seeds,
    native_recipes,
    recipe,
    resolution,
    batch,
    cond,
    snap_kimg,
    big_render,
    workers,
    device,
    parallel,
    dry_run,
    train_only,
    threads,
):
    """Train and measure several generators under identical conditions; write DIR/report.md."""
    if not until_plateau and (plateau_margin is not None or plateau_snapshots is not None):
        raise PolyinrError("--plateau-margin and --plateau-snapshots apply only with --until-plateau")
    plateau = plateau_rule(plateau_margin, plateau_snapshots) if until_plateau else None
    settings = check_settings(
        CompareSettings(
            data=data,
            models=_names(models),
            preset=preset,
            kimg=kimg,
            minutes=minutes,
            plateau=plateau,
            metrics=tuple(parse_metrics(metrics)) if metrics is not None else (),
            seeds=tuple(parse_range_list(seeds)) if seeds is not None else tuple(range(6)),
            train_seeds=tuple(parse_range_list(train_seeds, "training seeds")) if train_seeds is not None else (0,),
            native_recipes=native_recipes,
            recipe=recipe,
            resolution=resolution,
            batch=batch,
            cond=cond,
            snap_kimg=snap_kimg,
            big_render=big_render,
            workers=workers,
            device=device,
        )
    )
    share = max(1, (os.cpu_count() or 1) // len(settings.models))  # torch threads of each --parallel process
    if dry_run:
        resolved = {"settings": settings.to_json(), "budget": describe_budget(settings)}
        if parallel:
            resolved["threads_per_process"] = share
        click.echo(json.dumps(resolved, indent=2, sort_keys=True))
        return
    if threads is not None:
        torch.set_num_threads(threads)
    params = click.get_current_context().params
    command = "polyinr compare " + shlex.join(_flags(params, skip=("train_only", "threads")))
    if parallel:

        def argv_for(model: str) -> list[str]:
            rest = _flags({**params, "models": model, "threads": share}, skip=("parallel", "train_only"))
            return [sys.executable, "-m", "polyinr", "compare", *rest, "--train-only"]

        codes = train_in_processes(argv_for, settings.models, Path(outdir) / "logs")
        failed = [m for m, code in codes.items() if code != 0]
        if failed:
            raise PolyinrError(f"training failed for {', '.join(failed)} (see {outdir}/logs/<model>.log)")
    with ExitStack() as stack:
        training = stack.enter_context(_TrainingBars())
        metric_bars = StageBars(stack)
        events = run_comparison(
            settings,
            outdir,
            command=command,
            train=not parallel,
            evaluate=not train_only,
            on_step=None if train_only else training.on_step,  # a --parallel process writes a log, not bars
            on_progress=None
            if train_only
            else (lambda model, stage, done, total: metric_bars(f"{model} {stage}", done, total)),
        )
        for event in events:
            if event.kind == "done":
                click.echo(f"report: {event.text}")
            else:
                click.echo(f"{event.model}: {event.text}", err=True)
