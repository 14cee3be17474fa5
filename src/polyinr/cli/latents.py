"""Commands that move through a generator's latent space: ``sticking`` (small walks, averaged) and ``edit``
(directions, as sheets of strength against seed)."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from polyinr.cli.group import main
from polyinr.cli.models import class_option, network_option, trunc_options
from polyinr.cli.options import RangeList, device_option, force_option, replace_hint, resolve_device
from polyinr.errors import PolyinrError
from polyinr.image_io import check_new_outputs, prepare_image_output, prepare_output, save_image
from polyinr.pretrained import load_network
from polyinr.progress import progress_bar
from polyinr.sampling import labels_for
from polyinr.tools.directions import (
    DIRECTION_FORMS,
    PrincipalComponent,
    edit_sheet,
    parse_direction,
    parse_strengths,
    save_directions,
)
from polyinr.tools.sticking import HALF_NYQUIST, sticking_sheet, texture_sticking


def _ratios(walk: float, translation: float | None) -> str:
    shown = f"latent walk {walk:.3f}"
    return shown + ("" if translation is None else f", translation {translation:.3f}")


@main.command()
@network_option
@click.option("--seeds", "--seed", "seeds", type=RangeList(), required=True, help="Seeds, e.g. 0 or 0-7.")
@class_option
@click.option("--frames", type=click.IntRange(min=2), default=64, help="Frames averaged, per walk and per seed.")
@click.option(
    "--radius",
    type=click.FloatRange(min=0, min_open=True),
    default=0.25,
    help="How far the walk in w reaches, in standard deviations of w.",
)
@click.option(
    "--max-shift",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    help="Largest translation of the translated frames, in pixels.",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output directory.")
@force_option
@device_option
def sticking(network, seeds, class_idx, frames, radius, max_shift, out_dir, force, device):
    """Texture sticking, as StyleGAN3's figure: averages of frames from a small random walk in w around each
    seed, and of the same image translated; fine detail that survives averaging is stuck to the pixels.
    A sticking.png already in OUT is replaced only with --force."""
    with replace_hint():
        check_new_outputs(out_dir, ["sticking.png"], force)
    sheet_path = prepare_image_output(Path(out_dir) / "sticking.png")
    device = resolve_device(device)
    G = load_network(network, device)
    labels_for(G, class_idx, len(seeds), device)  # a missing or unknown class fails before the first frame
    with progress_bar(len(seeds) * (1 + 2 * frames), "sticking", unit="frame") as bar:
        result = texture_sticking(G, seeds, class_idx, frames, radius, max_shift, device, on_frames=bar.update)
    save_image(sticking_sheet(result), sheet_path)
    columns = "one frame, the walk's average" + ("" if result.translation_ratio is None else ", the translated average")
    click.echo(f"wrote {sheet_path} (a row per seed: {columns})")
    if result.translation_refusal is not None:
        click.echo(f"no translated frames: {G.model_name} renders {G.describe_grids()} ({result.translation_refusal})")
    click.echo(
        f"fine detail kept by averaging {frames} frames (energy above {HALF_NYQUIST:g} cycles/pixel, average "
        "over one frame; 0 = it all moves, 1 = it all sticks):"
    )
    for r in result.seeds:
        click.echo(f"  seed {r.seed}: {_ratios(r.walk_ratio, r.translation_ratio)}")
    if len(result.seeds) > 1:
        click.echo(f"  mean over {len(result.seeds)} seeds: {_ratios(result.walk_ratio, result.translation_ratio)}")


class DirectionType(click.ParamType):
    """``pca:K``, ``class:A->B`` or ``file:D.safetensors[#K]``."""

    name = "DIRECTION"

    def convert(self, value, param, ctx):
        try:
            return parse_direction(value)
        except PolyinrError as e:
            self.fail(str(e), param, ctx)


class Strengths(click.ParamType):
    """``-3,-1.5,0,1.5,3`` or ``START:STOP:COUNT``."""

    name = "STRENGTHS"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            return parse_strengths(value)
        except PolyinrError as e:
            self.fail(str(e), param, ctx)


@main.command()
@network_option
@click.option("--seeds", type=RangeList(), required=True, help="Seeds, one row each, e.g. 0-3.")
@click.option("--direction", type=DirectionType(), required=True, help=f"What to move along: {DIRECTION_FORMS}.")
@click.option(
    "--strength",
    "strengths",
    type=Strengths(),
    required=True,
    metavar="LIST|START:STOP:COUNT",
    help="Strengths, one column each: standard deviations for pca, the fraction of the way from A to B "
    "for class, multiples of the vector for file; e.g. -3,-1.5,0,1.5,3 or -3:3:5.",
)
@click.option("--layers", type=RangeList(), default=None, help="Edit only these ws indices, e.g. 0-3 (default: all).")
@class_option
@trunc_options
@click.option(
    "--pca-samples",
    type=click.IntRange(min=2),
    default=10_000,
    help="Samples of w whose principal components pca:K takes.",
)
@click.option(
    "--save-directions",
    "save_path",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="With pca:K, also write every principal component to FILE (.safetensors; file:FILE#K).",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output directory.")
@force_option
@device_option
@click.pass_context
def edit(
    ctx,
    network,
    seeds,
    direction,
    strengths,
    layers,
    class_idx,
    truncation,
    pca_samples,
    save_path,
    out_dir,
    force,
    device,
):
    """Latent editing: each seed moved along a principal component of w (GANSpace), from one class to another
    (StyleGAN-XL's class interpolation) or along a direction from a file; a sheet of seeds by strengths.
    An edit.png already in OUT is replaced only with --force."""
    if not isinstance(direction, PrincipalComponent):
        pca_flags = {
            "--save-directions": save_path is not None,
            "--pca-samples": ctx.get_parameter_source("pca_samples") != ParameterSource.DEFAULT,
        }
        given = [flag for flag, present in pca_flags.items() if present]
        if given:
            raise PolyinrError(f"{given[0]} is about principal components: use it with --direction pca:K")
    with replace_hint():
        check_new_outputs(out_dir, ["edit.png"], force)
    sheet_path = prepare_image_output(Path(out_dir) / "edit.png")
    if save_path is not None:
        prepare_output(save_path)
    device = resolve_device(device)
    G = load_network(network, device)
    result = edit_sheet(
        G, seeds, direction, strengths, layers, class_idx, num_samples=pca_samples, device=device, **truncation
    )
    save_image(result.sheet, sheet_path)
    click.echo(
        f"wrote {sheet_path} (rows: seeds {', '.join(map(str, seeds))}; columns: strengths "
        f"{', '.join(f'{v:g}' for v in strengths)})"
    )
    if save_path is not None:
        click.echo(
            f"wrote {save_directions(save_path, result.components)} ({len(result.components)} principal "
            f"components of w, most variance first; pick one with file:{save_path}#K)"
        )
