"""Library errors speak the library's language: no command-line flag inside a message raised outside cli/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import polyinr

PACKAGE = Path(polyinr.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _message_text(node: ast.Raise) -> str:
    """Every string constant (f-string parts included) in the raised expression."""
    return " ".join(n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str))


def test_no_flag_names_in_library_errors():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if PACKAGE / "cli" in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and node.exc is not None and FLAG.search(_message_text(node)):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {FLAG.search(_message_text(node)).group()}")
    assert not found, "flag names in library errors:\n" + "\n".join(found)
