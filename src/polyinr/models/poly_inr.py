"""Poly-INR: polynomial implicit neural representations (Singh, Shukla, Turaga; CVPR 2023).

An image is a function of continuous pixel coordinates. Level ``i`` multiplies the features element-wise by
an affine function of the coordinates whose parameters come from ``w_i``, so the network is a polynomial of
the coordinates whose degree grows with depth (paper, Eq. 4)::

    G = … σ(W₂((A₂X) ⊙ σ(W₁((A₁X) ⊙ σ(W₀(A₀X))))))

This module computes what the authors' released code computes (``training/networks_gmgan.py``), which
differs from the equation in three ways that are kept here because they are what trained:

- the 2-D grid is itself re-transformed at every level by a 2×2 matrix and a shift from ``w_i``, chained
  from the previous level's transformed grid;
- the coordinate term goes through a LeakyReLU before the product (except at level 0, which has no product);
- every level's activations are clamped to ±256.

Every pixel is computed independently from its coordinates and its sample's ``ws``: there is no convolution,
upsampling or noise, so the synthesis renders on any :class:`~polyinr.grid.Grid`, in chunks of pixels.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.models.generator import CONTINUOUS, Generator, LevelMaps
from polyinr.models.layers import LRELU_SLOPE, EqualizedLinear
from polyinr.models.mapping import MappingConfig, MappingNetwork
from polyinr.models.registry import register
from polyinr.models.training_hooks import TrainableGenerator


@dataclass(frozen=True)
class PolyINRConfig:
    mapping: MappingConfig = field(default_factory=lambda: MappingConfig(lr_multiplier=0.1))  # the authors' 0.1
    channels: int = 1024  # n: width of every level
    num_levels: int = 10  # levels, one w each
    activation_clamp: float = 256.0  # clamp of every level's activations
    img_resolution: int = 32  # native (training) resolution: the default grid
    img_channels: int = 3  # output channels
    stored_grid: bool = False  # True = keep an input grid for the native frame (imported checkpoints)
    learn_grid: bool = False  # True = that input grid is a parameter training learns (the authors' gridt)
    init: str = "balanced"  # initialisation only (the maths is the same): 'balanced' or 'authors', see PolyLevel


PIXEL_ALIGN = 32  # pixel chunks are padded to a multiple of this, so every matmul takes the same BLAS path


def pixel_budget(device: torch.device) -> int:
    """Floats of ``[B, P, n]`` activations per pixel chunk on ``device``.

    4 MiB of fp32 on CPU: a chunk's element-wise passes then run in cache while its matmuls keep enough rows
    (B·P = 1024 at n = 1024) to stay near the BLAS peak; 64 MiB on accelerators.
    """
    return 1 << 20 if device.type == "cpu" else 1 << 24


def affine_2d(points: torch.Tensor, matrix: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``points [B, P, 2] @ matrix [B, 2, k] + shift [B, 1, k]`` → ``[B, P, k]``, element-wise.

    Written as two fused multiply-adds rather than a batched matmul so each pixel's result is the same
    whatever the number of pixels evaluated with it (small batched matmuls take other BLAS paths).
    """
    out = torch.addcmul(shift, points[..., :1], matrix[:, :1])
    return out.addcmul_(points[..., 1:], matrix[:, 1:])


def fused_level(
    grid: torch.Tensor,
    x: torch.Tensor | None,
    params: tuple[torch.Tensor, ...],
    weight: torch.Tensor,
    bias: torch.Tensor,
    clamp: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One level as a single function for :func:`torch.compile` to fuse: ``grid [B, P, 2]`` (float32), ``x [B, P,
    n]`` (bf16; None at level 0), the level's per-sample ``params`` (see :meth:`PolyLevel.sample_params`) and
    ``W_i`` → the level's grid ``[B, P, 2]`` (float32) and features ``[B, P, n]`` (bf16).

    The same maths as :class:`PolyLevel`: the coordinate affine, lrelu and product in float32 (the GEMM's
    prologue), the GEMM in bf16 with float32 accumulation, bias, lrelu and clamp in float32 (its epilogue); the
    features are stored in bf16 between levels.
    """
    matrix, shift, coord_weight, coord_bias = params
    grid = affine_2d(grid, matrix, shift)  # chained from the previous level's grid
    coord = affine_2d(grid, coord_weight, coord_bias)  # [B, P, n] = A_i X
    h = coord if x is None else x.float() * F.leaky_relu(coord, LRELU_SLOPE)
    out = F.linear(h.to(torch.bfloat16), weight.to(torch.bfloat16)).float() + bias  # fp32 accumulation in the GEMM
    return grid, F.leaky_relu(out, LRELU_SLOPE).clamp(-clamp, clamp).to(torch.bfloat16)


_compiled_level: Callable | None = None


def fused_supported(device: torch.device) -> bool:
    """Whether the fused level runs on ``device``: a CUDA GPU with bf16 matmuls (compute capability ≥ 8.0) and
    Triton for :func:`torch.compile`'s kernels. Elsewhere the synthesis takes the float32 path."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    if torch.cuda.get_device_capability(device) < (8, 0):
        return False
    return importlib.util.find_spec("triton") is not None


def compiled_level() -> Callable:
    """:func:`fused_level` compiled once per process (forward and backward)."""
    global _compiled_level
    if _compiled_level is None:
        _compiled_level = torch.compile(fused_level, fullgraph=True, dynamic=False)
    return _compiled_level


class PolyLevel(nn.Module):
    """One level: transform the grid, form the coordinate term ``A_i X``, multiply, mix with ``W_i``.

    Level 0 reads ``w_0`` directly and has no incoming features; levels ≥ 1 first map ``w_i`` to a style
    ``s ∈ R^n`` with an equalised-lr lrelu layer (authors' ``fc0_5``).
    """

    def __init__(self, w_dim: int, channels: int, first: bool, clamp: float, init: str) -> None:
        super().__init__()
        self.style = None if first else EqualizedLinear(w_dim, channels, activation="lrelu")
        style_dim = w_dim if first else channels
        self.grid_matrix = nn.Linear(style_dim, 4)  # 2×2 transform of the grid
        self.grid_shift = nn.Linear(style_dim, 2)  # shift of the grid
        self.coord_weight = nn.Linear(style_dim, 2 * channels)  # P: coordinates → n
        self.coord_bias = nn.Linear(style_dim, channels)  # q
        self.linear = nn.Linear(channels, channels)  # W_i, shared by all samples
        self.channels = channels
        self.clamp = clamp
        if init == "balanced":
            self._balanced_init(style_dim)
        elif init != "authors":
            raise PolyinrError(f"Poly-INR init must be 'balanced' or 'authors', got {init!r}")

    @torch.no_grad()
    def _balanced_init(self, style_dim: int) -> None:
        """Keep every level at unit scale from the start (the 'authors' init is PyTorch's Linear default,
        which shrinks the chained grid and the features by about 5× a level, so a new model paints a flat
        image): the grid transform starts at the identity (StyleGAN3's input affine does the same), the
        coordinate term ``A_i X`` at about ``1 + 0.5·P·(x, y)`` (the product then preserves the features' scale, like
        StyleGAN's modulation bias of 1), and ``W_i`` with He's init for the LeakyReLU."""
        for layer, bias in ((self.grid_matrix, (1.0, 0.0, 0.0, 1.0)), (self.grid_shift, (0.0, 0.0))):
            layer.weight.zero_()
            layer.bias.copy_(torch.tensor(bias))
        for layer, std, bias in ((self.coord_weight, 0.5, 0.0), (self.coord_bias, 0.25, 1.0)):
            nn.init.normal_(layer.weight, std=std * style_dim**-0.5)
            layer.bias.fill_(bias)
        nn.init.kaiming_normal_(self.linear.weight, a=LRELU_SLOPE, nonlinearity="leaky_relu")
        self.linear.bias.zero_()

    def sample_params(self, w: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-sample parameters from ``w [B, w_dim]``: grid matrix ``[B, 2, 2]``, shift ``[B, 1, 2]``, P
        ``[B, 2, n]``, q ``[B, 1, n]``."""
        s = w if self.style is None else self.style(w)  # [B, style_dim]
        B, n = s.shape[0], self.channels
        return (
            self.grid_matrix(s).view(B, 2, 2),
            self.grid_shift(s).view(B, 1, 2),
            self.coord_weight(s).view(B, 2, n),
            self.coord_bias(s).view(B, 1, n),
        )

    def coordinates(self, grid: torch.Tensor, params: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """The level's grid ``[B, P, 2]``, chained from the previous level's ``grid``, and its coordinate term
        ``A_i X [B, P, n]``, from the level's ``params`` (:meth:`sample_params`)."""
        matrix, shift, coord_weight, coord_bias = params
        grid = affine_2d(grid, matrix, shift)
        return grid, affine_2d(grid, coord_weight, coord_bias)

    def step(
        self, grid: torch.Tensor, x: torch.Tensor | None, params: tuple[torch.Tensor, ...], inplace: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole level: the previous level's ``grid [B, P, 2]`` and features ``x`` → the level's grid and
        features ``[B, P, n]`` (:meth:`coordinates`, then :meth:`forward`)."""
        grid, coord = self.coordinates(grid, params)
        return grid, self(x, coord, inplace)

    def forward(self, x: torch.Tensor | None, coord: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """``x [B, P, n]`` (None at level 0), coordinate term ``A_i X [B, P, n]`` → ``[B, P, n]``.

        ``inplace`` (inference only: nothing may need these tensors for autograd) overwrites ``coord`` and
        works in place on the output: the same operations in the same order, so the same bits, with fewer
        passes over memory. ``coord`` is then the product's buffer, so it must hold the promoted dtype (under
        autocast ``x`` is bf16 and ``coord`` float32).
        """
        if x is None:
            h = coord
        elif inplace and coord.dtype == torch.promote_types(coord.dtype, x.dtype):
            h = F.leaky_relu_(coord, LRELU_SLOPE).mul_(x)
        else:
            h = x * F.leaky_relu(coord, LRELU_SLOPE)
        out = self.linear(h)
        if inplace:
            return F.leaky_relu_(out, LRELU_SLOPE).clamp_(-self.clamp, self.clamp)
        return F.leaky_relu(out, LRELU_SLOPE).clamp(-self.clamp, self.clamp)


# One level's run: (level, previous grid [B, P, 2], previous features [B, P, n] or None, its params) → its grid
# and features, as PolyLevel.step computes them.
LevelStep = Callable[
    [PolyLevel, torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, ...]], tuple[torch.Tensor, torch.Tensor]
]


def uniform_input_grid(resolution: int) -> torch.Tensor:
    """The native frame's uniform coordinates ``[R·R, 2]`` (row, col), float32: the authors' grid,
    ``meshgrid(arange(R) / (R − 1))`` in 'ij' order, flattened row-major."""
    return Grid.frame(resolution).coords().view(-1, 2)


class PolyINRSynthesis(nn.Module):
    """``ws [B, num_levels, w_dim]``, grid → images ``[B, img_channels, H, W]``, in chunks of pixels."""

    def __init__(self, cfg: PolyINRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.levels = nn.ModuleList(
            PolyLevel(cfg.mapping.w_dim, cfg.channels, first=i == 0, clamp=cfg.activation_clamp, init=cfg.init)
            for i in range(cfg.num_levels)
        )
        self.to_rgb = nn.Linear(cfg.channels, cfg.img_channels)  # the authors' 1×1 convolution
        if cfg.learn_grid:  # learned with the other weights from the uniform grid, as the authors' gridt
            self.input_grid = nn.Parameter(uniform_input_grid(cfg.img_resolution))
        elif cfg.stored_grid:
            self.register_buffer("input_grid", uniform_input_grid(cfg.img_resolution))  # replaced by the importer
        else:
            self.input_grid = None

    def grid_points(self, grid: Grid, device: torch.device) -> torch.Tensor:
        """Coordinates ``[P, 2]`` (row, col) of the grid's pixels, row-major, float32."""
        if self.input_grid is not None and grid.is_frame(self.cfg.img_resolution):
            return self.input_grid.to(device=device, dtype=torch.float32)
        return grid.coords(device=device).view(-1, 2)

    def level_params(self, ws: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """Every level's per-sample parameters (:meth:`PolyLevel.sample_params`) from ``ws [B, num_levels, w_dim]``."""
        L = ws.shape[1]
        if len(self.levels) != L:
            raise PolyinrError(f"Poly-INR synthesis takes {len(self.levels)} ws per sample, got {L}")
        return [level.sample_params(ws[:, i]) for i, level in enumerate(self.levels)]

    def forward(
        self, ws: torch.Tensor, grid: Grid | None = None, pixel_chunk: int | None = None, fused: bool = False
    ) -> torch.Tensor:
        """Render ``ws [B, num_levels, w_dim]`` on ``grid`` (default: the native frame) → ``[B, C, H, W]``.

        Pixels are evaluated ``pixel_chunk`` at a time (default: as many as fit :func:`pixel_budget`); every
        pixel's value is the same whatever the chunking, the grid size or the tile it belongs to. ``fused``
        asks for the compiled bf16 level (:func:`fused_level`; within 1e-2 relative of float32) where
        :func:`fused_supported` says it runs, and is ignored elsewhere.
        """
        cfg = self.cfg
        B = ws.shape[0]
        params = self.level_params(ws)
        grid = Grid.frame(cfg.img_resolution) if grid is None else grid
        H, W = grid.shape
        points = self.grid_points(grid, ws.device)  # [P, 2]
        chunk = pixel_chunk or max(1, pixel_budget(ws.device) // (B * cfg.channels))
        chunk = -(-chunk // PIXEL_ALIGN) * PIXEL_ALIGN
        tracked = ws.requires_grad or any(p.requires_grad for p in self.parameters())
        inplace = not (torch.is_grad_enabled() and tracked)  # no autograd graph is built: work in place
        if fused and fused_supported(ws.device):
            render = self._render_fused
        else:
            render = functools.partial(self._render_points, inplace=inplace)
        rgb = torch.cat(
            [render(params, points[i : i + chunk]) for i in range(0, len(points), chunk)], dim=1
        )  # [B, P, C]
        return rgb.transpose(1, 2).reshape(B, cfg.img_channels, H, W)

    def run_levels(self, params: list[tuple[torch.Tensor, ...]], points: torch.Tensor, step: LevelStep) -> torch.Tensor:
        """Every level on ``points [P, 2]`` → the last level's features ``[B, P, n]``.

        ``step(level, grid, x, level_params)`` runs one level (:meth:`PolyLevel.step`, or the fused one) on the
        previous level's grid and features. The points are padded to a multiple of :data:`PIXEL_ALIGN` for the
        levels and the padding cut from the result.
        """
        P = len(points)
        padded = F.pad(points, (0, 0, 0, -P % PIXEL_ALIGN))  # [P', 2], P' a multiple of PIXEL_ALIGN
        grid = padded.unsqueeze(0).expand(params[0][0].shape[0], -1, -1)  # [B, P', 2]
        x = None
        for level, level_params in zip(self.levels, params):
            grid, x = step(level, grid, x, level_params)  # [B, P', 2], [B, P', n]
        return x[:, :P]

    def _render_points(
        self, params: list[tuple[torch.Tensor, ...]], points: torch.Tensor, inplace: bool
    ) -> torch.Tensor:
        """Per-level parameters, ``points [P, 2]`` → RGB ``[B, P, C]``."""
        return self.to_rgb(self.run_levels(params, points, functools.partial(PolyLevel.step, inplace=inplace)))

    def _render_fused(
        self, params: list[tuple[torch.Tensor, ...]], points: torch.Tensor, level: Callable | None = None
    ) -> torch.Tensor:
        """As :meth:`_render_points` through :func:`fused_level` (compiled unless ``level`` is given)."""
        fused = level or compiled_level()

        def step(
            layer: PolyLevel, grid: torch.Tensor, x: torch.Tensor | None, level_params: tuple[torch.Tensor, ...]
        ) -> tuple[torch.Tensor, torch.Tensor]:
            return fused(grid.contiguous(), x, level_params, layer.linear.weight, layer.linear.bias, layer.clamp)

        return self.to_rgb(self.run_levels(params, points, step).float())  # [B, P, C]


PRESETS = {
    # The authors' ImageNet network (n 1024, 10 levels, z 64, w 512, 1000 classes), trained from 32².
    "imagenet": dict(
        channels=1024,
        num_levels=10,
        img_resolution=32,
        init="authors",
        mapping=dict(z_dim=64, w_dim=512, num_classes=1000, embed_dim=320),
    ),
    # The paper's FFHQ width (n 512), unconditional.
    "ffhq": dict(
        channels=512,
        num_levels=10,
        img_resolution=256,
        init="authors",
        mapping=dict(z_dim=64, w_dim=512, num_classes=0),
    ),
    # Small enough to train for minutes on 2 CPU cores. The mapping learns at the full learning rate: at 0.1 the
    # classes took three times longer to appear (benchmarks/RESULTS.md, the demo section).
    "cpu": dict(
        channels=64, num_levels=6, img_resolution=16, mapping=dict(z_dim=32, w_dim=128, embed_dim=32, lr_multiplier=1.0)
    ),
}


@register("poly-inr", PolyINRConfig, presets=PRESETS)
class PolyINRGenerator(TrainableGenerator, Generator):
    """Poly-INR: the shared mapping network and the polynomial synthesis (continuous: any window, any density)."""

    grid_support = CONTINUOUS

    def __init__(self, cfg: PolyINRConfig) -> None:
        super().__init__(cfg)
        self.mapping = MappingNetwork(cfg.mapping, num_ws=cfg.num_levels)
        self.synthesis = PolyINRSynthesis(cfg)

    def macs_per_pixel(self) -> int:
        """Multiply-adds per output pixel of the synthesis (the per-sample affine layers excluded)."""
        n, L = self.cfg.channels, self.cfg.num_levels
        per_level = n * n + 2 * n + 4 + n  # W_i, the coordinate term, the grid transform, the product
        return L * per_level + n * self.cfg.img_channels

    def synthesize_fused(self, ws: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        """As :meth:`synthesize`, through the compiled bf16 level (:func:`fused_level`; within 1e-2 relative of
        float32) where :func:`fused_supported` says it runs; elsewhere the float32 path, bit for bit."""
        return self.synthesis(ws, self.check_grid(grid), fused=True)

    def style_mixing_range(self) -> range:
        """Every level's ``w`` can come from another sample."""
        return range(self.cfg.num_levels)

    def describe_grids(self) -> str:
        """Any window at any density; with an input grid (stored or learned), which frame renders on it."""
        if self.synthesis.input_grid is None:
            return super().describe_grids()
        R, kind = self.img_resolution, "learned" if self.cfg.learn_grid else "stored"
        return (
            f"any window of the plane at any density; its whole native {R}x{R} frame on its {kind} input grid, "
            f"every other grid (tiles included) on uniform coordinates"
        )

    def uniform_coordinates(self) -> PolyINRGenerator:
        """Without an input grid (stored or learned): itself; with one, a view (same weights) rendering the
        native frame on its uniform coordinates too."""
        if self.synthesis.input_grid is None:
            return self
        synthesis = copy.copy(self.synthesis)
        holder = "_parameters" if self.cfg.learn_grid else "_buffers"  # where the module keeps the grid
        setattr(synthesis, holder, {**getattr(synthesis, holder), "input_grid": None})
        view = copy.copy(self)
        view._modules = {**view._modules, "synthesis": synthesis}
        return view

    @classmethod
    def learned_grid_settings(cls) -> dict[str, Any]:
        """The native frame's input coordinates as a parameter, starting from the uniform grid (the authors'
        ``gridt``, which their loop trains with G's other weights and keeps in G_ema)."""
        return {"learn_grid": True}

    def next_stage(self, resolution: int) -> PolyINRGenerator | None:
        """With a learned grid: this network (a copy) whose native frame is ``resolution``, its grid restarting
        from the uniform one there, as the authors' next run builds a new grid at its resolution (not an
        interpolation of the last). Otherwise None: the same network carries on, on a denser grid."""
        if not self.cfg.learn_grid:
            return None
        old = self.synthesis.input_grid
        staged = copy.deepcopy(self)
        staged.cfg = staged.synthesis.cfg = replace(self.cfg, img_resolution=resolution)
        grid = uniform_input_grid(resolution).to(old.device)  # [R·R, 2]
        staged.synthesis.input_grid = nn.Parameter(grid, requires_grad=old.requires_grad)
        return staged

    @torch.no_grad()
    def level_heatmaps(self, ws: torch.Tensor, grid: Grid | None = None, pixel_chunk: int = 4096) -> LevelMaps:
        """What each level computes at every pixel of ``grid``, for ``ws [B, L, w_dim]``.

        Runs the synthesis with its own pieces (``grid_points``, ``level_params``, ``run_levels`` with each
        level's :meth:`~PolyLevel.coordinates` and forward, ``to_rgb``), ``pixel_chunk`` pixels at a time, so
        ``image`` equals ``synthesize(ws, grid)``; ``coord`` is the RMS of the coordinate term ``A_i X``,
        ``features`` of the level's output.
        """
        synthesis = self.synthesis
        B, L, _ = ws.shape
        params = synthesis.level_params(ws)
        grid = self.check_grid(grid)
        H, W = grid.shape
        points = synthesis.grid_points(grid, ws.device)  # [P, 2]
        coords, feats = [], []  # the chunk's, level by level: RMS [B, p'] of A_i X and of the level's output

        def measured_step(
            level: PolyLevel, grid: torch.Tensor, x: torch.Tensor | None, level_params: tuple[torch.Tensor, ...]
        ) -> tuple[torch.Tensor, torch.Tensor]:
            grid, coord = level.coordinates(grid, level_params)
            coords.append(coord.square().mean(dim=-1).sqrt())
            x = level(x, coord)  # [B, p', n], not in place: coord stays the coordinate term
            feats.append(x.square().mean(dim=-1).sqrt())
            return grid, x

        coord_rms, feature_rms, rgb = [], [], []
        for start in range(0, len(points), pixel_chunk):
            pts = points[start : start + pixel_chunk]  # [p, 2]
            coords.clear()
            feats.clear()
            rgb.append(synthesis.to_rgb(synthesis.run_levels(params, pts, measured_step)))  # [B, p, C]
            coord_rms.append(torch.stack(coords, dim=1)[..., : len(pts)])  # [B, L, p]
            feature_rms.append(torch.stack(feats, dim=1)[..., : len(pts)])  # [B, L, p]
        image = torch.cat(rgb, dim=1).transpose(1, 2).reshape(B, -1, H, W)  # [B, C, H, W]
        return LevelMaps(
            features=torch.cat(feature_rms, dim=2).view(B, L, H, W),
            coord=torch.cat(coord_rms, dim=2).view(B, L, H, W),
            image=image,
        )
