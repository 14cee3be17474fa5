"""``polyinr convert``: other code bases' checkpoints → polyinr checkpoints, never running code from them."""

from __future__ import annotations

import click

from polyinr.cli.group import main
from polyinr.cli.options import replace_hint
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
@click.option("--force", is_flag=True, help="Replace a polyinr checkpoint already at OUT_DIR (nothing else is ever "
              "replaced).")  # fmt: skip
def convert(source, in_path, out_dir, force):
    """Convert checkpoint IN into the polyinr checkpoint directory OUT_DIR.

    The file is read by a restricted unpickler: nothing in it is imported or run, and a pickle that asks to
    run code is refused.
    """
    with replace_hint():
        conversion = convert_checkpoint(source, in_path, out_dir, overwrite=force)
    for line in conversion.lines():
        click.echo(line)
