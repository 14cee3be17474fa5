"""Discriminators by name: ``create_discriminator('projected', img_resolution, num_classes, **settings)``.

Every discriminator maps ``images [B, 3, R, R]`` in ``[-1, 1]`` and ``labels [B] | None`` to ``logits [B, K]``;
see :mod:`~polyinr.discriminators.base`. Each module registers its class with
:func:`~polyinr.discriminators.registry.register_discriminator`; the explicit imports below register them all.
"""

from __future__ import annotations

from polyinr.discriminators.base import Discriminator
from polyinr.discriminators.projected import ProjectedDiscriminator, ProjectedDiscriminatorConfig
from polyinr.discriminators.registry import (
    DISCRIMINATORS,
    create_discriminator,
    discriminator_settings,
    get_discriminator,
    list_discriminators,
    register_discriminator,
)
from polyinr.discriminators.residual import ResidualDiscriminator, ResidualDiscriminatorConfig

__all__ = [
    "DISCRIMINATORS",
    "Discriminator",
    "ProjectedDiscriminator",
    "ProjectedDiscriminatorConfig",
    "ResidualDiscriminator",
    "ResidualDiscriminatorConfig",
    "create_discriminator",
    "discriminator_settings",
    "get_discriminator",
    "list_discriminators",
    "register_discriminator",
]
