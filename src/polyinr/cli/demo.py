"""``polyinr demo``: the README's main job."""

from __future__ import annotations

import click

from polyinr.cli import main
from polyinr.progress import progress_bar


@main.command()
@click.option("--outdir", default="demo", show_default=True, help="Where the run and the pictures go.")
@click.option("--kimg", type=float, default=None, help="Training length in thousands of images.  [default: preset]")
@click.option("--resume", default="auto", show_default=True, help="auto (continue a matching run), new, or a run.")
def demo(outdir, kimg, resume):
    """Train the CPU preset on the built-in digits for a few minutes, then render it three ways."""
    bar = progress_bar(total=None, desc="train digits", unit="kimg")

    def on_tick(tick) -> None:
        bar.total = round(tick.total_nimg / 1000, 3)
        bar.n = round(tick.cur_nimg / 1000, 3)
        ips = tick.stats.get("Timing/images_per_sec", 0.0)
        bar.set_postfix({"img/s": f"{ips:.0f}", "G": f"{tick.stats.get('Loss/G/loss', float('nan')):.3f}",
                         "D": f"{tick.stats.get('Loss/D/loss', float('nan')):.3f}"})  # fmt: skip
        bar.refresh()

    from polyinr.tools.demo import run_demo

    with bar:
        paths = run_demo(outdir, kimg=kimg, resume=resume, on_tick=on_tick, on_message=bar.write)
    click.echo(f"run directory:            {paths['run']}")
    click.echo(f"generator checkpoint:     {paths['checkpoint']}")
    click.echo(f"samples (training grid):  {paths['samples']}")
    click.echo(f"4x denser grid:           {paths['dense']}")
    click.echo(f"beyond the borders:       {paths['extrapolation']}")
