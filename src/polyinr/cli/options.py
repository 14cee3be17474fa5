"""Shared click option types: seed ranges, windows, number pairs, sizes, devices, networks."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import click

from polyinr.checkpoint import CheckpointExists
from polyinr.device import resolve_device  # noqa: F401  (re-exported for commands)
from polyinr.errors import PolyinrError
from polyinr.grid import parse_window
from polyinr.image_io import OutputExists
from polyinr.sampling import RangeList as SeedRanges
from polyinr.sampling import parse_range_list


class RangeList(click.ParamType):
    """``0,3-7`` → ``[0, 3, 4, 5, 6, 7]``."""

    name = "RANGES"

    def convert(self, value, param, ctx):
        if isinstance(value, (list, SeedRanges)):
            return value
        try:
            return parse_range_list(value, what=param.name if param else "values")
        except PolyinrError as e:
            self.fail(str(e), param, ctx)


class Window(click.ParamType):
    """``top,left,bottom,right`` in frame units (the training frame is ``0,0,1,1``)."""

    name = "T,L,B,R"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return parse_window(value)
        except PolyinrError as e:
            self.fail(str(e), param, ctx)


class FiniteFloat(click.ParamType):
    """A finite number: ``nan`` and ``inf`` are refused (they would silently render black)."""

    name = "NUMBER"

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"expected a number, got {value!r}", param, ctx)
        if not math.isfinite(number):
            self.fail(f"expected a finite number, got {value!r}", param, ctx)
        return number


class FloatPair(click.ParamType):
    """``A,B`` → ``(A, B)``, two finite numbers."""

    name = "A,B"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            pair = tuple(float(v) for v in str(value).split(","))
        except ValueError:
            pair = ()
        if len(pair) != 2 or not all(math.isfinite(v) for v in pair):
            self.fail(f"expected two numbers like 0.5,-1, got {value!r}", param, ctx)
        return pair


class Size(click.ParamType):
    """``HxW`` or ``N`` (square) → ``(H, W)``."""

    name = "HxW"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = str(value).lower().split("x")
        try:
            dims = tuple(int(p) for p in parts)
        except ValueError:
            dims = ()
        if len(dims) == 1:
            dims = (dims[0], dims[0])
        if len(dims) != 2 or min(dims) <= 0:
            self.fail(f"expected a size like 512 or 512x1024, got {value!r}", param, ctx)
        return dims


NETWORK_HELP = "Checkpoint or run directory, or a released model's name or URL (polyinr pretrained list)."

device_option = click.option(
    "--device", default="auto", metavar="DEVICE", help="cpu, cuda, cuda:N, or auto (CUDA when available)."
)


force_option = click.option(
    "--force",
    is_flag=True,
    help="Replace files of the names this command writes that are "
    "already in the output folder (nothing else there is touched).",
)


@contextlib.contextmanager
def replace_hint() -> Iterator[None]:
    """Name the flag that replaces an existing checkpoint or output files when the library refuses to."""
    try:
        yield
    except CheckpointExists as e:
        raise click.ClickException(f"{e}; add --force to replace it") from None
    except OutputExists as e:
        raise click.ClickException(f"{e}; add --force to replace them, or choose another folder") from None
