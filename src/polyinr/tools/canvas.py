"""Canvas latent files: every random input of an InfinityGAN canvas, so a canvas is reproducible and shareable.

A canvas latent file is a safetensors file holding

- ``global_latent`` ``[1, 2, Dg]`` float32: slot 0 styles every layer (and modulates the structure
  synthesizer); slot 1 styles the texture layers from ``inject_index`` on, when that is present;
- ``inject_index`` (optional) an int64 scalar;
- ``local_latent`` ``[1, Dl, h, w]`` float32: the whole canvas of latent cells, the structure synthesizer's
  margins included (``h = texture cells + 2·margin``);
- ``coords`` (optional) ``[1, 3, h, w]`` float32; default: the authors' coordinate formula over that canvas;
- ``noise.0`` … ``noise.K`` ``[1, 1, H_k, W_k]`` float32: one per texture layer, covering the whole canvas.

The whole canvas renders to ``16·(h − 24) − 75`` × ``16·(w − 24) − 75`` pixels for the paper's layer sizes
(35×35 cells give one 101×101 patch; 53×59 give 389×485), the pixels the authors' patch-by-patch inference gives
for the same inputs. Metadata names the model (``model``) and the sizes it was made for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from polyinr.atomic import atomic_save_tensors
from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.models.generator import CanvasInputs, Generator
from polyinr.sampling import latents_from_seeds, read_latent_file

GLOBAL_KEY, INJECT_KEY, LOCAL_KEY, COORDS_KEY, NOISE_PREFIX = (
    "global_latent",
    "inject_index",
    "local_latent",
    "coords",
    "noise.",
)


class CanvasFileError(PolyinrError):
    """A canvas latent file is missing, malformed, or made for another generator."""


@dataclass(frozen=True)
class CanvasLatents:
    """The inputs of one canvas (shapes as in the module docstring)."""

    global_latent: torch.Tensor
    local_latent: torch.Tensor
    noises: list[torch.Tensor]
    coords: torch.Tensor | None = None
    inject_index: int | None = None

    def ws(self, G: Generator) -> torch.Tensor:
        """``ws [1, num_ws, w_dim]``: the global latents mapped, mixed at ``inject_index``."""
        return G.ws_from_global(self.global_latent, self.inject_index)

    def canvas(self) -> CanvasInputs:
        """The inputs as the generator's canvas capabilities take them (the canvas from cell (0, 0))."""
        return CanvasInputs(self.local_latent, self.coords, self.noises)

    def pixel_shape(self, G: Generator) -> tuple[int, int]:
        """``(H, W)`` pixels of the whole canvas; a one-line error when the inputs do not fit ``G``."""
        return G.canvas_pixel_shape(self.canvas())


def is_canvas_file(path: str | Path) -> bool:
    """True when ``path`` is a safetensors file holding a canvas (it has a ``global_latent``)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return GLOBAL_KEY in f.keys()  # noqa: SIM118 (safe_open is not a mapping)
    except (SafetensorError, OSError, ValueError):
        return False


def save_canvas_latents(path: str | Path, latents: CanvasLatents, G: Generator) -> Path:
    """Write ``latents`` of generator ``G`` to ``path`` (safetensors, atomically)."""
    latents.pixel_shape(G)  # checks the shapes
    tensors = {GLOBAL_KEY: latents.global_latent, LOCAL_KEY: latents.local_latent}
    if latents.coords is not None:
        tensors[COORDS_KEY] = latents.coords
    if latents.inject_index is not None:
        tensors[INJECT_KEY] = torch.tensor(int(latents.inject_index), dtype=torch.int64)
    tensors.update({f"{NOISE_PREFIX}{k}": n for k, n in enumerate(latents.noises)})
    tensors = {k: v if v.dtype == torch.int64 else v.float() for k, v in tensors.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_save_tensors(path, tensors, {"model": G.model_name, "kind": "canvas"})


def load_canvas_latents(path: str | Path, G: Generator, device: torch.device | str = "cpu") -> CanvasLatents:
    """Read a canvas latent file and check it against ``G``; every problem is a one-line error."""
    path = Path(path)
    tensors, metadata = read_latent_file(path, CanvasFileError, "a safetensors latent file")
    if metadata.get("model", G.model_name) != G.model_name:
        raise CanvasFileError(f"{path} was made for {metadata['model']}, not {G.model_name}")
    for key in (GLOBAL_KEY, LOCAL_KEY):
        if key not in tensors:
            raise CanvasFileError(f"{path} is not a canvas latent file: it holds no {key!r}")
    cfg = G.cfg
    g, local = tensors[GLOBAL_KEY], tensors[LOCAL_KEY]
    Dg, Dl = G.z_dim, cfg.local_latent_dim
    if g.ndim != 3 or g.shape[0] != 1 or g.shape[1] not in (1, 2) or g.shape[2] != Dg:
        raise CanvasFileError(f"{path}: global_latent is {tuple(g.shape)}, expected [1, 2, {Dg}]")
    if local.ndim != 4 or local.shape[:2] != (1, Dl):
        raise CanvasFileError(f"{path}: local_latent is {tuple(local.shape)}, expected [1, {Dl}, h, w]")
    noise_keys = sorted((k for k in tensors if k.startswith(NOISE_PREFIX)), key=lambda k: k[len(NOISE_PREFIX) :])
    expected = [f"{NOISE_PREFIX}{k}" for k in range(2 * cfg.num_blocks)]
    if sorted(noise_keys) != sorted(expected):
        raise CanvasFileError(
            f"{path} must hold noise maps {expected[0]} … {expected[-1]}, found {noise_keys or 'none'}"
        )
    inject = tensors.get(INJECT_KEY)
    if inject is not None and (inject.numel() != 1 or inject.dtype.is_floating_point):
        raise CanvasFileError(f"{path}: inject_index must be an integer scalar")
    latents = CanvasLatents(
        global_latent=g.to(device, torch.float32),
        local_latent=local.to(device, torch.float32),
        noises=[tensors[k].to(device, torch.float32) for k in expected],
        coords=tensors[COORDS_KEY].to(device, torch.float32) if COORDS_KEY in tensors else None,
        inject_index=None if inject is None else int(inject),
    )
    try:
        latents.pixel_shape(G)
    except PolyinrError as e:
        raise CanvasFileError(f"{path}: {e}") from None
    return latents


def draw_canvas_latents(G: Generator, seed: int, grid: Grid, device: torch.device | str = "cpu") -> CanvasLatents:
    """Every input of the canvas under ``grid`` (a window of the pixel lattice) as ``--seed`` renders it: the
    global latent from the seed (StyleGAN's seed → z), local latents, coordinates and noise from the seed's
    canvas. The file's canvas starts at the first latent cell the window needs."""
    z = latents_from_seeds([seed], G.z_dim).to(device)  # [1, Dg]
    region = G.canvas_from_global(z, grid)
    return CanvasLatents(z.unsqueeze(1).repeat(1, 2, 1), region.local, list(region.noises), region.coords)


def canvas_grid(G: Generator, latents: CanvasLatents, window: tuple[int, int, int, int] | None = None) -> Grid:
    """The lattice grid of pixels ``(top, left, height, width)`` of the file's canvas (None: all of it)."""
    H, W = latents.pixel_shape(G)
    top, left, h, w = window or (0, 0, H, W)
    if h <= 0 or w <= 0:
        raise PolyinrError(f"window size must be positive, got {h}x{w}")
    R = G.img_resolution
    return Grid.window(top / (R - 1), left / (R - 1), (top + h - 1) / (R - 1), (left + w - 1) / (R - 1), h, w)


@torch.no_grad()
def render_canvas_file(G: Generator, latents: CanvasLatents, grid: Grid | None = None) -> np.ndarray:
    """The canvas (or the window ``grid`` of it) as uint8 ``[H, W, 3]``."""
    from polyinr.image_io import to_uint8

    grid = canvas_grid(G, latents) if grid is None else grid
    return to_uint8(G.render_canvas(latents.ws(G), grid, latents.canvas()))[0]
