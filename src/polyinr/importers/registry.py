"""Converters by name: ``@register_converter("name", help=...)`` and the one entry point the CLI calls.

A converter is a function ``convert(path: Path, **options) -> Generator | Converted`` that reads one foreign
checkpoint file (through :func:`~polyinr.importers.unpickle.restricted_load` when it is a pickle) and returns
our generator, eval mode, with the converted weights; it returns a :class:`Converted` when it has more to say
(what it read, what it dropped, what it measured). :func:`convert_checkpoint` calls it, writes the checkpoint
and records where it came from in ``config.json`` under ``imported_from``.

A converter builds its generator with :func:`build_generator`, which first builds it on the meta device (no
memory) and refuses sizes read from the file that would make the generator's weights far larger than the
weights the file holds (:func:`stored_bytes`): a pickle's shapes and attributes never decide an allocation
unchecked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from polyinr.checkpoint import check_checkpoint_target
from polyinr.errors import PolyinrError
from polyinr.importers.unpickle import ImporterError
from polyinr.models.generator import Generator
from polyinr.models.registry import check_config_values, flatten_config, get_entry, state_bytes
from polyinr.registry import Registry

WEIGHTS_SLACK = 1 << 26  # bytes a converted generator may hold beyond WEIGHTS_PER_FILE_BYTE × its source's
WEIGHTS_PER_FILE_BYTE = 4  # e.g. float16 weights become float32, plus buffers computed from the config

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


CONVERTERS: Registry[Converter] = Registry("source format", "known", ImporterError)  # by name and by alias


def register_converter(
    name: str, help: str, aliases: tuple[str, ...] = ()
) -> Callable[[ConvertFunction], ConvertFunction]:
    """Register ``convert(path, **options)`` as the converter of source format ``name`` (and ``aliases``)."""

    def decorate(convert: ConvertFunction) -> ConvertFunction:
        CONVERTERS.add(name, Converter(name, help, convert, tuple(aliases)), tuple(aliases))
        return convert

    return decorate


def list_converters() -> list[Converter]:
    """Every registered converter once, by name."""
    return sorted({c.name: c for c in CONVERTERS.values()}.values(), key=lambda c: c.name)


converter_names = CONVERTERS.names  # every accepted source-format name, aliases included, sorted
get_converter = CONVERTERS.lookup  # the converter of a name or alias; an unknown name is an ImporterError


def stored_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the storages (each counted once) that ``tensors`` view: the weights a file actually holds."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def build_generator(model: str, cfg: Any, source_bytes: int) -> Generator:
    """Our generator ``model`` with a config ``cfg`` read from a file, randomly initialised (for its weights).

    ``source_bytes`` is the size of the weights it is converted from (:func:`stored_bytes`). The config's
    values are checked first (:func:`~polyinr.models.registry.check_config_values`), then the generator is
    built on the meta device (:func:`~polyinr.models.registry.state_bytes`): more than
    ``WEIGHTS_PER_FILE_BYTE`` bytes of weights per source byte (plus ``WEIGHTS_SLACK``) is refused with an
    :class:`ImporterError` before any memory is allocated.
    """
    try:
        check_config_values(cfg)
        nbytes = state_bytes(get_entry(model).generator_cls, cfg)
    except ImporterError:
        raise
    except PolyinrError as e:
        raise ImporterError(f"the {model} the file describes is impossible: {e}") from None
    limit = WEIGHTS_PER_FILE_BYTE * source_bytes + WEIGHTS_SLACK
    if nbytes > limit:
        described = ", ".join(f"{k}={v}" for k, v in flatten_config(dataclasses.asdict(cfg)) if type(v) is int)
        raise ImporterError(
            f"the {model} the file describes ({described[:160]}) would hold {nbytes / 2**30:,.1f} GiB of "
            f"weights, far more than the {source_bytes / 2**20:,.1f} MiB of weights in the file"
        )
    return get_entry(model).generator_cls(cfg)


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
    replaced only when ``overwrite``); nothing is written unless the conversion succeeds. Whatever a converter
    fails with on the file's values (a ``RecursionError`` included) is an :class:`ImporterError`, in one line.
    """
    converter = get_converter(source)
    check_checkpoint_target(out_dir, overwrite)
    try:
        result = converter.convert(Path(in_path), **options)
    except PolyinrError:
        raise
    except RecursionError:
        raise ImporterError(f"cannot convert {in_path}: it nests objects too deeply to read") from None
    except Exception as e:  # a value of the file no converter check foresaw (an infinite float, a zero size, …)
        detail = " ".join(str(e).split())[:120] or type(e).__name__
        raise ImporterError(
            f"cannot convert {in_path}: it holds values {converter.name} cannot use ({detail})"
        ) from None
    if not isinstance(result, Converted):
        result = Converted(result)
    imported = {"converter": converter.name, "file": Path(in_path).name, **result.provenance}
    output = result.generator.save(out_dir, extra={"imported_from": imported}, overwrite=overwrite)
    return Conversion(converter.name, result.generator, output, result.lines)
