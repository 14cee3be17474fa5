"""Commands over a generator checkpoint: ``generate``, ``render``, ``info``, ``list``."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from pathlib import Path

import click
import torch

from polyinr.checkpoint import check_checkpoint_target
from polyinr.cli.group import main
from polyinr.cli.options import (
    NETWORK_HELP,
    FiniteFloat,
    FloatPair,
    RangeList,
    Size,
    Window,
    device_option,
    force_option,
    replace_hint,
    resolve_device,
)
from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.image_io import check_memory, check_new_outputs, image_grid, prepare_image_output, save_image
from polyinr.models.registry import flatten_config, get_entry, list_models
from polyinr.pretrained import load_network
from polyinr.progress import progress_bar
from polyinr.sampling import iter_ws, one_sample, ws_for
from polyinr.terminal import printable
from polyinr.tools.canvas import (
    draw_canvas_latents,
    is_canvas_file,
    load_canvas_latents,
    render_canvas_file,
    save_canvas_latents,
)
from polyinr.tools.render import moved_frame, render_tiled, render_ws

network_option = click.option("--network", "network", required=True, metavar="NETWORK", help=NETWORK_HELP)
class_option = click.option(
    "--class", "class_idx", type=int, default=None, metavar="K", help="Class label, for class-conditional models."
)


NO_TRUNCATION = {"truncation_psi": 1.0, "truncation_cutoff": None}  # the defaults of --trunc / --trunc-cutoff


def trunc_options(command):
    """``--trunc PSI`` and ``--trunc-cutoff N`` (truncate only the first N ws, as the StyleGAN family's API),
    given to the command as one argument ``truncation``: the keyword arguments of the mapping's truncation."""

    @functools.wraps(command)
    def with_truncation(*args, truncation_psi: float, truncation_cutoff: int | None, **kwargs):
        truncation = {"truncation_psi": truncation_psi, "truncation_cutoff": truncation_cutoff}
        return command(*args, truncation=truncation, **kwargs)

    psi = click.option(
        "--trunc",
        "truncation_psi",
        type=FiniteFloat(),
        default=1.0,
        metavar="PSI",
        help="Truncation psi (1 = none, 0 = the class's average w).",
    )
    cutoff = click.option(
        "--trunc-cutoff",
        "truncation_cutoff",
        type=click.IntRange(min=0),
        default=None,
        metavar="N",
        help="Truncate only the first N ws (default: all).",
    )
    return psi(cutoff(with_truncation))


def one_sample_options(command):
    """``--seed S`` or ``--latent FILE`` (a file holding one latent, e.g. from ``polyinr invert``)."""
    latent = click.option(
        "--latent",
        "latent_path",
        type=click.Path(dir_okay=False),
        default=None,
        metavar="FILE",
        help="A latent file holding one latent (e.g. from polyinr invert), instead of --seed.",
    )
    seed = click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed of the sample.")
    return seed(latent(command))


latents_option = click.option(
    "--latent",
    "latent_paths",
    type=click.Path(dir_okay=False),
    multiple=True,
    metavar="FILE",
    help="Latent file(s), e.g. from polyinr invert, instead of seeds (repeatable; their latents are used in order).",
)


@main.command()
@network_option
@click.option("--seeds", type=RangeList(), default=None, help="Seeds, e.g. 0,3-7.")
@latents_option
@class_option
@trunc_options
@click.option("--resolution", type=int, default=None, help="Render the frame at this resolution (default: native).")
@click.option(
    "--translate",
    type=FloatPair(),
    default=(0.0, 0.0),
    metavar="X,Y",
    help="Move the content X image widths right and Y heights down (StyleGAN3's convention).",
)
@click.option(
    "--rotate",
    type=FiniteFloat(),
    default=0.0,
    metavar="DEG",
    help="Rotate the content by DEG degrees about the centre (StyleGAN3's convention).",
)
@click.option(
    "--grid",
    "grid_size",
    type=Size(),
    default=None,
    metavar="CxR",
    help="Write one image grid of C columns × R rows instead of one file per seed.",
)
@click.option("--outdir", type=click.Path(file_okay=False), required=True, help="Where to write the images.")
@force_option
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=8, help="Images rendered at once.")
@device_option
def generate(
    network,
    seeds,
    latent_paths,
    class_idx,
    truncation,
    resolution,
    translate,
    rotate,
    grid_size,
    outdir,
    force,
    batch_size,
    device,
):
    """Render images from seeds or latent files into OUTDIR (seed0000.png / latent0000.png, or one --grid image).
    Images of those names already in OUTDIR are replaced only with --force."""
    device = resolve_device(device)
    G = load_network(network, device)
    if resolution is not None and resolution <= 0:
        raise PolyinrError(f"--resolution must be positive, got {resolution}")
    if latent_paths and any(is_canvas_file(p) for p in latent_paths):
        _generate_canvases(
            G, latent_paths, seeds, class_idx, truncation, resolution, grid_size, Path(outdir), force, device
        )
        return
    grid = G.check_grid(moved_frame(resolution or G.img_resolution, translate, rotate))
    H, W = grid.shape
    if seeds and latent_paths:
        raise PolyinrError("give seeds or latent files, not both")
    if seeds:  # mapped batch by batch as they are rendered: millions of seeds stream in bounded memory
        count, prefix, numbers = len(seeds), "seed", seeds
        batches = iter_ws(G, seeds, class_idx, device=device, batch_size=batch_size, **truncation)
    else:
        ws = ws_for(G, latents=latent_paths, classes=class_idx, device=device, **truncation)
        count, prefix, numbers = len(ws), "latent", range(len(ws))
        batches = (ws[i : i + batch_size] for i in range(0, len(ws), batch_size))

    def file_names() -> Iterator[str]:
        return (f"{prefix}{n:04d}.png" for n in numbers)

    with replace_hint():
        check_new_outputs(outdir, ["grid.png"] if grid_size else file_names(), force)
    at_once = min(batch_size, count)
    check_memory(
        at_once * H * W * 3 * 4 * 4,
        f"rendering {at_once} {H}x{W} images at once",
        "use polyinr render (tiled, PNG streamed to disk), a smaller --resolution or --batch",
    )
    if grid_size is not None:
        cols, rows = grid_size
        if count > cols * rows:
            raise PolyinrError(f"{count} images do not fit a {cols}x{rows} grid")
        check_memory(
            cols * rows * H * W * 3, f"a {cols}x{rows} grid of {H}x{W} images", "a smaller --grid or --resolution"
        )
    outdir = Path(outdir)
    prepare_image_output(outdir / "grid.png")
    images, names = [], file_names()
    with progress_bar(count, "generate", unit="img") as bar:
        for ws in batches:
            for name, image in zip(list(itertools.islice(names, len(ws))), render_ws(G, ws, grid, batch_size)):
                if grid_size is None:
                    save_image(image, outdir / name)
                else:
                    images.append(image)
                bar.update(1)
    if grid_size is not None:
        path = save_image(image_grid(images, cols, rows), outdir / "grid.png")
        click.echo(f"wrote {path}")
    else:
        click.echo(f"wrote {count} images to {outdir}")


def _generate_canvases(G, latent_paths, seeds, class_idx, truncation, resolution, grid_size, outdir, force, device):
    """Each canvas latent file rendered whole, as ``latentNNNN.png``."""
    with replace_hint():
        check_new_outputs(outdir, (f"latent{i:04d}.png" for i in range(len(latent_paths))), force)
    if seeds or not all(is_canvas_file(p) for p in latent_paths):
        raise PolyinrError("canvas latent files render on their own: give only canvas files to --latent")
    if class_idx is not None or truncation != NO_TRUNCATION or resolution is not None or grid_size is not None:
        raise PolyinrError("--class, --trunc, --resolution and --grid do not apply to canvas latent files")
    with progress_bar(len(latent_paths), "generate", unit="canvas") as bar:
        for i, path in enumerate(latent_paths):
            image = render_canvas_file(G, load_canvas_latents(path, G, device))
            save_image(image, outdir / f"latent{i:04d}.png")
            bar.update(1)
    click.echo(f"wrote {len(latent_paths)} canvases to {outdir}")


def render_grid(G, window, size, default_size=None) -> Grid:
    """The grid ``render`` paints: ``window`` (frame units) at ``size`` pixels.

    A canvas model paints its pixel lattice (pixel ``i`` at ``i / (R − 1)``): without a window the lattice from
    pixel (0, 0), and without a size the window's own pixels (or ``default_size``, a latent file's canvas).
    """
    if G.grid_support.kind != "canvas":
        if size is None:
            raise PolyinrError("give --size HxW")
        return Grid.window(*(window or (0.0, 0.0, 1.0, 1.0)), *size)
    step = 1.0 / (G.img_resolution - 1)
    if window is None:
        size = size or default_size
        if size is None:
            raise PolyinrError("give --size HxW (or --window)")
        return G.grid_support.sized(G, *size)
    top, left, bottom, right = window
    size = size or (round((bottom - top) / step) + 1, round((right - left) / step) + 1)
    return Grid.window(*window, *size)


@main.command()
@network_option
@one_sample_options
@class_option
@trunc_options
@click.option(
    "--window",
    type=Window(),
    default=None,
    help="Window of the plane, top,left,bottom,right; the training frame is 0,0,1,1 (the default; beyond it "
    "extrapolates, inside it zooms). Canvas models: a window of the pixel lattice, pixel i at i/(R-1).",
)
@click.option(
    "--size",
    type=Size(),
    default=None,
    help="Output pixels, HxW (canvas models: default the window's or the latent file's).",
)
@click.option("--tile", type=click.IntRange(min=1), default=512, help="Tile edge in pixels (bounds memory).")
@click.option(
    "--save-latent",
    "save_latent",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="Canvas models with --seed: also write every random input of this render to FILE.",
)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, help="Output image file.")
@device_option
def render(network, seed, latent_path, class_idx, truncation, window, size, tile, save_latent, out_path, device):
    """Render one sample on any window of the plane at any size, tile by tile."""
    device = resolve_device(device)
    G = load_network(network, device)
    canvas, default_size = None, None
    if latent_path and is_canvas_file(latent_path):
        if class_idx is not None or truncation != NO_TRUNCATION:
            raise PolyinrError("--class and --trunc do not apply to a canvas latent file")
        latents = load_canvas_latents(latent_path, G, device)
        ws, canvas, default_size = latents.ws(G), latents.canvas(), latents.pixel_shape(G)
    else:
        seeds, latents = ([seed] if seed is not None else None), ([latent_path] if latent_path else None)
        ws = one_sample(ws_for(G, seeds=seeds, latents=latents, classes=class_idx, device=device, **truncation))
    grid = render_grid(G, window, size, default_size)
    if save_latent is not None:
        if G.grid_support.kind != "canvas" or seed is None:
            raise PolyinrError("--save-latent writes the canvas of a canvas model's --seed render")
        save_canvas_latents(save_latent, draw_canvas_latents(G, seed, grid, device), G)
        click.echo(f"wrote {save_latent}")
    H, W = grid.shape
    total = (-(-H // tile)) * (-(-W // tile))
    with progress_bar(total, "render", unit="tile") as bar:
        path = render_tiled(
            G, ws, grid, out_path, tile=tile, on_tile=lambda done, _: bar.update(done - bar.n), canvas=canvas
        )
    click.echo(f"wrote {path} ({H}x{W})")


@main.command()
@click.argument("checkpoint", metavar="NETWORK")
def info(checkpoint):
    """Model, config, parameters and multiply-adds per pixel of NETWORK: a checkpoint or run directory, or a
    released model's name or URL (polyinr pretrained list)."""
    G = load_network(checkpoint)
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
    for key, value in flatten_config(G.config_dict()):  # read from the checkpoint's config.json
        click.echo(printable(f"  {key}: {value}"))


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
@click.option(
    "--force", is_flag=True, help="Replace a polyinr checkpoint already at OUT_DIR (nothing else is ever replaced)."
)
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
