"""``polyinr compare``: train every named generator alike on one data set and write one report."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from polyinr.cli.group import main, resumable
from polyinr.errors import PolyinrError


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


@main.command()
@click.option(
    "--data", required=True, metavar="PATH", help="Image folder, dataset zip or builtin:digits|shapes|photos."
)
@click.option("--models", required=True, metavar="A,B,…", help="Registered generators to compare (polyinr list).")
@click.option("--preset", type=click.Choice(["cpu", "paper"]), default="cpu", help="Size class of each model's preset.")
@click.option("--kimg", type=float, required=True, help="Training budget of every model, thousands of images.")
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Runs, report and plots go here.")
@click.option(
    "--metrics",
    default=None,
    metavar="LIST",
    help="Metrics of the table (polyinr metrics names).  [default: on builtin data, fid_D, pr_D, cas_D (with "
    "--cond), scaleinv_fid_S2_D, scaleinv_fid_S4_D in its offline feature space D; else small ones for cpu, the "
    "papers' for paper; then EQ-T, EQ-T_frac, EQ-R]",
)
@click.option("--seeds", default=None, metavar="LIST", help="Seeds of the sample sheets, e.g. 0-5.  [default: 0-5]")
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
@click.option("--parallel", is_flag=True, help="Train one model per process, all at once.")
@click.option("--train-only", is_flag=True, hidden=True)
@resumable
def compare(data, models, preset, kimg, outdir, metrics, seeds, native_recipes, recipe, resolution, batch, cond,
            snap_kimg, big_render, workers, device, parallel, train_only):  # fmt: skip
    """Train and measure several generators under identical conditions; write DIR/report.md."""
    from polyinr.metrics import parse_metrics
    from polyinr.sampling import parse_range_list
    from polyinr.tools.compare import CompareSettings, check_settings, run_comparison, train_in_processes

    settings = check_settings(CompareSettings(
        data=data, models=_names(models), preset=preset, kimg=kimg,
        metrics=tuple(parse_metrics(metrics)) if metrics is not None else (),
        seeds=tuple(parse_range_list(seeds)) if seeds is not None else tuple(range(6)),
        native_recipes=native_recipes, recipe=recipe, resolution=resolution, batch=batch, cond=cond,
        snap_kimg=snap_kimg, big_render=big_render, workers=workers, device=device,
    ))  # fmt: skip
    params = click.get_current_context().params
    command = "polyinr compare " + shlex.join(_flags(params, skip=("train_only",)))
    if parallel:
        def argv_for(model: str) -> list[str]:
            rest = _flags({**params, "models": model}, skip=("parallel", "train_only"))
            return [sys.executable, "-m", "polyinr", "compare", *rest, "--train-only"]

        codes = train_in_processes(argv_for, settings.models, Path(outdir) / "logs")
        failed = [m for m, code in codes.items() if code != 0]
        if failed:
            raise PolyinrError(f"training failed for {', '.join(failed)} (see {outdir}/logs/<model>.log)")
    for event in run_comparison(settings, outdir, command=command, train=not parallel, evaluate=not train_only):
        if event.kind == "done":
            click.echo(f"report: {event.text}")
        else:
            click.echo(f"{event.model}: {event.text}", err=True)
