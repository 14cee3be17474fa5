"""Continuous-image tools: ``video``, ``mix``, ``heatmap``, ``invert``, ``outpaint``; InfinityGAN canvases: ``fuse``,
``outpaint-canvas``, ``inbetween``.

The demonstrations of the Poly-INR paper as commands; every output is a picture or a video. Latents come
from seeds or from latent files (``--latent``, written by ``invert``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import click
import numpy as np
from click.core import ParameterSource

from polyinr.cli.group import main
from polyinr.cli.models import class_option, latents_option, network_option, one_sample_options, trunc_options
from polyinr.cli.options import (
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
from polyinr.image_io import check_new_outputs, save_image
from polyinr.pretrained import load_network
from polyinr.progress import progress_bar
from polyinr.sampling import latents_from_seeds, one_sample, ws_for
from polyinr.tools.edit import INTERPOLATIONS, heatmap_figure, level_maps, num_path_frames, style_mix_figure
from polyinr.tools.invert import PERCEPTUAL, SPACES, invert_image, outpaint
from polyinr.tools.video import flight, flight_grids, latent_walk, walk_keys, write_video


def _given(ctx: click.Context, names: Iterable[str]) -> list[str]:
    """The options among ``names`` that were set on the command line, as ``--flag`` names."""
    return [f"--{n.replace('_', '-')}" for n in names if ctx.get_parameter_source(n) != ParameterSource.DEFAULT]


def _with_bar(frames: Iterable[np.ndarray], total: int, desc: str) -> Iterator[np.ndarray]:
    with progress_bar(total, desc, unit="frame") as bar:
        for frame in frames:
            yield frame
            bar.update(1)


window_option = click.option(
    "--window",
    type=Window(),
    default="0,0,1,1",
    help="Window of the plane, top,left,bottom,right (the frame is 0,0,1,1).",
)
size_option = click.option(
    "--size", type=Size(), default=None, metavar="HxW", help="Pixels of each image (default: the native resolution)."
)


def _grid(G, window, size) -> Grid:
    return Grid.window(*window, *(size or (G.img_resolution, G.img_resolution)))


WALK_OPTIONS = ("space", "kind", "frames_per_step", "loop")


@main.command()
@network_option
@click.option(
    "--seeds",
    type=RangeList(),
    default=None,
    help="Walks: key seeds, cell by cell (K per cell). Flights: one seed per cell.",
)
@latents_option
@class_option
@trunc_options
@click.option(
    "--space",
    type=click.Choice(["z", "w", "inr"]),
    default="w",
    help="Walk: interpolate in Z, in W, or the INR parameters the ws give (INR-GAN).",
)
@click.option("--kind", type=click.Choice(INTERPOLATIONS), default="lerp", help="Walk: linear or spherical.")
@click.option("--frames-per-step", type=click.IntRange(min=1), default=60, help="Walk: frames from key to key.")
@click.option("--loop/--no-loop", default=True, help="Walk: return from the last key to the first.")
@click.option(
    "--pan",
    type=FloatPair(),
    default=None,
    metavar="DR,DC",
    help="Flight: move the window DR rows, DC columns (frame units) over the video.",
)
@click.option(
    "--zoom",
    type=float,
    default=None,
    metavar="FACTOR",
    help="Flight: final window size relative to the start (< 1 zooms in).",
)
@click.option("--frames", type=click.IntRange(min=2), default=120, help="Flight: number of frames.")
@click.option("--grid", "grid_size", type=Size(), default="1x1", metavar="CxR", help="Videos side by side.")
@window_option
@size_option
@click.option("--fps", type=click.IntRange(min=1), default=30, help="Frames per second.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, help="Output .mp4 or .gif.")
@device_option
@click.pass_context
def video(
    ctx,
    network,
    seeds,
    latent_paths,
    class_idx,
    truncation,
    space,
    kind,
    frames_per_step,
    loop,
    pan,
    zoom,
    frames,
    grid_size,
    window,
    size,
    fps,
    out_path,
    device,
):
    """A looping latent walk, or with --pan / --zoom a flight over the continuous image plane."""
    device = resolve_device(device)
    G = load_network(network, device)
    cols, rows = grid_size
    grid = _grid(G, window, size)
    if pan is not None or zoom is not None:
        if _given(ctx, WALK_OPTIONS):
            raise PolyinrError(f"{', '.join(_given(ctx, WALK_OPTIONS))} apply to latent walks, not to --pan/--zoom")
        ws = ws_for(G, seeds=seeds, latents=latent_paths, classes=class_idx, device=device, **truncation)
        if len(ws) != cols * rows:
            raise PolyinrError(
                f"a flight shows one sample per cell: give {cols * rows} seeds or latents, not {len(ws)}"
            )
        lattice = 1.0 / (G.img_resolution - 1) if G.grid_support.kind == "canvas" else None
        grids = flight_grids(window, grid.shape, frames, pan or (0.0, 0.0), 1.0 if zoom is None else zoom, lattice)
        images, total = flight(G, ws, grids, cols), frames
    else:
        if _given(ctx, ["frames"]):
            raise PolyinrError("--frames sets the length of a --pan/--zoom flight; a walk uses --frames-per-step")
        if space == "z":
            if latent_paths:
                raise PolyinrError("--space z needs --seeds: latent files hold ws; use --space w")
            if not seeds:
                raise PolyinrError("give --seeds")
            keys = walk_keys(latents_from_seeds(seeds, G.z_dim).to(device), cols * rows)
            images = latent_walk(
                G, keys, frames_per_step, kind, loop, "z", class_idx, grid=grid, cols=cols, **truncation
            )
        else:
            ws = ws_for(G, seeds=seeds, latents=latent_paths, classes=class_idx, device=device, **truncation)
            keys = walk_keys(ws, cols * rows)
            images = latent_walk(G, keys, frames_per_step, kind, loop, space, grid=grid, cols=cols)
        total = num_path_frames(len(keys), frames_per_step, loop)
    count = write_video(_with_bar(images, total, "video"), out_path, fps)
    click.echo(f"wrote {out_path} ({count} frames, {count / fps:.1f} s)")


@main.command()
@network_option
@click.option("--rows", type=RangeList(), required=True, help="Row sources: seeds, or indices into the --latent files.")
@click.option("--cols", type=RangeList(), required=True, help="Column sources: seeds, or indices as for --rows.")
@click.option("--levels", type=RangeList(), required=True, help="Levels taken from the column source, e.g. 0-3.")
@latents_option
@class_option
@trunc_options
@window_option
@size_option
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, help="Output image file.")
@device_option
def mix(network, rows, cols, levels, latent_paths, class_idx, truncation, window, size, out_path, device):
    """Style mixing: each row source with the chosen levels taken from each column source."""
    device = resolve_device(device)
    G = load_network(network, device)
    if latent_paths:
        ws = ws_for(G, seeds=None, latents=latent_paths, classes=class_idx, device=device, **truncation)
        missing = sorted({i for i in rows + cols if i >= len(ws)})
        if missing:
            raise PolyinrError(f"the --latent files hold {len(ws)} latents; there is no latent {missing}")
        row_ws, col_ws = ws[rows], ws[cols]
    else:
        row_ws = ws_for(G, seeds=rows, latents=None, classes=class_idx, device=device, **truncation)
        col_ws = ws_for(G, seeds=cols, latents=None, classes=class_idx, device=device, **truncation)
    path = save_image(style_mix_figure(G, row_ws, col_ws, levels, _grid(G, window, size)), out_path)
    click.echo(f"wrote {path} ({len(rows)} rows x {len(cols)} columns, levels {levels} from the columns)")


@main.command()
@network_option
@one_sample_options
@class_option
@trunc_options
@window_option
@size_option
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, help="Output image file.")
@device_option
def heatmap(network, seed, latent_path, class_idx, truncation, window, size, out_path, device):
    """What each Poly-INR level contributes at each pixel, as a labelled figure."""
    device = resolve_device(device)
    G = load_network(network, device)
    seeds, latents = ([seed] if seed is not None else None), ([latent_path] if latent_path else None)
    ws = one_sample(ws_for(G, seeds=seeds, latents=latents, classes=class_idx, device=device, **truncation))
    path = save_image(heatmap_figure(level_maps(G, ws, _grid(G, window, size))), out_path)
    click.echo(f"wrote {path}")


def _inversion_options(command):
    for option in reversed(
        [
            network_option,
            click.option("--image", "image_path", required=True, metavar="FILE", help="The real image."),
            class_option,
            click.option("--space", type=click.Choice(SPACES), default="w+", help="One w for all levels, or one each."),
            click.option("--steps", "num_steps", type=click.IntRange(min=1), default=1000, help="Optimisation steps."),
            click.option(
                "--perceptual",
                type=click.Choice(PERCEPTUAL),
                default="auto",
                help="Perceptual distance: LPIPS when available offline, else a Laplacian-pyramid L1.",
            ),
            click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output directory."),
            force_option,
            device_option,
        ]
    ):
        command = option(command)
    return command


def _report(inversion, out_dir) -> None:
    click.echo(f"PSNR {inversion.psnr:.2f} dB (perceptual distance: {inversion.perceptual})")
    if inversion.tuned_psnr is not None:
        click.echo(f"PSNR after pivotal tuning {inversion.tuned_psnr:.2f} dB")
    click.echo(f"wrote {', '.join(p.name for p in inversion.files.values())} to {out_dir}")


@main.command()
@_inversion_options
@click.option("--pti", is_flag=True, help="Then pivotal tuning: fine-tune the generator around the latent.")
@click.option("--pti-steps", type=click.IntRange(min=1), default=350, help="Pivotal tuning steps (with --pti).")
@click.pass_context
def invert(ctx, network, image_path, class_idx, space, num_steps, perceptual, out_dir, force, device, pti, pti_steps):
    """Find the latent that reproduces a real image (writes latent, reconstruction, progress video); with --pti
    also the generator fine-tuned around it (tuned/, beside the latent). Files of those names already in the
    output folder are replaced only with --force."""
    if not pti and _given(ctx, ["pti_steps"]):
        raise PolyinrError("--pti-steps sets the length of pivotal tuning: add --pti")
    device = resolve_device(device)
    G = load_network(network, device)
    pti_steps = pti_steps if pti else 0
    with replace_hint(), progress_bar(num_steps + 1 + pti_steps, "invert", unit="step") as bar:
        inversion = invert_image(
            G,
            image_path,
            out_dir,
            class_idx,
            space,
            num_steps,
            perceptual,
            device,
            on_step=lambda state: bar.update(1),
            pti_steps=pti_steps,
            overwrite=force,
        )
    _report(inversion, out_dir)


@main.command("outpaint")
@_inversion_options
@click.option(
    "--window",
    type=Window(),
    required=True,
    help="Window to render around the image (the frame 0,0,1,1), e.g. -0.5,-0.5,1.5,1.5.",
)
@click.option(
    "--size",
    type=Size(),
    default=None,
    metavar="HxW",
    help="Output pixels (default: the image's pixel spacing over the whole window).",
)
def outpaint_cmd(network, image_path, class_idx, space, num_steps, perceptual, out_dir, force, device, window, size):
    """Invert a real image, then render a larger window: the image continued beyond its borders."""
    device = resolve_device(device)
    G = load_network(network, device)
    with replace_hint(), progress_bar(num_steps + 1, "invert", unit="step") as bar:
        inversion = outpaint(
            G,
            image_path,
            out_dir,
            window,
            size,
            class_idx,
            space,
            num_steps,
            perceptual,
            device,
            on_step=lambda state: bar.update(1),
            overwrite=force,
        )
    _report(inversion, out_dir)


def _parse_style(text: str) -> tuple[int, float, float]:
    seed, sep, where = text.partition("@")
    parts = where.split(",")
    try:
        if not sep or len(parts) != 2:
            raise ValueError
        return int(seed), float(parts[0]), float(parts[1])
    except ValueError:
        raise PolyinrError(f"a style is SEED@ROW,COL (lattice pixels), got {text!r}") from None


@main.command()
@network_option
@click.option(
    "--styles",
    "style_specs",
    multiple=True,
    required=True,
    metavar="SEED@ROW,COL",
    help="Styles: the global latent of SEED centred at lattice pixel ROW,COL (repeatable).",
)
@click.option("--size", type=Size(), required=True, metavar="HxW", help="Output pixels (the lattice from 0,0).")
@click.option("--blur", type=click.IntRange(min=1), default=255, help="Side of the box blur between styles, pixels.")
@click.option("--tile", type=click.IntRange(min=1), default=512, help="Tile edge in pixels (bounds memory).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, help="Output image file.")
@device_option
def fuse(network, style_specs, size, blur, tile, out_path, device):
    """Spatial style fusion (InfinityGAN): several styles placed on one canvas, blended by proximity."""
    from polyinr.tools.render import render_tiled

    device = resolve_device(device)
    G = load_network(network, device)
    if G.grid_support.kind != "canvas":
        raise PolyinrError(f"{G.model_name} has no canvas to fuse styles on (InfinityGAN has)")
    styles = [_parse_style(s) for spec in style_specs for s in spec.split()]
    ws = ws_for(G, seeds=[seed for seed, _, _ in styles], device=device)
    fusion = G.style_fusion(ws, [(row, col) for _, row, col in styles], blur=blur)
    grid = G.grid_support.sized(G, *size)
    total = (-(-size[0] // tile)) * (-(-size[1] // tile))
    with progress_bar(total, "fuse", unit="tile") as bar:
        path = render_tiled(
            G, ws[:1], grid, out_path, tile=tile, on_tile=lambda done, _: bar.update(done - bar.n), fusion=fusion
        )
    click.echo(f"wrote {path} ({size[0]}x{size[1]}, {len(styles)} styles)")


def _image_at_height(path: str, height: int, device):
    """An image file as ``[1, 3, height, width]`` in ``[-1, 1]``, its aspect ratio kept."""
    from PIL import Image, UnidentifiedImageError

    from polyinr.tools.invert import ImageFileError, load_image

    try:
        with Image.open(path) as img:
            w, h = img.size
    except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
        raise ImageFileError(f"{path} is not an image Pillow can read ({type(e).__name__})") from None
    return load_image(path, (height, max(1, round(height * w / h))), device)


def _canvas_options(command):
    for option in reversed(
        [
            network_option,
            click.option(
                "--height",
                type=click.IntRange(min=2),
                default=None,
                help="Height of the image(s) on the canvas, pixels (default: the model's patch).",
            ),
            click.option("--steps", "num_steps", type=click.IntRange(min=1), default=1000, help="Optimisation steps."),
            click.option(
                "--perceptual",
                type=click.Choice(PERCEPTUAL),
                default="auto",
                help="Perceptual distance: LPIPS when available offline, else a Laplacian-pyramid L1.",
            ),
            click.option("--seed", type=click.IntRange(min=0), default=0, help="Seed of the starting canvas."),
            click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output directory."),
            force_option,
            device_option,
        ]
    ):
        command = option(command)
    return command


def _invert_with_bar(G, placements, size, num_steps, perceptual, seed, device, blur=255):
    from polyinr.tools.canvas_edit import invert_canvas

    with progress_bar(num_steps, "invert", unit="step") as bar:
        return invert_canvas(
            G, placements, size, num_steps, perceptual, seed, blur, device, on_step=lambda step, loss: bar.update(1)
        )


@main.command("outpaint-canvas")
@_canvas_options
@click.option("--image", "image_path", required=True, metavar="FILE", help="The image to extend (PNG, JPEG, …).")
@click.option(
    "--extend",
    type=RangeList(),
    default=None,
    metavar="T,L,B,R",
    help="Pixels added above, left, below, right (default: 0,0,0 and twice the image's width).",
)
def outpaint_canvas(network, height, num_steps, perceptual, seed, out_dir, force, device, image_path, extend):
    """InfinityGAN outpainting: invert an image into a canvas, then render the canvas around it."""
    from pathlib import Path

    from polyinr.image_io import to_uint8
    from polyinr.tools.canvas import save_canvas_latents
    from polyinr.tools.canvas_edit import Placement

    with replace_hint():
        check_new_outputs(out_dir, ["input.png", "outpainted.png", "canvas.safetensors"], force)
    device = resolve_device(device)
    G = load_network(network, device)
    image = _image_at_height(image_path, height or G.img_resolution, device)
    h, w = image.shape[2:]
    if extend is not None and len(extend) != 4:
        raise PolyinrError(f"--extend takes four numbers T,L,B,R, got {len(extend)}")
    top, left, bottom, right = extend or (0, 0, 0, 2 * w)
    result = _invert_with_bar(
        G, [Placement(image, top, left)], (top + h + bottom, left + w + right), num_steps, perceptual, seed, device
    )
    out = Path(out_dir)
    save_image(to_uint8(image)[0], out / "input.png")
    save_image(to_uint8(result.image)[0], out / "outpainted.png")
    save_canvas_latents(out / "canvas.safetensors", result.latents, G)
    click.echo(f"PSNR of the input region {result.psnr[0]:.2f} dB (perceptual distance: {result.perceptual})")
    click.echo(f"wrote input.png, outpainted.png, canvas.safetensors to {out}")


@main.command()
@_canvas_options
@click.option("--left", "left_path", required=True, metavar="FILE", help="The image on the left.")
@click.option("--right", "right_path", required=True, metavar="FILE", help="The image on the right.")
@click.option("--gap", type=click.IntRange(min=0), default=None, help="Pixels between them (default: 2× height).")
@click.option("--blur", type=click.IntRange(min=1), default=255, help="Box blur between the two styles, pixels.")
def inbetween(network, height, num_steps, perceptual, seed, out_dir, force, device, left_path, right_path, gap, blur):
    """InfinityGAN inbetweening: two images on one canvas, the landscape between them synthesised."""
    from pathlib import Path

    from polyinr.image_io import to_uint8
    from polyinr.tools.canvas_edit import Placement

    with replace_hint():
        check_new_outputs(out_dir, ["inbetween.png"], force)
    device = resolve_device(device)
    G = load_network(network, device)
    height = height or G.img_resolution
    a, b = _image_at_height(left_path, height, device), _image_at_height(right_path, height, device)
    gap = 2 * height if gap is None else gap
    placements = [Placement(a, 0, 0), Placement(b, 0, a.shape[3] + gap)]
    size = (height, a.shape[3] + gap + b.shape[3])
    result = _invert_with_bar(G, placements, size, num_steps, perceptual, seed, device, blur)
    out = Path(out_dir)
    save_image(to_uint8(result.image)[0], out / "inbetween.png")
    click.echo(
        f"PSNR of the two images {result.psnr[0]:.2f} / {result.psnr[1]:.2f} dB "
        f"(perceptual distance: {result.perceptual})"
    )
    click.echo(f"wrote {out / 'inbetween.png'} ({size[0]}x{size[1]})")
