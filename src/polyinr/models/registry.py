"""Generator registry: model name → class, config class and named presets (DESIGN rule 5).

Each preset is either the paper's settings (GPU-sized) or a CPU-sized one that shows a result in minutes.
Data-derived fields (``num_classes``, ``img_resolution``) may be overridden from the dataset by the caller.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field
from typing import Any

from polyinr.errors import PolyinrError


@dataclass
class ModelEntry:
    name: str
    generator_cls: type
    config_cls: type
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)


_MODELS: dict[str, ModelEntry] = {}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "poly-inr": {
        # The authors' ImageNet network (n 1024, 10 levels, z 64, w 512, 1000 classes), trained from 32².
        "imagenet": dict(channels=1024, num_levels=10, z_dim=64, w_dim=512, num_classes=1000,
                         class_embed_dim=320, img_resolution=32, init="authors"),
        # The paper's FFHQ width (n 512), unconditional.
        "ffhq": dict(channels=512, num_levels=10, z_dim=64, w_dim=512, num_classes=0, img_resolution=256,
                     init="authors"),
        # Small enough to train for minutes on 2 CPU cores.
        "cpu": dict(channels=64, num_levels=6, z_dim=32, w_dim=128, class_embed_dim=32, img_resolution=16),
    },
}  # fmt: skip


def register(name: str, config_cls: type):
    """Class decorator: register a :class:`~polyinr.models.generator.Generator` subclass under ``name``."""

    def decorate(cls: type) -> type:
        cls.model_name = name
        _MODELS[name] = ModelEntry(name, cls, config_cls, PRESETS.get(name, {}))
        return cls

    return decorate


def _ensure_models_imported() -> None:
    import polyinr.models  # noqa: F401  (imports every model module, which registers it)


def get_entry(name: str) -> ModelEntry:
    _ensure_models_imported()
    if name not in _MODELS:
        raise PolyinrError(f"unknown model {name!r}; known models: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching an fnmatch ``pattern``."""
    _ensure_models_imported()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def resolve_config(name: str, preset: str | None = None, **overrides: Any) -> Any:
    """The config of ``name`` from its defaults, then ``preset``, then non-None ``overrides``."""
    entry = get_entry(name)
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in entry.presets:
            known = ", ".join(sorted(entry.presets)) or "none"
            raise PolyinrError(f"unknown preset {preset!r} for {name}; presets: {known}")
        values.update(entry.presets[preset])
    fields = {f.name for f in dataclasses.fields(entry.config_cls)}
    for key, value in overrides.items():
        if key not in fields:
            raise PolyinrError(f"{name} has no setting {key!r}; settings: {', '.join(sorted(fields))}")
        if value is not None:
            values[key] = value
    return entry.config_cls(**values)


def create(name: str, preset: str | None = None, **overrides: Any):
    """Build a randomly initialised generator: ``create('poly-inr', preset='cpu', num_classes=10)``."""
    cfg = resolve_config(name, preset, **overrides)
    return get_entry(name).generator_cls(cfg)
