"""Converters by name: ``@register_converter("name", help=...)`` and the one entry point the CLI calls.

A converter is a function ``convert(path: Path, **options) -> Generator | Converted`` that reads one foreign
checkpoint file (through :func:`~polyinr.importers.unpickle.restricted_load` when it is a pickle) and returns
our generator, eval mode, with the converted weights; it returns a :class:`Converted` when it has more to say
(what it read, what it dropped, what it measured). :func:`convert_checkpoint` calls it, writes the checkpoint
and records where it came from in ``config.json`` under ``imported_from``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyinr.checkpoint import check_checkpoint_target
from polyinr.importers.unpickle import ImporterError
from polyinr.models.generator import Generator

ConvertFunction = Callable[..., "Generator | Converted"]


@dataclass(frozen=True)
class Converted:
    """A converter's generator plus what it has to say about the conversion."""

    generator: Generator
    lines: tuple[str, ...] = ()  # for people: what was read, dropped, measured (one line each)
    provenance: dict[str, Any] = field(default_factory=dict)  # JSON values, saved under config.json imported_from


@dataclass(frozen=True)
class Converter:
    """A registered converter: its name, other accepted names, one-line help and the function."""

    name: str
    help: str
    convert: ConvertFunction
    aliases: tuple[str, ...] = ()


_CONVERTERS: dict[str, Converter] = {}  # by name and by alias


def register_converter(
    name: str, help: str, aliases: tuple[str, ...] = ()
) -> Callable[[ConvertFunction], ConvertFunction]:
    """Register ``convert(path, **options)`` as the converter of source format ``name`` (and ``aliases``)."""

    def decorate(convert: ConvertFunction) -> ConvertFunction:
        converter = Converter(name, help, convert, tuple(aliases))
        for key in (name, *aliases):
            if key in _CONVERTERS:
                raise ValueError(f"converter name {key!r} is registered twice")
            _CONVERTERS[key] = converter
        return convert

    return decorate


def list_converters() -> list[Converter]:
    """Every registered converter once, by name."""
    return sorted({c.name: c for c in _CONVERTERS.values()}.values(), key=lambda c: c.name)


def converter_names() -> list[str]:
    """Every accepted source-format name, aliases included, sorted."""
    return sorted(_CONVERTERS)


def get_converter(name: str) -> Converter:
    """The converter registered as ``name`` (or an alias of it); :class:`ImporterError` for an unknown name."""
    if name not in _CONVERTERS:
        raise ImporterError(f"unknown source format {name!r}; known: {', '.join(converter_names())}")
    return _CONVERTERS[name]


@dataclass(frozen=True)
class Conversion:
    """What :func:`convert_checkpoint` did; :meth:`lines` is the text the command line prints."""

    converter: str  # the converter's name (not an alias)
    generator: Generator
    output: Path  # the checkpoint directory written
    notes: tuple[str, ...] = ()  # the converter's own lines

    def lines(self) -> list[str]:
        G = self.generator
        return [*self.notes, f"wrote {self.output} ({G.model_name}, {G.parameter_count():,} parameters)"]


def convert_checkpoint(
    source: str, in_path: str | Path, out_dir: str | Path, overwrite: bool = False, **options: Any
) -> Conversion:
    """Convert ``in_path``, a checkpoint of format ``source`` (a converter's name or alias), into ``out_dir``.

    ``options`` go to the converter. ``out_dir`` is checked before any work (an existing checkpoint there is
    replaced only when ``overwrite``); nothing is written unless the conversion succeeds.
    """
    converter = get_converter(source)
    check_checkpoint_target(out_dir, overwrite)
    result = converter.convert(Path(in_path), **options)
    if not isinstance(result, Converted):
        result = Converted(result)
    imported = {"converter": converter.name, "file": Path(in_path).name, **result.provenance}
    output = result.generator.save(out_dir, extra={"imported_from": imported}, overwrite=overwrite)
    return Conversion(converter.name, result.generator, output, result.lines)
