"""The generator contract: the one thing tools, metrics, the training loop and the viewer rely on.

Every generator maps ``z, c → ws [B, num_ws, w_dim]`` (:meth:`Generator.mapping`) and renders
``ws, grid → images [B, C, H, W]`` in ``[-1, 1]`` (:meth:`Generator.synthesize`). Models differ in which
:class:`~polyinr.grid.Grid` they can paint, so each declares it with a :class:`GridSupport`, checked in one
place (:meth:`Generator.check_grid`) with a one-line error naming the model and what it accepts:

- :data:`CONTINUOUS` (Poly-INR, INR-GAN): any window at any density; tiles reproduce the full render exactly;
- :data:`FRAME` (StyleGAN3, StyleGAN-XL): the native frame and its rigid motions (translations, rotations);
- :data:`FIXED_FRAME` (StyleGAN2): the native frame alone (its constant input cannot move);
- :data:`CANVAS` (InfinityGAN): any window on the model's own pixel lattice, any size, tiled on the lattice.

Optional capabilities (multiply-adds per pixel, per-level heat maps, style-mixing ranges, a canvas model's canvases,
style fusion and training patches) are methods whose base versions say clearly that a model lacks them, so no
caller branches on a model's name or reaches into a model's modules. The hooks only training calls (a learned
input grid, resolution stages) are :mod:`polyinr.models.training_hooks`'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from polyinr.errors import PolyinrError
from polyinr.grid import IDENTITY, Grid
from polyinr.models.mapping import LatentSizes, MappingConfig

LATTICE_TOLERANCE = 1e-9  # relative slack when matching a grid to a lattice or the native frame


class GridRefused(PolyinrError):
    """A generator was asked to paint a grid it cannot paint. ``renders`` says what it paints instead, the same
    words for every grid it refuses (``"stylegan3-t renders its native 16x16 frame, …"``), so that reports can
    give one reason per model; without it, the message."""

    def __init__(self, message: str, renders: str | None = None) -> None:
        super().__init__(message)
        self.renders = renders or message


class CapabilityMissing(PolyinrError):
    """A generator lacks an optional capability (heat maps, style mixing, …)."""


def describe_grid(grid: Grid) -> str:
    """``'64x64 grid over (0, 0)–(1, 1)'`` (+ its crop and affine map when present), for error messages."""
    h, w = grid.shape
    text = f"{h}x{w} grid over ({grid.top:g}, {grid.left:g})–({grid.bottom:g}, {grid.right:g})"
    if grid.rows is not None or grid.cols is not None:
        text += f", a crop of its {grid.height}x{grid.width} pixels"
    if grid.affine != IDENTITY:
        text += " with an affine map"
    return text


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= LATTICE_TOLERANCE * max(1.0, abs(a), abs(b))


def is_rigid(affine: tuple[float, ...]) -> bool:
    """True when the 2×3 map ``(a, b, t_row, c, d, t_col)`` is a rotation plus a translation."""
    a, b, _, c, d, _ = affine
    return _close(a, d) and _close(b, -c) and _close(a * a + b * b, 1.0)


def lattice_origin(grid: Grid, resolution: int) -> tuple[int, int]:
    """Integer lattice index ``(row, col)`` of ``grid``'s first pixel on the canvas lattice of spacing
    ``1 / (resolution − 1)``; raises :class:`GridRefused` when the grid is not on that lattice."""
    step = 1.0 / (resolution - 1)
    refusal = _lattice_refusal(grid, step)
    if refusal:
        raise GridRefused(refusal)
    _, _, t_row, _, _, t_col = grid.affine
    r0, c0 = grid.rows[0] if grid.rows else 0, grid.cols[0] if grid.cols else 0
    return round((grid.top + t_row) / step) + r0, round((grid.left + t_col) / step) + c0


def _lattice_refusal(grid: Grid, step: float) -> str | None:
    """Why ``grid`` is not a window of the lattice of spacing ``step`` (None when it is)."""
    a, b, t_row, c, d, t_col = grid.affine
    if (a, b, c, d) != (1.0, 0.0, 0.0, 1.0):
        return "only whole-pixel translations, not rotations or scalings"
    for name, start, spacing, size in (
        ("row", grid.top + t_row, grid.row_step, grid.height),
        ("column", grid.left + t_col, grid.col_step, grid.width),
    ):
        if size > 1 and not _close(spacing, step):
            return f"pixels {step:.6g} frame units apart; this grid's {name}s are {spacing:.6g} apart"
        if not _close(start / step, round(start / step)):
            return f"windows that start on a pixel of the lattice; this grid's first {name} is off it"
    return None


@dataclass(frozen=True)
class GridSupport:
    """Which grids a kind of generator can paint.

    ``kind`` is ``'continuous'``, ``'frame'`` or ``'canvas'``; :meth:`refusal` says why a grid is refused (None
    when accepted) and :meth:`describe` says in words what is accepted.
    """

    kind: str
    tiles: bool  # can a big grid be rendered tile by tile, reproducing the full render exactly?
    summary: str  # what is accepted, in a few words, without a model's sizes
    motions: bool = True  # a frame model: are the frame's rigid motions (translations, rotations) accepted too?

    def describe(self, G: Generator) -> str:
        R = G.img_resolution
        if self.kind == "continuous":
            return "any window of the plane at any density (tiles exact)"
        if self.kind == "frame" and not self.motions:
            return f"only its native {R}x{R} frame (no translation, rotation, other window, density or tile)"
        if self.kind == "frame":
            return f"its native {R}x{R} frame, translated or rotated (no other window, density or tile)"
        return f"any window of its pixel lattice (spacing 1/{R - 1} of the frame), any size (tiles exact)"

    def sized(self, G: Generator, height: int, width: int) -> Grid:
        """An image of ``height × width`` pixels of the generator's default view: the frame (0, 0)–(1, 1) at that
        size; a canvas model's pixel lattice from pixel (0, 0) (pixel ``i`` at ``i / (R − 1)``)."""
        if self.kind != "canvas":
            return Grid.window(0.0, 0.0, 1.0, 1.0, height, width)
        step = 1.0 / (G.img_resolution - 1)
        return Grid.window(0.0, 0.0, (height - 1) * step, (width - 1) * step, height, width)

    def refusal(self, G: Generator, grid: Grid) -> str | None:
        if self.kind == "continuous":
            return None
        R = G.img_resolution
        if self.kind == "frame":
            native = Grid.frame(R)
            same_frame = dataclasses.replace(grid, affine=IDENTITY) == native
            moved_as_allowed = grid.affine == IDENTITY or (self.motions and is_rigid(grid.affine))
            if not same_frame or not moved_as_allowed:
                return f"not a {describe_grid(grid)}"
            return None
        return _lattice_refusal(grid, 1.0 / (R - 1))


CONTINUOUS = GridSupport("continuous", tiles=True, summary="any window at any density")
FRAME = GridSupport("frame", tiles=False, summary="the native frame, translated or rotated")
FIXED_FRAME = GridSupport("frame", tiles=False, summary="the native frame only", motions=False)
CANVAS = GridSupport("canvas", tiles=True, summary="any window of its pixel lattice")


@dataclass(frozen=True)
class LevelMaps:
    """Per-level, per-pixel magnitudes of one render (RMS over channels).

    ``features [B, L, H, W]``: each level's output; ``coord [B, L, H, W]`` or None: the level's coordinate term
    where the model has one; ``image [B, C, H, W]``: the render they belong to, in ``[-1, 1]``.
    """

    features: torch.Tensor
    coord: torch.Tensor | None
    image: torch.Tensor


@dataclass(frozen=True)
class CanvasInputs:
    """The random inputs of a canvas model over a finite region of its lattice of latent cells.

    ``local [N, D, h, w]``: the local latent of each cell, the model's margins around the region included;
    ``coords [N, 3, h, w]``: their coordinates, or None for the model's own formula over the region; ``noises``:
    one ``[N, 1, H_k, W_k]`` per noise layer, covering the region; ``origin``: the region's first cell
    ``(row, column)`` on the lattice (its first pixel is that cell's).
    """

    local: torch.Tensor
    coords: torch.Tensor | None
    noises: Sequence[torch.Tensor]
    origin: tuple[int, int] = (0, 0)


class FusedStyles(Protocol):
    """Several styles placed on a canvas (from :meth:`Generator.style_fusion`), for :meth:`Generator.render_canvas`
    to blend; only the generator that made it reads it."""


@dataclass(frozen=True)
class TrainingFakes:
    """Fakes of a patch-trained model for its loss: ``images [B, C, R, R]``; ``positions [B]`` in ``[-1, 1]``, each
    patch's vertical position (what the discriminator learns to predict); ``structure [B, F]``, the structure
    features each image is painted from, and ``local [B, L]``, the local latents they come from (both flattened:
    the mode-seeking loss compares them)."""

    images: torch.Tensor
    positions: torch.Tensor
    structure: torch.Tensor
    local: torch.Tensor


class Generator(LatentSizes, nn.Module):
    """Base class of registered generators: holds ``cfg``, ``mapping`` and ``synthesis``.

    ``cfg`` is a frozen dataclass whose field ``mapping`` is the shared
    :class:`~polyinr.models.mapping.MappingConfig`.
    """

    model_name: ClassVar[str]  # set by @register
    grid_support: ClassVar[GridSupport] = CONTINUOUS
    mapping: nn.Module
    synthesis: nn.Module

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg

    # ------------------------------------------------------------------ sizes

    def mapping_config(self) -> MappingConfig:
        """The config's :class:`~polyinr.models.mapping.MappingConfig`: ``z_dim``, ``w_dim``, ``num_classes``."""
        return self.cfg.mapping

    @property
    def img_resolution(self) -> int:
        return self.cfg.img_resolution

    @property
    def num_ws(self) -> int:
        return self.mapping.num_ws

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.cfg)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ grids

    def native_grid(self) -> Grid:
        """The training frame at the native resolution."""
        return Grid.frame(self.img_resolution)

    def training_grid(self, resolution: int) -> Grid:
        """The grid a training stage at ``resolution`` renders (the frame at that density), if accepted."""
        return self.check_grid(Grid.frame(resolution))

    def describe_grids(self) -> str:
        """One line saying which grids this generator paints."""
        return self.grid_support.describe(self)

    def check_grid(self, grid: Grid | None) -> Grid:
        """``grid`` (None = the native frame) if this generator can paint it; :class:`GridRefused` otherwise."""
        if grid is None:
            return self.native_grid()
        refusal = self.grid_support.refusal(self, grid)
        if refusal is not None:
            renders = self._renders()
            raise GridRefused(f"{renders}: {refusal}", renders=renders)
        return grid

    def check_tiles(self, tile_height: int, tile_width: int) -> None:
        """Refuse a tiled render this generator cannot reproduce exactly, in one line."""
        if not self.grid_support.tiles:
            raise GridRefused(
                f"{self.model_name} cannot render in tiles: it renders {self.describe_grids()}", renders=self._renders()
            )

    def _renders(self) -> str:  # what a refusal says this generator paints instead
        return f"{self.model_name} renders {self.describe_grids()}"

    # ------------------------------------------------------------------ the two halves

    def synthesize(self, ws: torch.Tensor, grid: Grid | None = None, *, update_emas: bool = False) -> torch.Tensor:
        """``ws [B, num_ws, w_dim]`` on ``grid`` (default: the native frame) → images ``[B, C, H, W]``.

        ``update_emas``: training asks the synthesis to update its running averages (StyleGAN3's input
        magnitudes); models without any ignore it.
        """
        return self.synthesis(ws, self.check_grid(grid))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        grid: Grid | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """``z [B, z_dim]``, labels ``c`` (indices ``[B]`` or one-hot ``[B, C]``) → images ``[B, C, H, W]``;
        ``update_emas`` updates the mapping's running average of w."""
        ws = self.mapping(
            z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas
        )
        return self.synthesize(ws, grid)

    # ------------------------------------------------------------------ optional capabilities

    def macs_per_pixel(self) -> int | None:
        """Multiply-adds per output pixel of the synthesis at the native density, or None when unknown."""
        return None

    def level_heatmaps(self, ws: torch.Tensor, grid: Grid | None = None) -> LevelMaps:
        """What each level computes at every pixel of ``grid``; models without levels raise."""
        raise CapabilityMissing(f"{self.model_name} has no per-level heat maps")

    def style_mixing_range(self) -> range | None:
        """The ws indices style mixing may exchange between samples, or None when the model cannot mix."""
        return None

    def uniform_coordinates(self) -> Generator:
        """This generator painting every grid, its native frame included, on the grid's uniform coordinates.

        A model that keeps its own input coordinates for the native frame (an imported or learned grid) uses
        them there and uniform coordinates on every other grid; it returns a view of itself (same weights)
        without them, so that renders of the frame and of its transforms share one coordinate system (the
        equivariance metrics). Others return themselves.
        """
        return self

    def inr_parameters(self, ws: torch.Tensor) -> torch.Tensor:
        """Each sample's own INR parameters ``[B, D]`` (a hypernetwork's output), for walks in parameter space."""
        raise CapabilityMissing(f"{self.model_name} has no per-image INR parameters")

    def synthesize_inr(self, params: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        """Render INR parameters ``[B, D]`` from :meth:`inr_parameters` on ``grid`` → ``[B, C, H, W]``."""
        raise CapabilityMissing(f"{self.model_name} has no per-image INR parameters")

    # ------------------------------------------------------------------ canvas models (InfinityGAN)

    def ws_from_global(self, global_latent: torch.Tensor, inject_index: int | None = None) -> torch.Tensor:
        """``ws`` from global latents ``[B, 2, Dg]`` (or ``[B, Dg]``): styles ``[:inject_index]`` from the first,
        the rest from the second (None: the first everywhere); models without a global latent raise."""
        raise CapabilityMissing(f"{self.model_name} has no global latent to map")

    def canvas_from_seeds(self, seeds: Sequence[int], grid: Grid, device: torch.device | str = "cpu") -> CanvasInputs:
        """The inputs of one canvas per seed over the region that ``grid`` (a window of the lattice) needs."""
        raise CapabilityMissing(f"{self.model_name} has no canvas of random inputs")

    def canvas_from_global(self, global_latent: torch.Tensor, grid: Grid) -> CanvasInputs:
        """The inputs under ``grid`` of the canvases :meth:`synthesize` paints for ws whose global latents
        (``ws[:, 0]``) are ``global_latent [N, Dg]``."""
        raise CapabilityMissing(f"{self.model_name} has no canvas of random inputs")

    def canvas_pixel_shape(self, canvas: CanvasInputs) -> tuple[int, int]:
        """``(H, W)`` pixels of the whole ``canvas`` (inputs from the origin); a one-line error when the inputs
        do not fit this model."""
        raise CapabilityMissing(f"{self.model_name} has no canvas of random inputs")

    def style_fusion(self, ws: torch.Tensor, centers: Sequence[tuple[float, float]], blur: int = 255) -> FusedStyles:
        """Styles ``ws [S, num_ws, w_dim]`` placed at ``centers`` (lattice pixels ``(row, col)``), blended by
        proximity over ``blur`` pixels when :meth:`render_canvas` paints them."""
        raise CapabilityMissing(f"{self.model_name} has no canvas to fuse styles on")

    def render_canvas(
        self,
        ws: torch.Tensor,
        grid: Grid | None = None,
        canvas: CanvasInputs | None = None,
        fusion: FusedStyles | None = None,
    ) -> torch.Tensor:
        """The window ``grid`` (default: the native patch) of ``canvas`` (default: the canvas :meth:`synthesize`
        paints for ``ws``) → ``[B, C, H, W]``; ``fusion`` (one sample) paints its styles instead of ``ws``'s,
        which then key only the default canvas."""
        raise CapabilityMissing(f"{self.model_name} has no canvas to render")

    def training_fakes(self, ws: torch.Tensor, paired: bool = False) -> TrainingFakes:
        """Fakes for ``ws [B, num_ws, w_dim]`` at random training positions, with what a patch loss needs;
        ``paired``: samples ``2i`` and ``2i + 1`` share their position (their other random inputs differ)."""
        raise CapabilityMissing(f"{self.model_name} renders no training patches with positions")

    # ------------------------------------------------------------------ files

    def save(self, path: str | Path, extra: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
        """Write the checkpoint directory ``path`` (``config.json`` + ``model.safetensors``), atomically; an
        existing checkpoint there is replaced only when ``overwrite``, anything else there is never touched."""
        from polyinr.models.saving import save_generator

        return save_generator(self, path, extra=extra, overwrite=overwrite)
