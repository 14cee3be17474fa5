"""ScaleInv FID (Lin et al. 2022, InfinityGAN): render S× the training field of view, shrink it back, FID.

The zoomed-out grid keeps the native pixel spacing and has ``S·R`` pixels a side, on the frame's pixel lattice and
centred on the frame (to within half a pixel when ``(S − 1)·R`` is odd), so canvas models paint it too. It is shrunk to
``R × R`` as InfinityGAN's evaluation does (``scaleinv_fid``): ``F.interpolate(bilinear, align_corners=True)``
without antialiasing, so the numbers compare with theirs. That samples the render at ``R`` points a side and
blends only the 2×2 pixels around each, so for ``S ≥ 2`` it aliases: fine detail folds into false patterns
that the FID then judges. ``scaleinv_box_fid`` shrinks by the box average of each ``S × S`` block instead (an
area filter: every rendered pixel counts once), which we think measures the model rather than the resampler;
it is rendered in strips of whole blocks and pooled strip by strip, so its memory stays bounded at any ``S``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from polyinr.errors import PolyinrError
from polyinr.grid import Grid


def zoomed_out_grid(resolution: int, scale: int) -> Grid:
    """``scale·resolution`` pixels a side at the frame's pixel spacing, starting ``⌊(scale − 1)·resolution / 2⌋``
    pixels before the frame's first: on its pixel lattice, centred on it to within half a pixel."""
    if not isinstance(scale, int) or scale < 1:
        raise PolyinrError(f"the ScaleInv FID scale must be a positive integer, got {scale!r}")
    if resolution < 2:
        raise PolyinrError(f"ScaleInv FID needs a resolution of at least 2, got {resolution}")
    size, step = scale * resolution, 1 / (resolution - 1)
    start = -((scale - 1) * resolution // 2) * step  # frame units, a whole number of pixels before the frame
    end = start + (size - 1) * step
    return Grid.window(start, start, end, end, size, size)


RESIZES = ("bilinear", "box")  # InfinityGAN's (scaleinv_fid), the S×S box average (scaleinv_box_fid)


@torch.no_grad()
def render_zoomed_out(
    G: Any, ws: torch.Tensor, resolution: int, scale: int, resize: str = "bilinear", max_pixels: int = 1 << 22
) -> torch.Tensor:
    """Render ``ws [B, num_ws, w_dim]`` over ``scale``× the field of view, shrunk to ``[B, C, R, R]``.

    ``resize``: ``'bilinear'`` (InfinityGAN's evaluation: bilinear, ``align_corners=True``, no antialiasing; the
    full ``S·R`` render is held) or ``'box'`` (the average of each ``S × S`` block). ``max_pixels`` bounds the
    pixels (over the batch) rendered per synthesis call.
    """
    if resize not in RESIZES:
        raise PolyinrError(f"unknown ScaleInv resize {resize!r}; use one of {', '.join(RESIZES)}")
    grid = zoomed_out_grid(resolution, scale)
    B = ws.shape[0]
    strip = max(1, max_pixels // (B * grid.width * scale)) * scale  # rows per strip, whole blocks
    tiles = [G.synthesize(ws, tile).float() for _, _, tile in grid.tiles(strip, grid.width)]
    if resize == "box":
        return torch.cat([F.avg_pool2d(t, scale) for t in tiles], dim=2)  # [B, C, R, R]
    full = torch.cat(tiles, dim=2)  # [B, C, S·R, S·R]
    return F.interpolate(full, size=(resolution, resolution), mode="bilinear", align_corners=True, antialias=False)
