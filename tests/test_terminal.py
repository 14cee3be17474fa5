"""Text from a user's file reaches the terminal with its control characters escaped: in errors, warnings,
``convert``'s lines and ``info``."""

from __future__ import annotations

import json
import logging
import struct

from click.testing import CliRunner

from polyinr.checkpoint import CONFIG_NAME
from polyinr.cli import main
from polyinr.terminal import printable

TITLE = "\x1b]0;pwned\x07"  # sets the terminal window's title
CLEAR = "\x1b[2J"  # clears the screen


def test_printable_escapes_control_and_format_characters_only():
    assert printable(f"a{TITLE}b{CLEAR}\n\t\u202e\udcff") == "a\\x1b]0;pwned\\x07b\\x1b[2J\\n\\t\\u202e\\udcff"
    assert printable("plain text, é → 16² … ✓") == "plain text, é → 16² … ✓"


def _str(text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _assert_escaped(output: str) -> None:
    assert "\x1b" not in output and "\x07" not in output, repr(output)
    assert "\\x1b" in output, output


def test_class_names_from_a_pickle_are_escaped_in_errors(tmp_path):
    # {'G_ema': <an object of class module.Net>}, the class named with escape sequences (STACK_GLOBAL, NEWOBJ)
    obj = _str(f"evil{TITLE}") + _str(f"Net{CLEAR}") + b"\x93)\x81"
    path = tmp_path / "net.pkl"
    path.write_bytes(b"\x80\x04}" + _str("G_ema") + obj + b"s.")
    result = CliRunner().invoke(main, ["convert", "--from", "stylegan3", str(path), str(tmp_path / "out")])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    _assert_escaped(result.output)
    evil = tmp_path / "evil.pkl"  # a dangerous global's name, as the refusal quotes it
    evil.write_bytes(b"\x80\x04" + _str("os") + _str(f"system{TITLE}") + b"\x93)\x81.")
    result = CliRunner().invoke(main, ["convert", "--from", "stylegan3", str(evil), str(tmp_path / "out")])
    assert result.exit_code == 1 and "could run code" in result.output
    _assert_escaped(result.output)


def test_config_text_is_escaped_in_info_and_in_errors(tmp_path):
    ckpt = tmp_path / "ckpt"
    assert CliRunner().invoke(main, ["create", "--resolution", "8", str(ckpt)]).exit_code == 0
    config = json.loads((ckpt / CONFIG_NAME).read_text())
    config["config"]["init"] = f"authors{TITLE}"
    (ckpt / CONFIG_NAME).write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["info", str(ckpt)])
    _assert_escaped(result.output)
    config["config"][f"key{CLEAR}"] = 1
    (ckpt / CONFIG_NAME).write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["info", str(ckpt)])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    _assert_escaped(result.output)


def test_warnings_are_escaped(tmp_path):
    assert CliRunner().invoke(main, ["list", "nothing"]).exit_code == 0  # installs the warning handler
    (handler,) = logging.getLogger("polyinr").handlers
    record = logging.LogRecord("polyinr", logging.WARNING, __file__, 1, "skipped %s", (f"img{TITLE}.png",), None)
    _assert_escaped(handler.format(record))
