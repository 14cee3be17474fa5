"""Commands over a generator checkpoint: ``generate``, ``render``, ``info``, ``list``."""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import click
import torch

from polyinr.checkpoint import check_checkpoint_target, load_generator
from polyinr.cli.group import main
from polyinr.cli.options import (
    FiniteFloat,
    FloatPair,
    RangeList,
    Size,
    Window,
    device_option,
    replace_hint,
    resolve_device,
)
from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.image_io import check_memory, image_grid, prepare_image_output, save_image
from polyinr.models.registry import flatten_config, get_entry, list_models
from polyinr.progress import progress_bar
from polyinr.sampling import iter_ws, one_sample, ws_for
from polyinr.tools.render import moved_frame, render_tiled, render_ws

network_option = click.option("--network", "network", required=True, metavar="CKPT",
                              help="Checkpoint directory (config.json + model.safetensors).")  # fmt: skip
class_option = click.option("--class", "class_idx", type=int, default=None, metavar="K",
                            help="Class label, for class-conditional models.")  # fmt: skip


def trunc_options(command):
    """``--trunc PSI`` and ``--trunc-cutoff N`` (truncate only the first N ws, as the StyleGAN family's API),
    given to the command as one argument ``truncation``: the keyword arguments of the mapping's truncation."""

    @functools.wraps(command)
    def with_truncation(*args, truncation_psi: float, truncation_cutoff: int | None, **kwargs):
        truncation = {"truncation_psi": truncation_psi, "truncation_cutoff": truncation_cutoff}
        return command(*args, truncation=truncation, **kwargs)

    psi = click.option("--trunc", "truncation_psi", type=FiniteFloat(), default=1.0, metavar="PSI",
                       help="Truncation psi (1 = none, 0 = the class's average w).")  # fmt: skip
    cutoff = click.option("--trunc-cutoff", "truncation_cutoff", type=click.IntRange(min=0), default=None,
                          metavar="N", help="Truncate only the first N ws (default: all).")  # fmt: skip
    return psi(cutoff(with_truncation))


def one_sample_options(command):
    """``--seed S`` or ``--latent FILE`` (a file holding one latent, e.g. from ``polyinr invert``)."""
    latent = click.option(
        "--latent", "latent_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
        help="A latent file holding one latent (e.g. from polyinr invert), instead of --seed.",
    )  # fmt: skip
    seed = click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed of the sample.")
    return seed(latent(command))


latents_option = click.option("--latent", "latent_paths", type=click.Path(dir_okay=False), multiple=True,
                              metavar="FILE", help="Latent file(s), e.g. from polyinr invert, instead of seeds "
                              "(repeatable; their latents are used in order).")  # fmt: skip


@main.command()
@network_option
@click.option("--seeds", type=RangeList(), default=None, help="Seeds, e.g. 0,3-7.")
@latents_option
@class_option
@trunc_options
@click.option("--resolution", type=int, default=None, help="Render the frame at this resolution (default: native).")
@click.option("--translate", type=FloatPair(), default=(0.0, 0.0), metavar="X,Y",
              help="Move the content X image widths right and Y heights down (StyleGAN3's convention).")  # fmt: skip
@click.option("--rotate", type=FiniteFloat(), default=0.0, metavar="DEG",
              help="Rotate the content by DEG degrees about the centre (StyleGAN3's convention).")  # fmt: skip
@click.option(
    "--grid",
    "grid_size",
    type=Size(),
    default=None,
    metavar="CxR",
    help="Write one image grid of C columns × R rows instead of one file per seed.",
)
@click.option("--outdir", type=click.Path(file_okay=False), required=True, help="Where to write the images.")
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=8, help="Images rendered at once.")
@device_option
def generate(network, seeds, latent_paths, class_idx, truncation, resolution, translate, rotate, grid_size, outdir,
             batch_size, device):  # fmt: skip
    """Render images from seeds or latent files into OUTDIR (seed0000.png / latent0000.png, or one --grid image)."""
    device = resolve_device(device)
    G = load_generator(network, device)
    if resolution is not None and resolution <= 0:
        raise PolyinrError(f"--resolution must be positive, got {resolution}")
    grid = G.check_grid(moved_frame(resolution or G.img_resolution, translate, rotate))
    H, W = grid.shape
    if seeds and latent_paths:
        raise PolyinrError("give seeds or latent files, not both")
    if seeds:  # mapped batch by batch as they are rendered: millions of seeds stream in bounded memory
        count, names = len(seeds), (f"seed{seed:04d}" for seed in seeds)
        batches = iter_ws(G, seeds, class_idx, device=device, batch_size=batch_size, **truncation)
    else:
        ws = ws_for(G, latents=latent_paths, classes=class_idx, device=device, **truncation)
        count, names = len(ws), (f"latent{i:04d}" for i in range(len(ws)))
        batches = (ws[i : i + batch_size] for i in range(0, len(ws), batch_size))
    at_once = min(batch_size, count)
    check_memory(at_once * H * W * 3 * 4 * 4, f"rendering {at_once} {H}x{W} images at once",
                 "use polyinr render (tiled, PNG streamed to disk), a smaller --resolution or --batch")  # fmt: skip
    if grid_size is not None:
        cols, rows = grid_size
        if count > cols * rows:
            raise PolyinrError(f"{count} images do not fit a {cols}x{rows} grid")
        check_memory(cols * rows * H * W * 3, f"a {cols}x{rows} grid of {H}x{W} images",
                     "a smaller --grid or --resolution")  # fmt: skip
    outdir = Path(outdir)
    prepare_image_output(outdir / "grid.png")
    images = []
    with progress_bar(count, "generate", unit="img") as bar:
        for ws in batches:
            for name, image in zip(list(itertools.islice(names, len(ws))), render_ws(G, ws, grid, batch_size)):
                if grid_size is None:
                    save_image(image, outdir / f"{name}.png")
                else:
                    images.append(image)
                bar.update(1)
    if grid_size is not None:
        path = save_image(image_grid(images, cols, rows), outdir / "grid.png")
        click.echo(f"wrote {path}")
    else:
        click.echo(f"wrote {count} images to {outdir}")


@main.command()
@network_option
@one_sample_options
@class_option
@trunc_options
@click.option(
    "--window",
    type=Window(),
    default="0,0,1,1",
    help="Window of the plane, top,left,bottom,right; "
    "the training frame is 0,0,1,1 (beyond it extrapolates, inside it zooms).",
)
@click.option("--size", type=Size(), required=True, help="Output pixels, HxW.")
@click.option("--tile", type=click.IntRange(min=1), default=512, help="Tile edge in pixels (bounds memory).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, help="Output image file.")
@device_option
def render(network, seed, latent_path, class_idx, truncation, window, size, tile, out_path, device):
    """Render one sample on any window of the plane at any size, tile by tile."""
    device = resolve_device(device)
    G = load_generator(network, device)
    grid = Grid.window(*window, *size)
    seeds, latents = ([seed] if seed is not None else None), ([latent_path] if latent_path else None)
    ws = one_sample(ws_for(G, seeds=seeds, latents=latents, classes=class_idx, device=device, **truncation))
    total = (-(-size[0] // tile)) * (-(-size[1] // tile))
    with progress_bar(total, "render", unit="tile") as bar:
        path = render_tiled(G, ws, grid, out_path, tile=tile, on_tile=lambda done, _: bar.update(done - bar.n))
    click.echo(f"wrote {path} ({size[0]}x{size[1]})")


@main.command()
@click.argument("checkpoint", metavar="CKPT")
def info(checkpoint):
    """Model, config, parameters and multiply-adds per pixel of a checkpoint."""
    G = load_generator(checkpoint)
    click.echo(f"model: {G.model_name}")
    click.echo(
        f"parameters: {G.parameter_count():,} (mapping {sum(p.numel() for p in G.mapping.parameters()):,}, "
        f"synthesis {sum(p.numel() for p in G.synthesis.parameters()):,})"
    )
    macs, res = G.macs_per_pixel(), G.img_resolution
    if macs is None:
        click.echo("multiply-adds per pixel: not known for this model")
    else:
        click.echo(f"multiply-adds per pixel: {macs:,}")
        click.echo(f"multiply-adds per {res}x{res} image: {macs * res * res:,}")
    click.echo(f"grids: {G.describe_grids()}")
    click.echo("config:")
    for key, value in flatten_config(G.config_dict()):
        click.echo(f"  {key}: {value}")


@main.command("list")
@click.argument("pattern", default="*")
def list_cmd(pattern):
    """Registered models, their presets and the grids they render, then training recipes, losses and
    discriminators (with a PATTERN: only the models whose names match)."""
    for name in list_models(pattern):
        entry = get_entry(name)
        presets = ", ".join(sorted(entry.presets)) or "-"
        grids = entry.generator_cls.grid_support
        click.echo(f"{name}  presets: {presets}  grids: {grids.kind} ({grids.summary})")
    if pattern == "*":
        _list_training_parts()


def _list_training_parts() -> None:
    """The training recipes (with the size of model preset they train), losses and discriminators."""
    from polyinr.discriminators import list_discriminators
    from polyinr.training.losses import LOSSES
    from polyinr.training.recipes import RECIPES

    click.echo("training recipes (polyinr train --recipe NAME; cpu-sized recipes train a model's cpu preset):")
    for recipe in sorted(RECIPES.values(), key=lambda r: r.name):
        click.echo(f"  {recipe.name}  ({recipe.size}-sized, {recipe.loss} loss, {recipe.disc} D): {recipe.summary}")
    click.echo(f"losses: {', '.join(sorted(LOSSES))}")
    click.echo(f"discriminators: {', '.join(list_discriminators())}")


@main.command()
@click.option("--model", default="poly-inr", show_default=True, help="Registered model name.")
@click.option("--preset", default="cpu", show_default=True, help="Named preset of the model.")
@click.option("--classes", "num_classes", type=click.IntRange(min=0), default=None, help="Number of classes.")
@click.option("--resolution", "img_resolution", type=click.IntRange(min=2), default=None, help="Native resolution.")
@click.option("--seed", type=int, default=0, help="Seed of the random initialisation.")
@click.option("--force", is_flag=True, help="Replace a polyinr checkpoint already at OUT_DIR (nothing else is ever "
              "replaced).")  # fmt: skip
@click.argument("out", metavar="OUT_DIR")
def create(model, preset, num_classes, img_resolution, seed, out, force):
    """Create a randomly initialised model and save it as a checkpoint."""
    from polyinr.models.registry import create as create_model

    with replace_hint():
        check_checkpoint_target(out, overwrite=force)
        torch.manual_seed(seed)
        G = create_model(model, preset, num_classes=num_classes, img_resolution=img_resolution)
        path = G.save(out, overwrite=force)
    click.echo(f"wrote {path} ({G.model_name}, {G.parameter_count():,} parameters)")
