"""The ``polyinr`` command line: thin click commands, one module per command family.

Each command parses flags, applies a preset, turns bad input into a one-line error and calls one library
function. Every :class:`~polyinr.errors.PolyinrError` (and a few OS errors) becomes ``error: …`` on stderr
with exit code 1, never a traceback.
"""

# Command modules register themselves on `main` when imported (explicit imports; click lists them sorted).
from polyinr.cli import compare as _compare  # noqa: F401
from polyinr.cli import convert as _convert  # noqa: F401
from polyinr.cli import dataset as _dataset  # noqa: F401
from polyinr.cli import demo as _demo  # noqa: F401
from polyinr.cli import embed as _embed  # noqa: F401
from polyinr.cli import latents as _latents  # noqa: F401
from polyinr.cli import metrics as _metrics  # noqa: F401
from polyinr.cli import models as _models  # noqa: F401
from polyinr.cli import pretrained as _pretrained  # noqa: F401
from polyinr.cli import serve as _serve  # noqa: F401
from polyinr.cli import tools as _tools  # noqa: F401
from polyinr.cli import train as _train  # noqa: F401
from polyinr.cli.group import PolyinrGroup, main

__all__ = ["PolyinrGroup", "main"]
