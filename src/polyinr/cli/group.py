"""The ``polyinr`` click group, on which every command module registers its commands."""

from __future__ import annotations

import functools
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from polyinr._version import __version__
from polyinr.errors import PolyinrError
from polyinr.interrupt import Interrupted, forget_signals, received_signal, signals_raise
from polyinr.terminal import printable


class PolyinrGroup(click.Group):
    """A click group that turns library errors into one-line messages, control characters escaped (text from a
    user's file never reaches the terminal raw), and SIGINT or SIGTERM into one line and exit status 128 + the
    signal (130, 143) however deep the command is."""

    def invoke(self, ctx: click.Context):
        forget_signals()
        try:
            with signals_raise():
                return self._invoke_one_line(ctx)
        except KeyboardInterrupt as e:  # Interrupted, or a KeyboardInterrupt raised another way: the same stop
            self._stop(e if isinstance(e, Interrupted) else Interrupted(signal.SIGINT))
        except Exception as e:
            if received_signal() is not None:  # the signal surfaced as another error (inside a C extension)
                self._stop(Interrupted(received_signal()))
            if isinstance(e, click.ClickException):  # ours below, a command's own, or a bad parameter's
                e.message = printable(e.message)
            raise

    @staticmethod
    def _stop(stop: Interrupted) -> NoReturn:
        click.echo(printable(f"interrupted: {stop}"), err=True)
        sys.exit(stop.exit_code)

    def _invoke_one_line(self, ctx: click.Context):
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


class _PrintableFormatter(logging.Formatter):
    """Warnings with control characters escaped: they may name files of a user's folder."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


@click.group(cls=PolyinrGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="polyinr")
def main() -> None:
    """Coordinate-based image generation: Poly-INR and the GANs it is measured against."""
    logger = logging.getLogger("polyinr")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(_PrintableFormatter("warning: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)


def resumable(command: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a command that running again continues where it stopped: an interruption says so."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Interrupted as e:
            raise e.noting("run the same command to continue") from None

    return run
