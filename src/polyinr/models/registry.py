"""Generator registry: model name → class, config class and named presets (DESIGN rule 5).

Each model registers itself with its presets beside it (``@register("poly-inr", PolyINRConfig,
presets={...})``): the paper's settings (GPU-sized) and a CPU-sized one that shows a result in minutes. A
preset is a dict of config fields and may nest (``{"mapping": {"z_dim": 32}}``). Data-derived fields
(``num_classes``, ``img_resolution``) are overridden from the dataset by the caller, by their leaf name.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from polyinr.errors import PolyinrError
from polyinr.registry import Registry


@dataclass
class ModelEntry:
    name: str
    generator_cls: type
    config_cls: type
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)


MODELS: Registry[ModelEntry] = Registry("model", "known models")


def register(name: str, config_cls: type, presets: dict[str, dict[str, Any]] | None = None) -> Callable[[type], type]:
    """Class decorator: register a :class:`~polyinr.models.generator.Generator` subclass under ``name``."""

    def decorate(cls: type) -> type:
        cls.model_name = name
        MODELS.add(name, ModelEntry(name, cls, config_cls, dict(presets or {})))
        return cls

    return decorate


get_entry = MODELS.lookup  # the entry of a model name; an unknown name is a one-line error
list_models = MODELS.names  # registered model names matching an fnmatch pattern, sorted


# ---------------------------------------------------------------------------- nested configs


def leaf_paths(config_cls: type, prefix: str = "") -> dict[str, str]:
    """Every leaf field of a (nested) config dataclass: ``{'mapping.z_dim': 'z_dim', 'channels': 'channels', …}``."""
    paths: dict[str, str] = {}
    for f in dataclasses.fields(config_cls):
        nested = _nested_type(config_cls, f)
        if nested is not None:
            paths.update(leaf_paths(nested, f"{prefix}{f.name}."))
        else:
            paths[f"{prefix}{f.name}"] = f.name
    return paths


def _nested_type(config_cls: type, f: dataclasses.Field) -> type | None:
    """The dataclass type of a nested config field, found from its default (None for a plain field)."""
    has_factory = f.default_factory is not dataclasses.MISSING  # type: ignore[misc]
    default = f.default_factory() if has_factory else f.default  # type: ignore[misc]
    return type(default) if dataclasses.is_dataclass(default) else None


def _resolve_key(name: str, config_cls: type, key: str) -> str:
    """A dotted path for ``key``: itself when it is a path, else the one leaf of that name."""
    paths = leaf_paths(config_cls)
    if key in paths:
        return key
    matches = [p for p, leaf in paths.items() if leaf == key]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted(paths))
    if matches:
        raise PolyinrError(f"{name} setting {key!r} is ambiguous ({', '.join(matches)}); name its path")
    raise PolyinrError(f"{name} has no setting {key!r}; settings: {known}")


def _set_path(values: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        values = values.setdefault(part, {})
    values[leaf] = value


def build_config(config_cls: type, values: dict[str, Any]) -> Any:
    """A (nested) config dataclass from a (nested) dict of its fields; unknown keys raise in one line."""
    kwargs: dict[str, Any] = {}
    names = {f.name: f for f in dataclasses.fields(config_cls)}
    for key, value in values.items():
        if key not in names:
            raise PolyinrError(f"{config_cls.__name__} has no setting {key!r}; settings: {', '.join(sorted(names))}")
        nested = _nested_type(config_cls, names[key])
        if nested is not None:
            if isinstance(value, dict):
                default = dataclasses.asdict(getattr(config_cls(), key))
                value = build_config(nested, {**default, **value})
            elif not isinstance(value, nested):
                raise PolyinrError(f"setting {key!r} must be a table of {nested.__name__} fields, got {value!r}")
        kwargs[key] = value
    return config_cls(**kwargs)


def resolve_config(name: str, preset: str | None = None, **overrides: Any) -> Any:
    """The config of ``name`` from its defaults, then ``preset``, then non-None ``overrides``.

    Overrides are named by leaf (``num_classes=10``) or by dotted path (``**{"mapping.z_dim": 32}``).
    """
    entry = get_entry(name)
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in entry.presets:
            known = ", ".join(sorted(entry.presets)) or "none"
            raise PolyinrError(f"unknown preset {preset!r} for {name}; presets: {known}")
        values = _deep_copy(entry.presets[preset])
    for key, value in _dotted(overrides).items():
        if value is not None:  # None = not given, even for a setting this model does not have
            _set_path(values, _resolve_key(name, entry.config_cls, key), value)
    return build_config(entry.config_cls, values)


def flatten_config(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``[('channels', 64), ('mapping.z_dim', 32), …]``: a (nested) config dict as sorted dotted leaves."""
    items: list[tuple[str, Any]] = []
    for key, value in sorted(values.items()):
        if isinstance(value, dict):
            items += flatten_config(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _dotted(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict values spelled out as dotted keys: ``{'mapping': {'z_dim': 8}}`` → ``{'mapping.z_dim': 8}``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _deep_copy(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in values.items()}


def create(name: str, preset: str | None = None, **overrides: Any):
    """Build a randomly initialised generator: ``create('poly-inr', preset='cpu', num_classes=10)``."""
    cfg = resolve_config(name, preset, **overrides)
    return get_entry(name).generator_cls(cfg)


# ---------------------------------------------------------------------------- configs from untrusted files

MAX_CONFIG_INT = 2**16  # no size of any model here comes near (the largest is StyleGAN3's channel base 65536)


def check_config_values(cfg: Any, prefix: str = "") -> None:
    """Refuse, before anything is built, a config whose values have the wrong type or an absurd size (a
    corrupt or hostile ``config.json``): each field must have its default's type, numbers must be finite and
    integers at most :data:`MAX_CONFIG_INT` in magnitude."""
    for f in dataclasses.fields(cfg):
        value, name = getattr(cfg, f.name), f"{prefix}{f.name}"
        has_factory = f.default_factory is not dataclasses.MISSING  # type: ignore[misc]
        default = f.default_factory() if has_factory else f.default  # type: ignore[misc]
        if dataclasses.is_dataclass(default):
            check_config_values(value, f"{name}.")
            continue
        kind = type(default)
        if kind is bool and not isinstance(value, bool):
            raise PolyinrError(f"setting {name} must be true or false, got {value!r}")
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise PolyinrError(f"setting {name} must be an integer, got {value!r}")
        if kind is float and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            raise PolyinrError(f"setting {name} must be a finite number, got {value!r}")
        if kind is str and not isinstance(value, str):
            raise PolyinrError(f"setting {name} must be text, got {value!r}")
        if kind is int and abs(value) > MAX_CONFIG_INT:
            raise PolyinrError(f"setting {name} = {value:,} is beyond any model's size (at most {MAX_CONFIG_INT:,})")


def state_bytes(generator_cls: type, cfg: Any) -> int:
    """Bytes of the state dict ``generator_cls(cfg)`` would hold, computed on the meta device (nothing is
    allocated); a config that cannot be built is a one-line error."""
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. zero-element tensors of a degenerate config
            G = generator_cls(cfg)
    except (TypeError, ValueError, RuntimeError, OverflowError, ZeroDivisionError) as e:
        raise PolyinrError(f"the config cannot be built: {' '.join(str(e).split())[:200]}") from None
    return sum(t.numel() * t.element_size() for t in G.state_dict().values())
