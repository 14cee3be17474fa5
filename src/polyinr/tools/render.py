"""Grids → images: seeded batches and tiled renders streamed to disk at any size.

A tiled render cuts one big :class:`~polyinr.grid.Grid` into tiles whose pixels are exactly the big grid's,
renders one strip of tiles at a time and streams the rows into a PNG, so peak memory is bounded by the strip
(tile height × output width), whatever the output size.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.image_io import PngEncoder, PngStreamWriter, check_memory, prepare_image_output, save_image, to_uint8
from polyinr.models.generator import CanvasInputs, FusedStyles, Generator
from polyinr.sampling import iter_ws


def moved_frame(resolution: int, translate: tuple[float, float] = (0.0, 0.0), rotate: float = 0.0) -> Grid:
    """The frame at ``resolution`` with its content moved by ``translate = (x, y)`` image sizes (right, down)
    and rotated by ``rotate`` degrees about its centre: StyleGAN3's ``gen_images.py --translate --rotate``.

    Their image spans ``resolution`` pixels; the frame's pixels are ``1 / (resolution − 1)`` apart, so one image
    size is ``resolution / (resolution − 1)`` frame units. Their input transform, the inverse of
    ``make_transform(translate, rotate)``, is this grid's affine map.
    """
    if tuple(translate) == (0.0, 0.0) and rotate == 0:
        return Grid.frame(resolution)
    scale = resolution / (resolution - 1) if resolution > 1 else 1.0
    x, y = translate
    return Grid.frame(resolution).translated(-y * scale, -x * scale).rotated(-math.radians(rotate))


@torch.no_grad()
def generate_images(
    G: Generator,
    seeds: list[int],
    class_idx: int | None = None,
    truncation_psi: float = 1.0,
    grid: Grid | None = None,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(seed, image uint8 [H, W, 3])`` for each seed, rendered on ``grid`` in batches."""
    batches = iter_ws(G, seeds, class_idx, truncation_psi, device=device, batch_size=batch_size)
    for start, ws in zip(range(0, len(seeds), batch_size), batches):
        yield from zip(seeds[start : start + batch_size], render_ws(G, ws, grid, batch_size))


def tiled_render_bytes(H: int, W: int, tile: int, streaming: bool) -> int:
    """Bytes :func:`render_tiled` holds at its peak for an ``H×W`` render in ``tile``-pixel tiles: a tile's float
    images and the synthesis' work, the full-width uint8 strip of tiles, and either the PNG encoder's buffers
    (``streaming``) or the whole image with the copy the image library makes of it to encode (4 bytes a pixel).
    """
    h, w = min(tile, H), min(tile, W)
    tile_work = h * w * 3 * 4 * 4  # float32 [1, 3, h, w] images, a few at once
    strip = h * W * 3
    held = PngEncoder.working_bytes(W, h) if streaming else H * W * (3 + 4)
    return tile_work + strip + held


@torch.no_grad()
def render_tiled(
    G: Generator,
    ws: torch.Tensor,
    grid: Grid,
    out_path: str | Path,
    tile: int = 512,
    on_tile: Callable[[int, int], None] | None = None,
    canvas: CanvasInputs | None = None,
    fusion: FusedStyles | None = None,
) -> Path:
    """Render one sample ``ws [1, num_ws, w_dim]`` on ``grid`` tile by tile into ``out_path``.

    PNG output is streamed strip by strip (memory bounded by ``tile × width``); other formats hold the
    output image. ``on_tile(done, total)`` reports progress. A partial file is removed on failure.
    ``canvas`` and ``fusion`` (canvas models): the tiles are windows of that canvas (:meth:`Generator.render_canvas`).
    """
    out_path = prepare_image_output(out_path)
    if ws.shape[0] != 1:
        raise PolyinrError("render_tiled renders one sample at a time")
    H, W = grid.shape
    if tile >= H and tile >= W:
        G.check_grid(grid)  # one tile: the grid itself
    else:
        G.check_tiles(tile, tile)
    streaming = out_path.suffix.lower() == ".png"
    if streaming:
        what, way_round = f"a {H}x{W} render in {tile}-pixel tiles", "give a smaller tile size or a narrower window"
    else:
        what = f"a {H}x{W} {out_path.suffix} image (held whole in memory)"
        way_round = "write a .png, which is streamed to disk strip by strip, or render a smaller size"
    check_memory(tiled_render_bytes(H, W, tile, streaming), what, way_round)
    if canvas is None and fusion is None:
        render = functools.partial(G.synthesize, ws)
    else:
        render = functools.partial(G.render_canvas, ws, canvas=canvas, fusion=fusion)
    tiles_down, tiles_across = -(-H // tile), -(-W // tile)
    total, done = tiles_down * tiles_across, 0
    writer = PngStreamWriter(out_path, H, W) if streaming else None
    canvas = None if streaming else np.zeros((H, W, 3), dtype=np.uint8)
    try:
        for r in range(0, H, tile):
            h = min(tile, H - r)
            strip = np.empty((h, W, 3), dtype=np.uint8)
            for c in range(0, W, tile):
                w = min(tile, W - c)
                part = grid if (h, w) == (H, W) else grid.crop((r, r + h), (c, c + w))
                strip[:, c : c + w] = to_uint8(render(part))[0]
                done += 1
                if on_tile is not None:
                    on_tile(done, total)
            if writer is not None:
                writer.write_rows(strip)
            else:
                canvas[r : r + h] = strip
        if writer is not None:
            writer.close()
        else:
            save_image(canvas, out_path)  # atomic: a full disk leaves no partial file
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return out_path


@torch.no_grad()
def render_ws(G: Generator, ws: torch.Tensor, grid: Grid | None = None, batch_size: int = 8) -> Iterator[np.ndarray]:
    """Yield one uint8 image ``[H, W, 3]`` per sample of ``ws [N, num_ws, w_dim]``, rendered in batches."""
    for start in range(0, len(ws), batch_size):
        yield from to_uint8(G.synthesize(ws[start : start + batch_size], grid))
