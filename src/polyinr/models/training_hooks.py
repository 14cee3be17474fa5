"""The generator hooks only training calls: which parameters train, each resolution stage's network, a learned
input grid.

:class:`TrainableGenerator` holds their defaults (one network, all of it trained, renders every stage's grid at
the last stage's resolution; no input grid to learn). Every registered generator mixes it in beside
:class:`~polyinr.models.generator.Generator`, and a model that trains differently overrides the hook (StyleGAN-XL
grows by stages and trains only its newest head; Poly-INR learns its input grid); tools, metrics and the viewer
never see these hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from polyinr.models.generator import CapabilityMissing

if TYPE_CHECKING:
    from polyinr.models.generator import Generator


class TrainableGenerator:
    """Mixin of the training hooks, with their defaults; used as ``class M(TrainableGenerator, Generator)``."""

    model_name: str  # the registered generator's

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters training updates (all of them unless the model freezes some)."""
        return list(self.parameters())

    @classmethod
    def stage_settings(cls, resolutions: list[int], stage: int) -> dict[str, Any]:
        """Config fields of the network that trains stage ``stage`` of a run whose stages render
        ``resolutions``: by default one network renders every stage's grid at the last stage's resolution."""
        return {"img_resolution": max(resolutions)}

    @classmethod
    def smallest_images(cls, cfg: Any) -> int:
        """The side of the smallest images a network of config ``cfg`` trains on: any size by default (1)."""
        return 1

    @classmethod
    def learned_grid_settings(cls) -> dict[str, Any]:
        """Config fields of a network that learns its own input coordinates for its native frame, as the
        Poly-INR authors' trained grid; models without input coordinates to learn raise.

        The learned coordinates belong to the native frame, so a run that learns them trains each stage's
        network with that stage's frame as its native one (``img_resolution``), and :meth:`next_stage` gives the
        next stage's network its own coordinates; every other grid stays on uniform coordinates.
        """
        raise CapabilityMissing(f"{cls.model_name} has no input grid of per-pixel coordinates to learn")

    def next_stage(self, resolution: int) -> Generator | None:
        """The network the next stage (at ``resolution``) trains, built from this one, or None when this one
        carries on (the same weights on a denser grid). Progressively grown models return a grown copy."""
        return None
