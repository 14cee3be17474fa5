"""Grids → images: seeded batches, image grids, and tiled renders streamed to disk at any size.

A tiled render cuts one big :class:`~polyinr.grid.Grid` into tiles whose pixels are exactly the big grid's,
renders one strip of tiles at a time and streams the rows into a PNG, so peak memory is bounded by the strip
(tile height × output width), whatever the output size.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.models.generator import Generator
from polyinr.seeds import latents_from_seeds


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Images ``[B, C, H, W]`` in ``[-1, 1]`` → uint8 ``[B, C, H, W]`` on their device (``x·127.5 + 128``)."""
    return (images.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images ``[B, 3, H, W]`` in ``[-1, 1]`` → uint8 ``[B, H, W, 3]`` NumPy arrays, for saving."""
    return quantize(images).permute(0, 2, 3, 1).cpu().numpy()


def labels_for(G: Generator, class_idx: int | None, count: int, device: torch.device | str) -> torch.Tensor | None:
    """Class indices ``[count]`` for a conditional ``G``; None for an unconditional one; clear errors."""
    if G.num_classes == 0:
        if class_idx is not None:
            raise PolyinrError("this generator is unconditional: drop --class")
        return None
    if class_idx is None:
        raise PolyinrError(f"this generator is class-conditional: give --class (0..{G.num_classes - 1})")
    if not 0 <= class_idx < G.num_classes:
        raise PolyinrError(f"unknown class {class_idx}: this generator has classes 0..{G.num_classes - 1}")
    return torch.full((count,), class_idx, dtype=torch.long, device=device)


@torch.no_grad()
def seed_ws(
    G: Generator, seeds: list[int], class_idx: int | None = None, truncation_psi: float = 1.0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:  # fmt: skip
    """``ws [len(seeds), num_ws, w_dim]`` for seeds (StyleGAN's seed → z convention)."""
    z = latents_from_seeds(seeds, G.z_dim).to(device)
    return G.mapping(z, labels_for(G, class_idx, len(seeds), device), truncation_psi=truncation_psi)


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
    for start in range(0, len(seeds), batch_size):
        batch = seeds[start : start + batch_size]
        yield from zip(batch, render_ws(G, seed_ws(G, batch, class_idx, truncation_psi, device), grid, batch_size))


def image_grid(images: list[np.ndarray], cols: int, rows: int) -> np.ndarray:
    """Lay out ``rows × cols`` images ``[H, W, 3]`` row-major into one ``[rows·H, cols·W, 3]`` image."""
    if len(images) > cols * rows:
        raise PolyinrError(f"{len(images)} images do not fit a {cols}x{rows} grid")
    H, W, C = images[0].shape
    canvas = np.zeros((rows * H, cols * W, C), dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas[r * H : (r + 1) * H, c * W : (c + 1) * W] = img
    return canvas


def save_image(image: np.ndarray, path: str | Path) -> Path:
    """Save a uint8 ``[H, W, 3]`` image; the format follows the file extension."""
    path = prepare_output(path)
    Image.fromarray(image).save(path)
    return path


def prepare_output(path: str | Path) -> Path:
    """Check that the file ``path`` can be written, creating its directory; a one-line error otherwise."""
    path = Path(path)
    if path.is_dir():
        raise PolyinrError(f"output path {path} is a directory; give a file name")
    parent = path.parent
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PolyinrError(f"cannot create output directory {parent}: {e.strerror}") from None
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise PolyinrError(f"output directory {parent} is not writable")
    return path


class PngStreamWriter:
    """Write an RGB8 PNG row strip by row strip, holding only the current strip in memory."""

    def __init__(self, path: str | Path, height: int, width: int, level: int = 6) -> None:
        self.path, self.height, self.width = Path(path), height, width
        self.rows_written = 0
        self._file = open(self.path, "wb")
        self._zlib = zlib.compressobj(level)
        self._file.write(b"\x89PNG\r\n\x1a\n")
        self._chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))

    def _chunk(self, kind: bytes, data: bytes) -> None:
        self._file.write(struct.pack(">I", len(data)) + kind + data)
        self._file.write(struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    def write_rows(self, rows: np.ndarray) -> None:
        """Append rows ``uint8 [h, width, 3]``."""
        if rows.shape[1:] != (self.width, 3) or rows.dtype != np.uint8:
            raise ValueError(f"rows must be uint8 [h, {self.width}, 3], got {rows.dtype} {rows.shape}")
        filtered = np.zeros((rows.shape[0], 1 + self.width * 3), dtype=np.uint8)  # filter byte 0 = none
        filtered[:, 1:] = rows.reshape(rows.shape[0], -1)
        data = self._zlib.compress(filtered.tobytes())
        if data:
            self._chunk(b"IDAT", data)
        self.rows_written += rows.shape[0]

    def close(self) -> None:
        if self.rows_written != self.height:
            self._file.close()
            raise ValueError(f"PNG has {self.rows_written} of {self.height} rows")
        self._chunk(b"IDAT", self._zlib.flush())
        self._chunk(b"IEND", b"")
        self._file.close()

    def abort(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


@torch.no_grad()
def render_tiled(
    G: Generator,
    ws: torch.Tensor,
    grid: Grid,
    out_path: str | Path,
    tile: int = 512,
    on_tile: Callable[[int, int], None] | None = None,
) -> Path:
    """Render one sample ``ws [1, num_ws, w_dim]`` on ``grid`` tile by tile into ``out_path``.

    PNG output is streamed strip by strip (memory bounded by ``tile × width``); other formats hold the
    output image. ``on_tile(done, total)`` reports progress. A partial file is removed on failure.
    """
    out_path = prepare_output(out_path)
    if ws.shape[0] != 1:
        raise PolyinrError("render_tiled renders one sample at a time")
    H, W = grid.shape
    if tile >= H and tile >= W:
        G.check_grid(grid)  # one tile: the grid itself
    else:
        G.check_tiles(tile, tile)
    tiles_down, tiles_across = -(-H // tile), -(-W // tile)
    total, done = tiles_down * tiles_across, 0
    streaming = out_path.suffix.lower() == ".png"
    writer = PngStreamWriter(out_path, H, W) if streaming else None
    canvas = None if streaming else np.zeros((H, W, 3), dtype=np.uint8)
    try:
        for r in range(0, H, tile):
            h = min(tile, H - r)
            strip = np.empty((h, W, 3), dtype=np.uint8)
            for c in range(0, W, tile):
                w = min(tile, W - c)
                part = grid if (h, w) == (H, W) else grid.crop((r, r + h), (c, c + w))
                strip[:, c : c + w] = to_uint8(G.synthesize(ws, part))[0]
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
            Image.fromarray(canvas).save(out_path)
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
