"""Seeds derived from integer keys ``(seed, images shown, purpose, …)``: reproducible and independent of call
order, so a resumed run draws what an uninterrupted one would."""

from __future__ import annotations

import torch


def derived_seed(*keys: int) -> int:
    """A seed from integers (seed, images shown, purpose, …)."""
    return hash(tuple(keys)) & 0x7FFF_FFFF_FFFF_FFFF


def derived_rng(*keys: int) -> torch.Generator:
    """A generator seeded by :func:`derived_seed` of ``keys``."""
    return torch.Generator().manual_seed(derived_seed(*keys))
