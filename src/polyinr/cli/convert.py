"""``polyinr convert``: other code bases' checkpoints → polyinr checkpoints, never running code from them."""

from __future__ import annotations

import click

from polyinr.cli import main
from polyinr.importers import convert_checkpoint, converter_names, list_converters


def _formats_help() -> str:
    lines = []
    for c in list_converters():
        aliases = f" (also {', '.join(c.aliases)})" if c.aliases else ""
        lines.append(f"{c.name}{aliases} = {c.help}")
    return "Format of IN: " + "; ".join(lines) + "."


@main.command()
@click.option("--from", "source", type=click.Choice(converter_names()), required=True, help=_formats_help())
@click.argument("in_path", metavar="IN")
@click.argument("out_dir", metavar="OUT_DIR")
def convert(source, in_path, out_dir):
    """Convert checkpoint IN into the polyinr checkpoint directory OUT_DIR.

    The file is read by a restricted unpickler: nothing in it is imported or run, and a pickle that asks to
    run code is refused.
    """
    for line in convert_checkpoint(source, in_path, out_dir).lines():
        click.echo(line)
