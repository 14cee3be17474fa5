"""Videos of the continuous image: latent walks, flights over the plane, and the video writer.

- A latent walk interpolates key latents (z or ws) and renders each frame; ``cols × rows`` walks run side by
  side in one picture.
- A flight keeps the latent and moves the window: the camera pans over the plane (beyond the training frame
  the network extrapolates) or zooms (far below the training pixel size). Every frame is rendered by the
  synthesis on its own :class:`~polyinr.grid.Grid` at the output size, never by resampling pixels.
- :func:`write_video` streams frames into an MP4 (H.264 via PyAV) or a GIF (Pillow), chosen by the extension.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from polyinr.atomic import atomic_write
from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.image_io import image_grid, prepare_output, to_uint8
from polyinr.models.generator import Generator
from polyinr.sampling import labels_for
from polyinr.tools.edit import interpolation_path

VIDEO_FORMATS = (".mp4", ".gif")


# ---------------------------------------------------------------------------- frames


def _cells(cells: int, cols: int) -> tuple[int, int]:
    if cols < 1 or cells % cols:
        raise PolyinrError(f"{cells} samples do not fill a grid {cols} columns wide")
    return cols, cells // cols


def walk_keys(latents: torch.Tensor, cells: int) -> torch.Tensor:
    """Split ``latents [cells·K, ...]`` cell by cell (cell ``i`` gets ``K`` consecutive latents, as in StyleGAN's
    ``gen_video``) into walk keys ``[K, cells, ...]``."""
    if cells < 1 or len(latents) % cells or len(latents) // cells < 2:
        raise PolyinrError(
            f"{len(latents)} latents do not give {cells} walks: each walk needs at least 2 key "
            f"latents, so give a multiple of {cells} (at least {2 * cells})"
        )
    return latents.reshape(cells, len(latents) // cells, *latents.shape[1:]).transpose(0, 1)  # [K, cells, ...]


@torch.no_grad()
def latent_walk(
    G: Generator,
    keys: torch.Tensor,
    frames_per_step: int,
    kind: str = "lerp",
    loop: bool = True,
    space: str = "w",
    class_idx: int | None = None,
    truncation_psi: float = 1.0,
    grid: Grid | None = None,
    cols: int = 1,
    truncation_cutoff: int | None = None,
) -> Iterator[np.ndarray]:
    """Frames uint8 ``[rows·H, cols·W, 3]`` of ``N = cols·rows`` walks side by side.

    ``keys [K, N, z_dim]`` (``space='z'``: mapped each frame with ``class_idx`` and truncation, of the first
    ``truncation_cutoff`` ws when given) or ``keys [K, N, num_ws, w_dim]`` (``space='w'``: ws, used as they are;
    ``space='inr'``: each key's INR parameters are interpolated instead, for models that have them, e.g.
    INR-GAN's per-layer modulated weights). See :func:`~polyinr.tools.edit.interpolation_path` for the frame
    count and the loop.
    """
    if space == "z":
        if keys.ndim != 3 or keys.shape[2] != G.z_dim:
            raise PolyinrError(f"z keys must be [K, N, {G.z_dim}], got {tuple(keys.shape)}")
        labels = labels_for(G, class_idx, keys.shape[1], keys.device)
    elif space in ("w", "inr"):
        if keys.ndim != 4 or keys.shape[2:] != (G.num_ws, G.w_dim):
            raise PolyinrError(f"w keys must be [K, N, {G.num_ws}, {G.w_dim}], got {tuple(keys.shape)}")
    else:
        raise PolyinrError(f"unknown latent space {space!r}; use z, w or inr")
    cols, rows = _cells(keys.shape[1], cols)
    if space == "inr":
        params = torch.stack([G.inr_parameters(ws) for ws in keys])  # [K, N, D]
        for latent in interpolation_path(params, frames_per_step, kind, loop):
            yield image_grid(list(to_uint8(G.synthesize_inr(latent, grid))), cols, rows)
        return
    for latent in interpolation_path(keys, frames_per_step, kind, loop):
        ws = (
            G.mapping(latent, labels, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
            if space == "z"
            else latent
        )
        yield image_grid(list(to_uint8(G.synthesize(ws, grid))), cols, rows)


def flight_grids(
    window: tuple[float, float, float, float],
    size: tuple[int, int],
    frames: int,
    pan: tuple[float, float] = (0.0, 0.0),
    zoom: float = 1.0,
    lattice: float | None = None,
) -> list[Grid]:
    """The windows of a camera flight, one :class:`Grid` of ``size`` (H, W) per frame.

    The window's centre travels ``pan`` (rows, cols, in frame units) in a straight line and its size changes
    geometrically from ``window``'s to ``zoom`` times it (``zoom`` < 1 zooms in), so the motion looks steady.
    Frame 0 is ``window``; the last frame is the end of the flight. ``lattice``: the pixel spacing of a canvas
    model, whose windows move by whole pixels only (each frame's window snapped to it; no zoom).
    """
    if lattice is not None and zoom != 1:
        raise PolyinrError("a canvas model's flight pans over its canvas; it cannot zoom")
    if frames < 2:
        raise PolyinrError(f"a flight needs at least 2 frames, got {frames}")
    if not (math.isfinite(zoom) and zoom > 0):
        raise PolyinrError(f"zoom must be a positive factor, got {zoom}")
    top, left, bottom, right = window
    center_r, center_c = (top + bottom) / 2, (left + right) / 2
    half_h, half_w = (bottom - top) / 2, (right - left) / 2
    grids = []
    for i in range(frames):
        t = i / (frames - 1)
        r, c, s = center_r + t * pan[0], center_c + t * pan[1], zoom**t
        if lattice is not None:
            r0, c0 = round((r - half_h) / lattice) * lattice, round((c - half_w) / lattice) * lattice
            grids.append(Grid.window(r0, c0, r0 + (size[0] - 1) * lattice, c0 + (size[1] - 1) * lattice, *size))
            continue
        grids.append(Grid.window(r - s * half_h, c - s * half_w, r + s * half_h, c + s * half_w, *size))
    return grids


@torch.no_grad()
def flight(G: Generator, ws: torch.Tensor, grids: Iterable[Grid], cols: int = 1) -> Iterator[np.ndarray]:
    """Frames uint8 ``[rows·H, cols·W, 3]``: the samples ``ws [cols·rows, num_ws, w_dim]`` on each grid."""
    cols, rows = _cells(len(ws), cols)
    for grid in grids:
        yield image_grid(list(to_uint8(G.synthesize(ws, grid))), cols, rows)


# ---------------------------------------------------------------------------- writing


def write_video(frames: Iterable[np.ndarray], path: str | Path, fps: int = 30) -> int:
    """Stream uint8 frames ``[H, W, 3]`` to ``path``: ``.mp4`` (H.264, PyAV) or ``.gif`` (Pillow, looping).

    Returns the number of frames written. The file appears atomically once complete. H.264 needs even
    sizes, so an MP4 of odd size gets its last row / column repeated. An MP4 is encoded as the frames arrive;
    Pillow holds a GIF's frames until the end, so keep GIFs short.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_FORMATS:
        raise PolyinrError(f"unknown video format {path.suffix!r}; use one of {', '.join(VIDEO_FORMATS)}")
    if fps < 1:
        raise PolyinrError(f"fps must be at least 1, got {fps}")
    prepare_output(path)
    written = 0

    def counted() -> Iterator[np.ndarray]:
        nonlocal written
        for frame in frames:
            written += 1
            yield frame

    encode = _write_mp4 if suffix == ".mp4" else _write_gif
    atomic_write(path, lambda tmp: encode(counted(), tmp, fps))
    return written


def _write_mp4(frames: Iterator[np.ndarray], path: Path, fps: int) -> None:
    try:
        import av
    except ImportError:
        raise PolyinrError("writing MP4 needs PyAV (pip install av); or write a .gif") from None
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = None
        for frame in frames:
            H, W = frame.shape[:2]
            frame = np.pad(frame, ((0, H % 2), (0, W % 2), (0, 0)), mode="edge")  # H.264 4:2:0 needs even sizes
            if stream is None:
                stream = container.add_stream("libx264", rate=fps)
                stream.width, stream.height, stream.pix_fmt = frame.shape[1], frame.shape[0], "yuv420p"
                stream.options = {"crf": "17"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        if stream is None:
            raise PolyinrError("the video has no frames")
        for packet in stream.encode():
            container.mux(packet)


def _write_gif(frames: Iterator[np.ndarray], path: Path, fps: int) -> None:
    first = next(frames, None)
    if first is None:
        raise PolyinrError("the video has no frames")
    rest = (Image.fromarray(frame) for frame in frames)
    Image.fromarray(first).save(
        path, format="GIF", save_all=True, append_images=rest, duration=round(1000 / fps), loop=0
    )
