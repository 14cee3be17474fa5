"""The ``polyinr`` command line: thin click commands, one module per command family.

Each command parses flags, applies a preset, turns bad input into a one-line error and calls one library
function. Every :class:`~polyinr.errors.PolyinrError` (and a few OS errors) becomes ``error: …`` on stderr
with exit code 1, never a traceback.
"""

from __future__ import annotations

import logging
import sys

import click

from polyinr._version import __version__
from polyinr.errors import PolyinrError


class PolyinrGroup(click.Group):
    """A click group that turns library errors into one-line messages."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PolyinrError as e:
            raise click.ClickException(str(e)) from None
        except FileNotFoundError as e:
            raise click.ClickException(f"file not found: {e.filename}") from None
        except PermissionError as e:
            raise click.ClickException(f"permission denied: {e.filename}") from None
        except OSError as e:
            if e.errno == 28:  # ENOSPC
                raise click.ClickException(f"disk full while writing {e.filename or ''}".strip()) from None
            raise click.ClickException(f"{e.strerror or e}: {e.filename or ''}".strip()) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=PolyinrGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="polyinr")
def main() -> None:
    """Coordinate-based image generation: Poly-INR and the GANs it is measured against."""
    logger = logging.getLogger("polyinr")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)


# Command modules register themselves on `main` when imported (explicit imports; click lists them sorted).
from polyinr.cli import convert as _convert  # noqa: E402,F401
from polyinr.cli import dataset as _dataset  # noqa: E402,F401
from polyinr.cli import demo as _demo  # noqa: E402,F401
from polyinr.cli import embed as _embed  # noqa: E402,F401
from polyinr.cli import metrics as _metrics  # noqa: E402,F401
from polyinr.cli import models as _models  # noqa: E402,F401
from polyinr.cli import serve as _serve  # noqa: E402,F401
from polyinr.cli import tools as _tools  # noqa: E402,F401
from polyinr.cli import train as _train  # noqa: E402,F401
