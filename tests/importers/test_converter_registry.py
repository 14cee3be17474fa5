"""Converters by name: registration, aliases, unknown names, a converter that returns only a generator."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import polyinr
from polyinr.cli import main
from polyinr.importers import ImporterError, convert_checkpoint, converter_names, get_converter, registry


@pytest.fixture
def scratch_registry(monkeypatch):
    monkeypatch.setattr(registry.CONVERTERS, "_entries", dict(registry.CONVERTERS))


def test_poly_inr_is_registered_under_its_name_and_alias():
    assert {"poly-inr", "poly-inr-official"} <= set(converter_names())
    assert get_converter("poly-inr-official") is get_converter("poly-inr")
    assert [c.name for c in registry.list_converters()].count("poly-inr") == 1


def test_a_converter_returning_a_generator_is_saved_with_its_provenance(scratch_registry, tmp_path):
    seen = {}

    @registry.register_converter("toy", help="a test format")
    def convert(path, classes=0):
        seen.update(path=path, classes=classes)
        return polyinr.create("poly-inr", preset="cpu", num_classes=classes)

    source = tmp_path / "toy.bin"
    conversion = convert_checkpoint("toy", str(source), tmp_path / "out", classes=3)
    assert seen == {"path": source, "classes": 3}
    assert conversion.lines() == [
        f"wrote {tmp_path / 'out'} (poly-inr, {conversion.generator.parameter_count():,} parameters)"
    ]
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["imported_from"] == {"converter": "toy", "file": "toy.bin"}
    assert polyinr.load(tmp_path / "out").num_classes == 3
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_converter("toy", help="again")(convert)


def test_unknown_format_is_one_line():
    with pytest.raises(ImporterError, match=r"unknown source format 'nope'; known: .*poly-inr"):
        convert_checkpoint("nope", "in", "out")


def test_cli_help_lists_the_registered_converters():
    result = CliRunner().invoke(main, ["convert", "--help"], terminal_width=200)
    assert result.exit_code == 0 and "poly-inr (also poly-inr-official)" in " ".join(result.output.split())
