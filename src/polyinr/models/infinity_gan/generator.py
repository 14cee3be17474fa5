"""The registered InfinityGAN generator: mapping + patch renderer, and the canvas capabilities of the contract."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.models.generator import (
    CANVAS,
    CanvasInputs,
    FusedStyles,
    Generator,
    GridRefused,
    TrainingFakes,
    lattice_origin,
)
from polyinr.models.infinity_gan.canvas import SeededCanvas, TensorCanvas, training_canvas, window_cells
from polyinr.models.infinity_gan.config import InfinityGANConfig
from polyinr.models.infinity_gan.network import InfinityGANMapping
from polyinr.models.infinity_gan.patches import InfinityGANSynthesis, StyleFusion
from polyinr.models.registry import register
from polyinr.models.training_hooks import TrainableGenerator

PRESETS = {
    # The paper's InfinityGAN (Flickr-Landscape): 101² patches from 35² latent cells, 512 channels throughout.
    "paper": {},
    # Small enough to train for minutes on 2 CPU cores: 37² patches from 9² texture cells (21² latent cells).
    "cpu": dict(
        mapping=dict(z_dim=64, w_dim=64, num_layers=8, lr_multiplier=0.01),
        local_latent_dim=16,
        structure_layers=2,
        ts_input_size=9,
        ts_channels=(64, 64, 32),
    ),
}


@register("infinitygan", InfinityGANConfig, presets=PRESETS)
class InfinityGANGenerator(TrainableGenerator, Generator):
    """InfinityGAN: the texture mapping on the global latent, G_S and the padding-free G_T over a canvas."""

    grid_support = CANVAS

    def __init__(self, cfg: InfinityGANConfig) -> None:
        super().__init__(cfg)
        if cfg.mapping.z_dim != cfg.mapping.w_dim:
            raise PolyinrError("InfinityGAN's mapping keeps the global latent's size: z_dim must equal w_dim")
        self.mapping = InfinityGANMapping(cfg)
        self.synthesis = InfinityGANSynthesis(cfg)

    @classmethod
    def stage_settings(cls, resolutions: list[int], stage: int) -> dict[str, Any]:
        """None: a patch's size follows from the preset's layers, whatever the images' resolution."""
        return {}

    @classmethod
    def smallest_images(cls, cfg: InfinityGANConfig) -> int:
        """Its patch's side: patches are cut from the images, which may not be smaller."""
        return cfg.img_resolution

    def training_grid(self, resolution: int) -> Grid:
        """The native patch, whatever the resolution of the images it is trained on (patches are cut from
        them); images smaller than a patch are refused."""
        R = self.img_resolution
        if resolution < self.smallest_images(self.cfg):
            raise GridRefused(
                f"infinitygan trains {R}x{R} patches cut from the images; {resolution}x{resolution} "
                f"images are smaller than a patch: train at {R} or more"
            )
        return self.native_grid()

    def style_mixing_range(self) -> range:
        """Cut-offs in ``ws`` from which a second latent's styles take over: the authors' inject index 1 … 8."""
        return range(2, 1 + self.cfg.num_styles)

    def macs_per_pixel(self) -> int:
        """Multiply-adds of G_S and G_T per new output pixel of an infinite canvas (the patches' overlap and
        the per-sample modulation excluded)."""
        cfg = self.cfg
        D, k = cfg.local_latent_dim, cfg.structure_kernel
        per_cell = cfg.structure_layers * (D + 3) * D * k * k
        total = per_cell / cfg.cell_pixels**2
        in_ch = D
        for j, out_ch in enumerate(cfg.ts_channels):
            density = (2 ** (j + 1) / cfg.cell_pixels) ** 2  # elements of this block per output pixel
            total += density * (in_ch * out_ch * 9 + out_ch * out_ch * 9 + out_ch * cfg.img_channels)
            in_ch = out_ch
        return int(total)

    def ws_from_global(self, global_latent: torch.Tensor, inject_index: int | None = None) -> torch.Tensor:
        """The authors' inputs → ``ws``: ``global_latent [B, 2, Dg]`` (or ``[B, Dg]``); texture styles
        ``[:inject_index]`` from slot 0, the rest from slot 1 (None: slot 0 everywhere)."""
        g = global_latent if global_latent.ndim == 3 else global_latent.unsqueeze(1)
        ws = self.mapping(g[:, 0])
        if inject_index is not None and inject_index < self.cfg.num_styles:
            if g.shape[1] < 2:
                raise PolyinrError("style mixing (an inject index) needs two global latents")
            if inject_index < 0:
                raise PolyinrError(f"inject index must be 0..{self.cfg.num_styles}, got {inject_index}")
            second = self.mapping(g[:, 1])
            ws = torch.cat([ws[:, : 1 + inject_index], second[:, 1 + inject_index :]], dim=1)
        return ws

    # ------------------------------------------------------------------ canvases

    def _region(self, canvas: SeededCanvas, grid: Grid) -> CanvasInputs:
        """The inputs of ``canvas`` over the texture-input cells whose output covers ``grid``, G_S's margins
        included."""
        cfg = self.cfg
        (top, left), (H, W) = lattice_origin(grid, cfg.img_resolution), grid.shape
        (r0, nr), (c0, nc) = window_cells(cfg, top, top + H), window_cells(cfg, left, left + W)
        region = canvas.region((r0, r0 + nr), (c0, c0 + nc))
        return CanvasInputs(region.local, region.coords_tensor, region.noises, region.origin)

    def _tensor_canvas(self, canvas: CanvasInputs) -> TensorCanvas:
        return TensorCanvas(self.cfg, canvas.local, canvas.coords, canvas.noises, origin=canvas.origin)

    def canvas_from_seeds(self, seeds: Sequence[int], grid: Grid, device: torch.device | str = "cpu") -> CanvasInputs:
        """The region under ``grid`` of the seeds' :class:`SeededCanvas` (keyed by the seed, not a latent)."""
        return self._region(SeededCanvas.from_seeds(self.cfg, seeds, device), grid)

    def canvas_from_global(self, global_latent: torch.Tensor, grid: Grid) -> CanvasInputs:
        return self._region(SeededCanvas.from_global(self.cfg, global_latent), grid)

    def canvas_pixel_shape(self, canvas: CanvasInputs) -> tuple[int, int]:
        """``16·(h − 2·margin) − 75`` pixels per side for ``h`` latent cells (the paper's layer sizes)."""
        return self._tensor_canvas(canvas).pixel_shape

    def style_fusion(self, ws: torch.Tensor, centers: Sequence[tuple[float, float]], blur: int = 255) -> StyleFusion:
        return StyleFusion(ws, centers, blur)

    def render_canvas(
        self,
        ws: torch.Tensor,
        grid: Grid | None = None,
        canvas: CanvasInputs | None = None,
        fusion: FusedStyles | None = None,
    ) -> torch.Tensor:
        """``fusion``: a :class:`StyleFusion` from :meth:`style_fusion`."""
        tensors = None if canvas is None else self._tensor_canvas(canvas)
        return self.synthesis(ws, self.check_grid(grid), canvas=tensors, fusion=fusion)

    def training_fakes(self, ws: torch.Tensor, paired: bool = False) -> TrainingFakes:
        """Native patches of fresh training canvases (:func:`training_canvas`: the authors' positions, local
        latents and noise), with their vertical positions, structure features and local latents."""
        B = len(ws)
        canvas, positions = training_canvas(self.cfg, B, paired=paired)
        canvas = canvas.to(ws.device)
        images, structure = self.synthesis.training_patch(ws, canvas)
        return TrainingFakes(images, positions.to(images.device), structure.reshape(B, -1), canvas.local.view(B, -1))
