"""``polyinr dataset``: turn an image folder, a zip or a built-in into a StyleGAN dataset zip."""

from __future__ import annotations

import click

from polyinr.cli.group import main
from polyinr.cli.options import Size
from polyinr.data.images import TRANSFORMS
from polyinr.data.prepare import prepare_dataset
from polyinr.progress import progress_bar


@main.command()
@click.option(
    "--source",
    required=True,
    metavar="DIR|ZIP|builtin:NAME",
    help="Image folder, dataset zip, or builtin:NAME (digits, shapes, photos, faces, textures).",
)
@click.option("--dest", required=True, type=click.Path(dir_okay=False), metavar="OUT.zip", help="Output zip.")
@click.option("--resolution", type=Size(), required=True, metavar="R", help="Output size: R or RxR (square).")
@click.option(
    "--transform",
    type=click.Choice(TRANSFORMS),
    default="center-crop",
    help="center-crop: largest centred square; center-crop-wide: 2:1 crop on a black square; "
    "resize: plain resize (aspect not kept).",
)
@click.option("--max-images", type=click.IntRange(min=1), default=None, help="Keep at most N images (random subset).")
def dataset(source, dest, resolution, transform, max_images):
    """Write a dataset zip in StyleGAN's format (uncompressed PNGs + dataset.json)."""
    height, width = resolution
    if height != width:
        raise click.BadParameter(
            f"only square resolutions are supported, got {height}x{width}", param_hint="--resolution"
        )

    bar = None

    def on_progress(done: int, total: int) -> None:
        nonlocal bar
        bar = bar or progress_bar(total, "dataset", unit="img")
        bar.update(done - bar.n)
        if done == total:
            bar.close()

    try:
        count = prepare_dataset(source, dest, height, transform, max_images, on_progress)
    finally:
        if bar is not None:
            bar.close()
    click.echo(f"wrote {count} images ({height}x{height}) to {dest}")
