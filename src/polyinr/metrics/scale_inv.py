"""ScaleInv FID (Lin et al. 2022, InfinityGAN): render S× the training field of view, shrink it back, FID.

The zoomed-out grid keeps the native pixel spacing and centre and has ``S·R`` pixels a side, so each output pixel
is the box average of an ``S × S`` block of it. It is rendered in strips of whole blocks and pooled strip by
strip: memory stays bounded at any ``S``, and the result is the same as pooling the full render.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from polyinr.errors import PolyinrError
from polyinr.grid import Grid


def zoomed_out_grid(resolution: int, scale: int) -> Grid:
    """``scale·resolution`` pixels a side at the frame's pixel spacing, centred on the frame."""
    if not isinstance(scale, int) or scale < 1:
        raise PolyinrError(f"the ScaleInv FID scale must be a positive integer, got {scale!r}")
    if resolution < 2:
        raise PolyinrError(f"ScaleInv FID needs a resolution of at least 2, got {resolution}")
    size = scale * resolution
    half = (size - 1) / (resolution - 1) / 2  # half the window, in frame units
    return Grid.window(0.5 - half, 0.5 - half, 0.5 + half, 0.5 + half, size, size)


@torch.no_grad()
def render_zoomed_out(G: Any, ws: torch.Tensor, resolution: int, scale: int, max_pixels: int = 1 << 22
                      ) -> torch.Tensor:  # fmt: skip
    """Render ``ws [B, num_ws, w_dim]`` over ``scale``× the field of view, box-downsampled to ``[B, C, R, R]``.

    ``max_pixels`` bounds the pixels (over the batch) rendered per synthesis call.
    """
    grid = zoomed_out_grid(resolution, scale)
    B = ws.shape[0]
    strip = max(1, max_pixels // (B * grid.width * scale)) * scale  # rows per strip, whole blocks
    pooled = [F.avg_pool2d(G.synthesize(ws, tile).float(), scale) for _, _, tile in grid.tiles(strip, grid.width)]
    return torch.cat(pooled, dim=2)  # [B, C, R, R]
