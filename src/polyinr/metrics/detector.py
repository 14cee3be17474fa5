"""The base class of the feature detectors (:mod:`polyinr.metrics.features`, :mod:`polyinr.metrics.nvidia_vgg16`,
the offline feature spaces)."""

from __future__ import annotations

from torch import nn

from polyinr.errors import PolyinrError


class Detector(nn.Module):
    """Base class: ``forward(images uint8 [B, 3, H, W], features) → {name: float32 [B, D]}``.

    ``name`` identifies the network and its weights (it keys the real-data statistics cache and is written
    beside every result); ``provides`` lists the feature names it computes.
    """

    name: str
    provides: tuple[str, ...]

    def check(self, features: tuple[str, ...]) -> None:
        missing = [f for f in features if f not in self.provides]
        if missing:
            raise PolyinrError(
                f"detector {self.name} does not compute {', '.join(missing)} features "
                f"(it computes {', '.join(self.provides)})"
            )
