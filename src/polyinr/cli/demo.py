"""``polyinr demo``: the README's main job."""

from __future__ import annotations

import click

from polyinr.cli.group import main
from polyinr.cli.train import TrainingProgress


@main.command()
@click.option("--outdir", default="demo", show_default=True, help="Where the run and the pictures go.")
@click.option("--kimg", type=float, default=None, help="Training length in thousands of images.  [default: preset]")
@click.option("--resume", default="auto", show_default=True, help="auto (continue a matching run), new, or a run.")
def demo(outdir, kimg, resume):
    """Train the CPU preset on the built-in digits for a few minutes, render it three ways, measure its quality."""
    from polyinr.tools.demo import quality_line, run_demo

    progress = TrainingProgress("train digits")
    try:
        paths = run_demo(
            outdir,
            kimg=kimg,
            resume=resume,
            on_tick=progress.on_tick,
            on_message=progress.on_message,
            on_step=progress.on_step,
        )
    finally:
        progress.close()
    click.echo(f"run directory:            {paths['run']}")
    click.echo(f"generator checkpoint:     {paths['checkpoint']}")
    click.echo(f"samples (training grid):  {paths['samples']}")
    click.echo(f"4x denser grid:           {paths['dense']}")
    click.echo(f"beyond the borders:       {paths['extrapolation']}")
    click.echo(f"real vs generated:        {paths['real_vs_generated']}")
    click.echo(f"quality:                  {quality_line(paths['quality'])}")
