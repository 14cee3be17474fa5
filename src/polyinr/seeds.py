"""Seeds and latents, as in NVIDIA's StyleGAN tools: the same seed gives the same image in every tool."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from polyinr.errors import PolyinrError


def latents_from_seeds(seeds: Iterable[int], z_dim: int) -> torch.Tensor:
    """``[len(seeds), z_dim]`` float32: seed ``s`` gives ``np.random.RandomState(s).randn(1, z_dim)``."""
    rows = [np.random.RandomState(int(s)).randn(1, z_dim) for s in seeds]
    if not rows:
        return torch.zeros(0, z_dim)
    return torch.from_numpy(np.concatenate(rows)).float()


def parse_range_list(text: str, what: str = "seeds") -> list[int]:
    """Parse ``'0,3-7'`` into ``[0, 3, 4, 5, 6, 7]``; a one-line error for ``'7-3'``, negatives or junk."""
    values: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            raise PolyinrError(f"empty item in {what} {text!r}")
        if part.startswith("-"):
            raise PolyinrError(f"{what} must not be negative, got {part!r}")
        lo_text, sep, hi_text = part.partition("-")
        try:
            lo = int(lo_text)
            hi = int(hi_text) if sep else lo
        except ValueError:
            raise PolyinrError(f"{what} must look like '0,3-7', got {text!r}") from None
        if hi < lo:
            raise PolyinrError(f"{what} range {part!r} is empty: its end is before its start")
        values.extend(range(lo, hi + 1))
    return values
