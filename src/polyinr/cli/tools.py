"""Continuous-image tools: ``video``, ``mix``, ``heatmap``, ``invert``, ``outpaint``.

The demonstrations of the Poly-INR paper as commands; every output is a picture or a video. Latents come
from seeds or from latent files (``--latent``, written by ``invert``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import click
import numpy as np
from click.core import ParameterSource

from polyinr.checkpoint import load_generator
from polyinr.cli.group import main
from polyinr.cli.models import class_option, latents_option, network_option, one_sample_options, trunc_options
from polyinr.cli.options import FloatPair, RangeList, Size, Window, device_option, resolve_device
from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.image_io import save_image
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


window_option = click.option("--window", type=Window(), default="0,0,1,1",
                             help="Window of the plane, top,left,bottom,right (the frame is 0,0,1,1).")  # fmt: skip
size_option = click.option("--size", type=Size(), default=None, metavar="HxW",
                           help="Pixels of each image (default: the native resolution).")  # fmt: skip


def _grid(G, window, size) -> Grid:
    return Grid.window(*window, *(size or (G.img_resolution, G.img_resolution)))


WALK_OPTIONS = ("space", "kind", "frames_per_step", "loop")


@main.command()
@network_option
@click.option("--seeds", type=RangeList(), default=None,
              help="Walks: key seeds, cell by cell (K per cell). Flights: one seed per cell.")  # fmt: skip
@latents_option
@class_option
@trunc_options
@click.option("--space", type=click.Choice(["z", "w", "inr"]), default="w",
              help="Walk: interpolate in Z, in W, or the INR parameters the ws give (INR-GAN).")  # fmt: skip
@click.option("--kind", type=click.Choice(INTERPOLATIONS), default="lerp", help="Walk: linear or spherical.")
@click.option("--frames-per-step", type=click.IntRange(min=1), default=60, help="Walk: frames from key to key.")
@click.option("--loop/--no-loop", default=True, help="Walk: return from the last key to the first.")
@click.option("--pan", type=FloatPair(), default=None, metavar="DR,DC",
              help="Flight: move the window DR rows, DC columns (frame units) over the video.")  # fmt: skip
@click.option("--zoom", type=float, default=None, metavar="FACTOR",
              help="Flight: final window size relative to the start (< 1 zooms in).")  # fmt: skip
@click.option("--frames", type=click.IntRange(min=2), default=120, help="Flight: number of frames.")
@click.option("--grid", "grid_size", type=Size(), default="1x1", metavar="CxR", help="Videos side by side.")
@window_option
@size_option
@click.option("--fps", type=click.IntRange(min=1), default=30, help="Frames per second.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, help="Output .mp4 or .gif.")
@device_option
@click.pass_context
def video(ctx, network, seeds, latent_paths, class_idx, truncation, space, kind, frames_per_step, loop, pan, zoom,
          frames, grid_size, window, size, fps, out_path, device):  # fmt: skip
    """A looping latent walk, or with --pan / --zoom a flight over the continuous image plane."""
    device = resolve_device(device)
    G = load_generator(network, device)
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
        grids = flight_grids(window, grid.shape, frames, pan or (0.0, 0.0), 1.0 if zoom is None else zoom)
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
            images = latent_walk(G, keys, frames_per_step, kind, loop, "z", class_idx, grid=grid, cols=cols,
                                 **truncation)  # fmt: skip
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
    G = load_generator(network, device)
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
    G = load_generator(network, device)
    seeds, latents = ([seed] if seed is not None else None), ([latent_path] if latent_path else None)
    ws = one_sample(ws_for(G, seeds=seeds, latents=latents, classes=class_idx, device=device, **truncation))
    path = save_image(heatmap_figure(level_maps(G, ws, _grid(G, window, size))), out_path)
    click.echo(f"wrote {path}")


def _inversion_options(command):
    for option in reversed([
        network_option,
        click.option("--image", "image_path", required=True, metavar="FILE", help="The real image."),
        class_option,
        click.option("--space", type=click.Choice(SPACES), default="w+", help="One w for all levels, or one each."),
        click.option("--steps", "num_steps", type=click.IntRange(min=1), default=1000, help="Optimisation steps."),
        click.option("--perceptual", type=click.Choice(PERCEPTUAL), default="auto",
                     help="Perceptual distance: LPIPS when available offline, else a Laplacian-pyramid L1."),
        click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output directory."),
        device_option,
    ]):  # fmt: skip
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
def invert(ctx, network, image_path, class_idx, space, num_steps, perceptual, out_dir, device, pti, pti_steps):
    """Find the latent that reproduces a real image (writes latent, reconstruction, progress video); with --pti
    also the generator fine-tuned around it (tuned/, beside the latent)."""
    if not pti and _given(ctx, ["pti_steps"]):
        raise PolyinrError("--pti-steps sets the length of pivotal tuning: add --pti")
    device = resolve_device(device)
    G = load_generator(network, device)
    pti_steps = pti_steps if pti else 0
    with progress_bar(num_steps + 1 + pti_steps, "invert", unit="step") as bar:
        inversion = invert_image(G, image_path, out_dir, class_idx, space, num_steps, perceptual, device,
                                 on_step=lambda state: bar.update(1), pti_steps=pti_steps)  # fmt: skip
    _report(inversion, out_dir)


@main.command("outpaint")
@_inversion_options
@click.option("--window", type=Window(), required=True,
              help="Window to render around the image (the frame 0,0,1,1), e.g. -0.5,-0.5,1.5,1.5.")  # fmt: skip
@click.option("--size", type=Size(), default=None, metavar="HxW",
              help="Output pixels (default: the image's pixel spacing over the whole window).")  # fmt: skip
def outpaint_cmd(network, image_path, class_idx, space, num_steps, perceptual, out_dir, device, window, size):
    """Invert a real image, then render a larger window: the image continued beyond its borders."""
    device = resolve_device(device)
    G = load_generator(network, device)
    with progress_bar(num_steps + 1, "invert", unit="step") as bar:
        inversion = outpaint(G, image_path, out_dir, window, size, class_idx, space, num_steps, perceptual, device,
                             on_step=lambda state: bar.update(1))  # fmt: skip
    _report(inversion, out_dir)
