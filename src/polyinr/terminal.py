"""Text for the terminal: control characters in text that came from a user's file, escaped.

A class name inside a pickle, a key of a config file or a file name in a data folder may hold escape sequences
(a window title, a cleared screen, a rewritten line). Everything the command line prints that may carry such
text goes through :func:`printable`: its errors and warnings, and the lines of ``convert`` and ``info``.
"""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with every character Python does not print as itself (control and format characters, line
    separators, lone surrogates) written as its escape, e.g. ``\\x1b``, ``\\n``, ``\\u202e``."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
