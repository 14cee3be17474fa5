"""Discriminators by name: ``create_discriminator('projected', img_resolution, num_classes, **options)``.

Every discriminator maps ``images [B, 3, R, R]`` in ``[-1, 1]`` and ``labels [B] | None`` to ``logits [B, K]``;
see :mod:`~polyinr.discriminators.base`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from polyinr.discriminators.base import Discriminator
from polyinr.discriminators.projected import ProjectedDiscriminator, ProjectedDiscriminatorConfig
from polyinr.discriminators.residual import ResidualDiscriminator, ResidualDiscriminatorConfig
from polyinr.errors import PolyinrError

DISCRIMINATORS: dict[str, type] = {
    "residual": ResidualDiscriminator,
    "projected": ProjectedDiscriminator,
}


def create_discriminator(name: str, img_resolution: int, num_classes: int, **options: Any) -> torch.nn.Module:
    """Build the discriminator ``name`` for ``img_resolution``² images and ``num_classes`` classes (0 =
    unconditional); ``options`` are fields of its config (e.g. ``channel_base``, ``backbones``)."""
    if name not in DISCRIMINATORS:
        raise PolyinrError(f"unknown discriminator {name!r}; discriminators: {', '.join(sorted(DISCRIMINATORS))}")
    cls = DISCRIMINATORS[name]
    settable = [f.name for f in dataclasses.fields(cls.config_cls) if f.name not in ("img_resolution", "num_classes")]
    unknown = sorted(set(options) - set(settable))
    if unknown:
        raise PolyinrError(f"the {name} discriminator has no option {', '.join(map(repr, unknown))}; "
                           f"options: {', '.join(settable)}")  # fmt: skip
    return cls(cls.config_cls(img_resolution=img_resolution, num_classes=num_classes, **options))


__all__ = [
    "DISCRIMINATORS",
    "Discriminator",
    "ProjectedDiscriminator",
    "ProjectedDiscriminatorConfig",
    "ResidualDiscriminator",
    "ResidualDiscriminatorConfig",
    "create_discriminator",
]
