"""``polyinr convert``: other code bases' checkpoints → polyinr checkpoints, never running code from them."""

from __future__ import annotations

import inspect

import click

from polyinr.cli.group import main
from polyinr.cli.options import replace_hint
from polyinr.errors import PolyinrError
from polyinr.importers import convert_checkpoint, converter_names, get_converter, list_converters
from polyinr.terminal import printable


def _formats_help() -> str:
    lines = []
    for c in list_converters():
        aliases = f" (also {', '.join(c.aliases)})" if c.aliases else ""
        lines.append(f"{c.name}{aliases} = {c.help}")
    return "Format of IN: " + "; ".join(lines) + "."


@main.command()
@click.option("--from", "source", type=click.Choice(converter_names()), required=True, help=_formats_help())
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    metavar="FILE",
    help="The source model's config file, for sizes the tensors cannot tell (infinitygan: their model YAML).",
)
@click.argument("in_path", metavar="IN")
@click.argument("out_dir", metavar="OUT_DIR")
@click.option(
    "--force", is_flag=True, help="Replace a polyinr checkpoint already at OUT_DIR (nothing else is ever replaced)."
)
def convert(source, config_path, in_path, out_dir, force):
    """Convert checkpoint IN into the polyinr checkpoint directory OUT_DIR.

    The file is read by a restricted unpickler: nothing in it is imported or run, and a pickle that asks to
    run code is refused.
    """
    options = {} if config_path is None else {"config": config_path}
    if options and "config" not in inspect.signature(get_converter(source).convert).parameters:
        raise PolyinrError(f"the {source} converter takes no --config")
    with replace_hint():
        conversion = convert_checkpoint(source, in_path, out_dir, overwrite=force, **options)
    for line in conversion.lines():  # they may name classes read from the file
        click.echo(printable(line))
