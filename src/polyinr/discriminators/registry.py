"""Discriminator registry: name → class and config class, filled by :func:`register_discriminator`.

Registered like the generators (``models/registry.py``): each discriminator module decorates its class, and
``discriminators/__init__.py`` imports every module explicitly. The command line's ``--disc`` choices, the
training options and the contract test read the names from here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from polyinr.errors import UnusedSetting
from polyinr.registry import Registry

DISCRIMINATORS: Registry[type] = Registry("discriminator", "discriminators")  # name → Discriminator subclass
DATA_FIELDS = ("img_resolution", "num_classes")  # config fields filled from the data, never set as options


def register_discriminator(name: str, config_cls: type) -> Callable[[type], type]:
    """Class decorator: register a :class:`~polyinr.discriminators.base.Discriminator` subclass as ``name``."""

    def decorate(cls: type) -> type:
        cls.disc_name = name
        cls.config_cls = config_cls
        return DISCRIMINATORS.add(name, cls)

    return decorate


list_discriminators = DISCRIMINATORS.names  # registered discriminator names, sorted
get_discriminator = DISCRIMINATORS.lookup  # the registered class of a name; an unknown name is a one-line error


def discriminator_settings(name: str) -> list[str]:
    """The config fields of discriminator ``name`` that a caller may set (all but the data-derived ones)."""
    cls = get_discriminator(name)
    return [f.name for f in dataclasses.fields(cls.config_cls) if f.name not in DATA_FIELDS]


def check_discriminator_settings(name: str, settings: dict[str, Any]) -> None:
    """:class:`~polyinr.errors.UnusedSetting` when ``settings`` names a field the discriminator ``name`` lacks."""
    settable = discriminator_settings(name)
    for key in settings:
        if key not in settable:
            raise UnusedSetting(key, f"the {name} discriminator", settable)


def create_discriminator(name: str, img_resolution: int, num_classes: int, **settings: Any) -> torch.nn.Module:
    """Build the discriminator ``name`` for ``img_resolution``² images and ``num_classes`` classes (0 =
    unconditional); ``settings`` are fields of its config (e.g. ``channel_base``, ``backbones``)."""
    check_discriminator_settings(name, settings)
    cls = get_discriminator(name)
    return cls(cls.config_cls(img_resolution=img_resolution, num_classes=num_classes, **settings))
