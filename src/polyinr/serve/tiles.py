"""Tiles for the web viewer: which grid a tile is, batched rendering off the event loop, a bounded cache.

A tile ``(level, row, col)`` of ``size`` pixels is a window of the plane on a lattice whose spacing depends on
the generator's grid support:

- continuous generators (any window at any density) get deep zoom: at level ``L`` a pixel is ``2^-L / size``
  frame units, so tile ``(row, col)`` starts at ``(row, col) · 2^-L`` and level 0 spans about the frame. Every
  coordinate is then a dyadic rational computed exactly in float64, so a tile, the same window rendered by
  ``polyinr render --window`` and a block of neighbouring tiles rendered as one grid all give the same pixels
  bit for bit;
- canvas generators (InfinityGAN) get one level on their own pixel lattice (spacing ``1/(R−1)``);
- frame generators (StyleGAN3) take no tiles: the viewer shows their native frame, translated and rotated.

:class:`TileRenderer` owns one generator on one device. Tile requests queue as jobs; a worker task takes the
oldest job first (fair between clients: a page aborts the tiles that leave its screen and an aborted job is
dropped before it renders, so the queue holds only views on screen), merges it with the queued jobs of the same
latent and level into one rectangle of tiles (up to a pixel budget) and renders that rectangle as one synthesis
call in the renderer's own thread, so the event loop never waits for a render. Encoded tiles are kept in an LRU
cache bounded in bytes.
"""

from __future__ import annotations

import asyncio
import io
import math
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.image_io import PngEncoder, to_uint8
from polyinr.models.generator import CANVAS, Generator

T = TypeVar("T")

TILE_SIZES = (64, 128, 256, 512)  # tile edges the viewer serves (pixels)
FORMATS = {"png": "image/png", "webp": "image/webp"}


# ---------------------------------------------------------------------------- which grid a tile is


@dataclass(frozen=True)
class Tiling:
    """Tiles of one generator: allowed levels and the pixel spacing (frame units) at each."""

    min_level: int
    max_level: int
    lattice_step: float | None  # canvas: the model's own pixel spacing at every level; None = 2^-level / size
    max_extent: float = 4096.0  # tiles must start within ±max_extent frame units of the origin

    def step(self, level: int, size: int) -> float:
        """Frame units between neighbouring pixels of a ``size``-pixel tile at ``level``."""
        return self.lattice_step if self.lattice_step is not None else math.ldexp(1.0, -level) / size

    def check(self, level: int, row: int, col: int, size: int) -> None:
        """Raise :class:`PolyinrError` when the tile is outside the levels or the extent this tiling serves."""
        if not self.min_level <= level <= self.max_level:
            raise PolyinrError(f"zoom level {level} is outside {self.min_level}..{self.max_level}")
        span = size * self.step(level, size)  # frame units across one tile
        reach = max(abs(row), abs(row + 1), abs(col), abs(col + 1)) * span
        if reach > self.max_extent:
            raise PolyinrError(f"tile ({row}, {col}) at level {level} lies beyond ±{self.max_extent:g} frame units")

    def span(self, level: int, row: int, col: int, rows: int, cols: int, size: int) -> Grid:
        """The grid of ``rows × cols`` tiles whose top-left tile is ``(row, col)``: ``rows·size × cols·size``
        pixels; each tile is the crop ``[i·size, (i+1)·size)`` of it, pixel for pixel."""
        step = self.step(level, size)
        top, left = row * size * step, col * size * step
        height, width = rows * size, cols * size
        return Grid.window(top, left, top + (height - 1) * step, left + (width - 1) * step, height, width)

    def grid(self, level: int, row: int, col: int, size: int) -> Grid:
        """The grid of one tile: the same window at the same size as ``polyinr render --window`` takes."""
        return self.span(level, row, col, 1, 1, size)


def tiling_for(G: Generator) -> Tiling | None:
    """The tiling of ``G``'s grid support; None for frame-only generators (no tiles, native frame)."""
    if not G.grid_support.tiles:
        return None
    if G.grid_support == CANVAS:
        return Tiling(min_level=0, max_level=0, lattice_step=1.0 / (G.img_resolution - 1))
    return Tiling(min_level=-6, max_level=20, lattice_step=None)


# ---------------------------------------------------------------------------- encoding and the cache


def encode(image: np.ndarray, fmt: str) -> bytes:
    """uint8 ``[H, W, 3]`` → PNG or lossless WebP bytes (the same pixels either way)."""
    buffer = io.BytesIO()
    if fmt == "webp":
        Image.fromarray(image).save(buffer, format="WEBP", lossless=True, quality=0, method=0)
    else:
        Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class ByteLRU:
    """A least-recently-used map of keys to bytes whose values together hold at most ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()

    def get(self, key: Hashable) -> bytes | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: bytes) -> None:
        if len(value) > self.max_bytes:
            return
        old = self._items.pop(key, None)
        self.nbytes += len(value) - (len(old) if old is not None else 0)
        self._items[key] = value
        while self.nbytes > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self.nbytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._items)


# ---------------------------------------------------------------------------- batched rendering


DEFAULT_BATCH_PIXELS = 16 * 256 * 256  # pixels one synthesis call may merge: 16 tiles of 256²


async def client_gone(receive: Callable[[], Awaitable[dict]]) -> None:
    """Finish when the HTTP client disconnects (ASGI ``receive`` of a request whose body was read): a waiting
    tile request then leaves the queue without polling."""
    while (await receive())["type"] != "http.disconnect":
        pass


@dataclass(eq=False)
class _Job:
    key: Hashable  # cache key: (source key, level, row, col, size, format)
    group: Hashable  # jobs of one group can share a synthesis call: (source key, level, size)
    level: int
    row: int
    col: int
    size: int
    fmt: str
    ws: Callable[[], torch.Tensor]  # runs in the render thread: ``ws [1, num_ws, w_dim]``
    future: asyncio.Future
    waiters: int = 1


@dataclass
class RenderStats:
    """Counters for tests and the benchmark."""

    synthesis_calls: int = 0
    tiles_rendered: int = 0
    tiles_cancelled: int = 0
    cache_hits: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    render_seconds: float = 0.0  # wall time the render thread spent synthesizing and encoding tiles


class TileRenderer:
    """Renders tiles of one generator on one device, batched, off the event loop, cached.

    ``max_batch_pixels`` bounds one synthesis call (1 tile of ``size²`` at least); ``cache_bytes`` bounds the
    cache of encoded tiles. Create it anywhere; :meth:`start` inside the serving event loop.
    """

    def __init__(
        self, G: Generator, max_batch_pixels: int = DEFAULT_BATCH_PIXELS, cache_bytes: int = 256 << 20
    ) -> None:
        self.G = G
        self.tiling = tiling_for(G)
        self.max_batch_pixels = max_batch_pixels
        self.cache = ByteLRU(cache_bytes)
        self.stats = RenderStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="polyinr-render")
        self._pending: dict[Hashable, _Job] = {}
        self._wake = asyncio.Event()  # binds to the loop that first waits on it
        self._worker: asyncio.Task | None = None
        self._ws_cache: OrderedDict[Hashable, torch.Tensor] = OrderedDict()  # used in the render thread only
        self._lock = threading.Lock()

    # -- lifecycle

    def start(self) -> None:
        """Start the worker task in the running event loop."""
        self._wake = asyncio.Event()
        if self._pending:
            self._wake.set()
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        for job in self._pending.values():
            job.future.cancel()
        self._pending.clear()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- work in the render thread

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the renderer's thread (one model copy, one thread per device) and await its result."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def ws(self, key: Hashable, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``ws`` for a source key, from a small LRU (call in the render thread)."""
        with self._lock:
            ws = self._ws_cache.get(key)
            if ws is None:
                ws = self._ws_cache[key] = make()
                while len(self._ws_cache) > 64:
                    self._ws_cache.popitem(last=False)
            else:
                self._ws_cache.move_to_end(key)
            return ws

    # -- tiles

    async def tile(
        self,
        source_key: Hashable,
        ws: Callable[[], torch.Tensor],
        level: int,
        row: int,
        col: int,
        size: int,
        fmt: str = "png",
        gone: Callable[[], Awaitable[Any]] | None = None,
    ) -> bytes | None:
        """The encoded tile, or None when ``gone()`` (an awaitable that finishes when the requester leaves, e.g.
        :func:`client_gone`; made only if the tile has to wait) finishes first.

        ``ws()`` gives ``ws [1, num_ws, w_dim]`` in the render thread; ``source_key`` names it for the caches.
        """
        key = (source_key, level, row, col, size, fmt)
        cached = self.cache.get(key)
        if cached is not None:
            self.stats.cache_hits += 1
            return cached
        job = self._pending.get(key)
        if job is None or job.future.done():
            future = asyncio.get_running_loop().create_future()
            job = _Job(key, (source_key, level, size), level, row, col, size, fmt, ws, future)
            self._pending[key] = job
            self._wake.set()
        else:
            job.waiters += 1
        watcher = None if gone is None else asyncio.ensure_future(gone())
        try:
            await asyncio.wait({job.future} | ({watcher} if watcher else set()), return_when=asyncio.FIRST_COMPLETED)
            return job.future.result() if job.future.done() else None
        finally:
            if watcher is not None:
                watcher.cancel()
            job.waiters -= 1
            if job.waiters == 0 and self._pending.get(key) is job:  # nobody waits and it has not started
                del self._pending[key]
                job.future.cancel()
                self.stats.tiles_cancelled += 1

    def _take_batch(self) -> list[_Job]:
        """The oldest job and the queued jobs of its group that fill a rectangle of tiles around it, within the
        pixel budget: rows are grown first, then whole rows are added, so no pixel renders that nobody asked for."""
        oldest = next(iter(self._pending.values()))  # dicts keep insertion order
        cells: dict[tuple[int, int], list[_Job]] = {}
        for job in self._pending.values():
            if job.group == oldest.group:
                cells.setdefault((job.row, job.col), []).append(job)
        max_tiles = max(1, self.max_batch_pixels // (oldest.size * oldest.size))
        row, c0, c1 = oldest.row, oldest.col, oldest.col
        while c1 - c0 + 1 < max_tiles and (row, c1 + 1) in cells:
            c1 += 1
        while c1 - c0 + 1 < max_tiles and (row, c0 - 1) in cells:
            c0 -= 1

        def full(r: int) -> bool:
            return all((r, c) in cells for c in range(c0, c1 + 1))

        r0, r1, width = row, row, c1 - c0 + 1
        while (r1 - r0 + 2) * width <= max_tiles and full(r1 + 1):
            r1 += 1
        while (r1 - r0 + 2) * width <= max_tiles and full(r0 - 1):
            r0 -= 1
        batch = [job for r in range(r0, r1 + 1) for c in range(c0, c1 + 1) for job in cells[(r, c)]]
        for job in batch:
            del self._pending[job.key]
        return batch

    def _render(self, batch: list[_Job]) -> list[bytes]:
        """Render one rectangle of tiles covering ``batch`` in one synthesis call; encode each job's tile."""
        start = time.perf_counter()
        first = batch[0]
        row0, col0 = min(j.row for j in batch), min(j.col for j in batch)
        rows, cols = max(j.row for j in batch) - row0 + 1, max(j.col for j in batch) - col0 + 1
        grid = self.tiling.span(first.level, row0, col0, rows, cols, first.size)
        with torch.no_grad():
            image = to_uint8(self.G.synthesize(first.ws(), grid))[0]  # [rows·size, cols·size, 3]
        s = first.size
        crops = {
            (j.row, j.col): np.ascontiguousarray(
                image[(j.row - row0) * s : (j.row - row0 + 1) * s, (j.col - col0) * s : (j.col - col0 + 1) * s]
            )
            for j in batch
        }
        encoded = [encode(crops[(j.row, j.col)], j.fmt) for j in batch]
        self.stats.render_seconds += time.perf_counter() - start  # written by the render thread only
        return encoded

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._take_batch()
                try:
                    results = await self.run(lambda batch=batch: self._render(batch))
                except Exception as e:
                    for job in batch:
                        if not job.future.done():
                            job.future.set_exception(e)
                    continue
                self.stats.synthesis_calls += 1
                self.stats.tiles_rendered += len(batch)
                self.stats.batch_sizes.append(len(batch))
                for job, data in zip(batch, results):
                    self.cache.put(job.key, data)
                    if not job.future.done():
                        job.future.set_result(data)


# ---------------------------------------------------------------------------- export: one PNG, strip by strip


async def export_png(
    renderer: TileRenderer,
    ws: Callable[[], torch.Tensor],
    grid: Grid,
    tile: int = 256,
    on_tile: Callable[[int, int], None] | None = None,
) -> AsyncIterator[bytes]:
    """Yield an RGB8 PNG of ``grid`` rendered tile by tile as ``polyinr render`` does (the same crops, the
    same pixels), one strip of tiles at a time: memory is bounded by ``tile × width``, whatever the size."""
    H, W = grid.shape
    total = (-(-H // tile)) * (-(-W // tile))
    done = 0
    png = PngEncoder(H, W)
    yield png.header()
    for r in range(0, H, tile):
        h = min(tile, H - r)
        strip = np.empty((h, W, 3), dtype=np.uint8)
        for c in range(0, W, tile):
            w = min(tile, W - c)
            crop = grid.crop((r, r + h), (c, c + w))

            def render_tile(crop: Grid = crop) -> np.ndarray:
                with torch.no_grad():
                    return to_uint8(renderer.G.synthesize(ws(), crop))[0]  # [h, w, 3]

            strip[:, c : c + w] = await renderer.run(render_tile)
            done += 1
            if on_tile is not None:
                on_tile(done, total)
        data = await asyncio.to_thread(png.rows, strip)
        if data:
            yield data
    yield png.end()
