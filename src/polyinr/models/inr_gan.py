"""INR-GAN: adversarial generation of continuous images (Skorokhodov, Ignatyev, Elhoseiny; CVPR 2021).

A hypernetwork (the mapping network plus one affine layer per INR layer) gives every image its own
coordinate MLP, made affordable by two ideas:

- **Factorized multiplicative modulation (FMM).** An INR layer has a shared weight ``W_s`` [out, in]; its
  affine maps ``w`` to two factors ``A`` [out, r] and ``B`` [r, in] (rank r = 10) and the image's weight is
  ``W = W_s ⊙ (1 + A·B/√r)`` with every output row L2-normalised (the released code, ``fmm='demod'``), or
  ``W = (W_s/√in) ⊙ 2·sigmoid(A·B)`` (the paper-era code, ``fmm='sigmoid'``). Bias shared, LeakyReLU 0.2 × √2.
- **Multi-scale INR.** The MLP is cut into blocks (StyleGAN2's, nominal resolutions 4 … R); blocks up to
  ``input_resolution`` run on that coarse grid, later ones on 2× denser grids, joined by nearest (or, in the
  ``-bil`` variant, bilinear with ``align_corners=True`` plus an "instance norm" that divides by the spatial
  std) ×2 upsampling of the features. Each block's first layer also reads that block's coordinate
  embeddings; each block adds an RGB image (modulated 1×1, no demodulation), upsampled the same way
  (StyleGAN2's "skip" output, no tanh).

Coordinate embeddings are the released code's (``training/layers.py``): a block on an ``n``-grid embeds
``x = −1 + 2j/n`` (column j, left = −1) and ``y = −1 + 2(n − 1 − i)/n`` (row i, flipped) through a fixed
logarithmic basis (``2^k·π/2`` along y then x, k < ⌈log2 n⌉, plus the two diagonals at ``2^k·2π/(4√2)`` on
grids below ``medium_resolution``) and, on grids from ``medium_resolution`` up, a fixed random basis
(``randn·√10``); channels are ``[features, sin(all), cos(all), const]``. ``const`` is the released code's
learned per-pixel tensor (CIPS-style), off unless a checkpoint brings one.

**Any grid (the rule).** A :class:`~polyinr.grid.Grid` of the output has a lattice of pixels with spacing
``Δ`` (frame units) starting at its window's top-left; a crop (tile) keeps its parent's lattice. Block ``b``
(on an ``n_b``-grid at the native frame) runs on the lattice of spacing ``κ_b·Δ`` from the same origin,
``κ_b = R/n_b`` (nearest) or ``(R − 1)/(n_b − 1)`` (bilinear), so its density follows the output's:

- nearest ×2: fine lattice index ``k`` takes coarse index ``⌊k/2⌋``;
- bilinear ×2: fine index ``k`` reads coarse index ``k·(n_c − 1)/(n_f − 1)`` (exact rationals), linearly;
- block ``b``'s lattice point at plane position ``(v, u)`` (after the grid's affine map) has native lattice
  index ``a = (v, u)·(R − 1)/κ_b`` and embeds ``x = −1 + 2a_u/n_b``, ``y = −1 + 2(n_b − 1 − a_v)/n_b``;
  ``const`` is sampled bilinearly at ``a``, its border repeated beyond the frame.

At the native frame ``Grid.frame(R)`` this is exactly the released computation. Every block is evaluated
only on the lattice points that the requested pixels need, from absolute lattice indices, so a tile of any
size reproduces the full render's pixels; a denser grid is super-resolution, a window
beyond ``[0, 1]`` extrapolates, a sparser grid renders fewer coordinates at every block (fast low-resolution
inference). The instance norm's std is a whole-image statistic: off the native frame it is taken from the
native frame's render of the same sample (so tiles and zooms agree with it).

A 2×-density render (``Grid.window(0, 0, 1, 1, 2R − 1, 2R − 1)``, nearest variant) equals the native render at
its pixels ``(2i, 2j)`` whenever ``i`` and ``j`` are multiples of the coarsest stride ``R/input_resolution``:
there every block's lattice point coincides with the native one (elsewhere the coarse blocks are evaluated at
new points: that is what a denser INR means).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from polyinr.errors import PolyinrError
from polyinr.grid import IDENTITY, Grid
from polyinr.models.generator import CONTINUOUS, Generator
from polyinr.models.layers import LRELU_GAIN, LRELU_SLOPE, EqualizedLinear
from polyinr.models.mapping import MappingConfig, MappingNetwork
from polyinr.models.registry import register
from polyinr.models.training_hooks import TrainableGenerator

UPSAMPLING = ("nearest", "bilinear")
FMM_MODES = ("demod", "sigmoid")


def _stylegan2_mapping() -> MappingConfig:
    return MappingConfig(z_dim=512, w_dim=512, num_layers=2, lr_multiplier=0.01, w_avg_beta=0.995)


@dataclass(frozen=True)
class InrGanConfig:
    mapping: MappingConfig = field(default_factory=_stylegan2_mapping)  # StyleGAN2-ADA's, 2 layers
    img_resolution: int = 256  # native (training) resolution, a power of 2
    img_channels: int = 3  # output channels
    input_resolution: int = 32  # grid of the coarsest block: blocks of nominal resolution ≤ this run on it
    channel_base: int = 32768  # channels of the block at nominal resolution res: min(base // res, max)
    channel_max: int = 512
    extra_layers_from: int = 128  # blocks on grids ≥ this have one more FMM layer; 0 = none
    upsampling: str = "nearest"  # 'nearest' or 'bilinear' (the -bil variant) ×2 between blocks
    instance_norm: bool = False  # divide by the spatial std before every layer but a block's first (-bil)
    fmm: str = "demod"  # 'demod': W_s ⊙ (1 + AB/√r), rows normalised; 'sigmoid': (W_s/√in) ⊙ 2σ(AB)
    fmm_rank: int = 10  # r
    medium_resolution: int = 128  # grids ≥ this: log basis without diagonals + random basis
    random_emb_size: int = 32  # frequencies of the random basis (grids ≥ medium_resolution)
    fourier_scale: float = math.sqrt(10)  # std of the random basis at initialisation
    const_emb_low: int = 0  # learned per-pixel constants on grids < medium_resolution; 0 = none
    const_emb_medium: int = 0  # the same on grids ≥ medium_resolution
    conv_clamp: float | None = None  # clamp of every layer's output; None = off (the released fp32 G)

    def __post_init__(self) -> None:
        R, n0 = self.img_resolution, self.input_resolution
        if R < 4 or R & (R - 1) or n0 < 4 or n0 & (n0 - 1) or n0 > R:
            raise PolyinrError(f"INR-GAN needs power-of-2 resolutions with 4 ≤ input ≤ image, got {n0} and {R}")
        if self.upsampling not in UPSAMPLING:
            raise PolyinrError(f"INR-GAN upsampling must be one of {', '.join(UPSAMPLING)}, got {self.upsampling!r}")
        if self.fmm not in FMM_MODES:
            raise PolyinrError(f"INR-GAN fmm must be one of {', '.join(FMM_MODES)}, got {self.fmm!r}")


# ---------------------------------------------------------------------------- coordinate embeddings


def logarithmic_basis(resolution: int, diagonal: bool) -> torch.Tensor:
    """The released fixed basis ``[F, 2]`` acting on ``(x, y)``: ⌈log2 n⌉ octaves along y, x (and diagonals)."""
    octaves = math.ceil(math.log2(resolution))
    powers = 2.0 ** torch.arange(octaves, dtype=torch.float64)[:, None]  # [K, 1]
    s = 1 / math.sqrt(2)
    directions = [((0.0, 1.0), 4.0), ((1.0, 0.0), 4.0)]
    if diagonal:
        directions += [((-s, s), 4.0 * math.sqrt(2)), ((s, s), 4.0 * math.sqrt(2))]
    bases = [torch.tensor([d], dtype=torch.float64) * powers * (2 * math.pi / period) for d, period in directions]
    return torch.cat(bases).float()


class CoordEmbedding(nn.Module):
    """A block's embeddings ``[sin(basis·(x, y)), cos(…), const]`` at lattice points of its ``n``-grid."""

    def __init__(self, resolution: int, medium: bool, random_size: int, scale: float, const_size: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.register_buffer("log_basis", logarithmic_basis(resolution, diagonal=not medium))  # [L, 2]
        self.register_buffer("random_basis", torch.randn(random_size, 2) * scale if medium else None)  # [Rn, 2]
        self.const = nn.Parameter(torch.randn(1, const_size, resolution, resolution)) if const_size else None
        num_freqs = len(self.log_basis) + (random_size if medium else 0)
        self.channels = 2 * num_freqs + const_size

    def forward(self, index: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``index [h, w, 2]`` float64: native lattice index (row, col) of each point → ``[h, w, channels]``."""
        n = self.resolution
        x = -1 + 2 * index[..., 1] / n
        y = -1 + 2 * (n - 1 - index[..., 0]) / n
        basis = self.log_basis if self.random_basis is None else torch.cat([self.log_basis, self.random_basis])
        basis = basis.double()
        raw = x[..., None] * basis[:, 0] + y[..., None] * basis[:, 1]  # [h, w, F], the same bits in any tile
        parts = [raw.sin().to(dtype), raw.cos().to(dtype)]
        if self.const is not None:
            parts.append(_sample_const(self.const[0], index).to(dtype))
        return torch.cat(parts, dim=-1)


def _sample_const(const: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Bilinear sample of ``const [C, n, n]`` at lattice index ``[h, w, 2]`` (border repeated) → ``[h, w, C]``."""
    n = const.shape[-1]
    snapped = torch.where((index - index.round()).abs() < 1e-6, index.round(), index).clamp(0, n - 1)
    lo = snapped.floor().long()
    hi = (lo + 1).clamp(max=n - 1)
    frac = (snapped - lo).to(const.dtype)  # [h, w, 2]
    table = const.permute(1, 2, 0)  # [n, n, C]

    def at(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return table[r, c]  # [h, w, C]

    fr, fc = frac[..., :1], frac[..., 1:]
    top = at(lo[..., 0], lo[..., 1]) * (1 - fc) + at(lo[..., 0], hi[..., 1]) * fc
    bottom = at(hi[..., 0], lo[..., 1]) * (1 - fc) + at(hi[..., 0], hi[..., 1]) * fc
    return top * (1 - fr) + bottom * fr


# ---------------------------------------------------------------------------- layers

PIXEL_ALIGN = 32  # pixel counts are padded to a multiple of this, so every matmul takes the same BLAS path


def _pointwise(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-sample 1×1 layer: ``x [B, h, w, in]``, ``weight [B, out, in]`` → ``[B, h, w, out]``."""
    B, h, w, C = x.shape
    flat = x.reshape(B, h * w, C)
    pad = -(h * w) % PIXEL_ALIGN
    if pad:
        flat = F.pad(flat, (0, 0, 0, pad))
    out = torch.bmm(flat, weight.transpose(1, 2))[:, : h * w]  # [B, h·w, out]
    return out.reshape(B, h, w, -1)


class FMMLayer(nn.Module):
    """An INR linear layer with factorized multiplicative modulation (released ``SynthesisLayer`` with fmm)."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, rank: int, mode: str, clamp: float | None
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.rank, self.mode, self.clamp = (
            in_channels,
            out_channels,
            rank,
            mode,
            clamp,
        )
        self.affine = EqualizedLinear(w_dim, (in_channels + out_channels) * rank)  # → A and B, bias 0
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels))  # W_s
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def factors(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``w [B, w_dim]`` → ``A [B, out, r]``, ``B [B, r, in]``."""
        styles = self.affine(w)
        n, r = len(w), self.rank
        split = self.out_channels * r
        return styles[:, :split].view(n, self.out_channels, r), styles[:, split:].view(n, r, self.in_channels)

    def sample_weight(self, w: torch.Tensor) -> torch.Tensor:
        """The image's weight ``[B, out, in]`` from ``w [B, w_dim]``."""
        left, right = self.factors(w)
        product = left @ right  # [B, out, in]
        if self.mode == "demod":
            weight = self.weight.unsqueeze(0) * (product / math.sqrt(self.rank) + 1.0)
            return weight / (weight.norm(dim=2, keepdim=True) + 1e-8)
        return (self.weight / math.sqrt(self.in_channels)).unsqueeze(0) * (2 * torch.sigmoid(product))

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``x [B, h, w, in]``, the image's ``weight [B, out, in]`` → ``[B, h, w, out]``."""
        x = F.leaky_relu(_pointwise(x, weight) + self.bias, LRELU_SLOPE) * LRELU_GAIN
        return x if self.clamp is None else x.clamp(-self.clamp, self.clamp)


class ToRGB(nn.Module):
    """StyleGAN2's ``ToRGBLayer``: modulated 1×1, styles × 1/√in, no demodulation, + bias."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, clamp: float | None) -> None:
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)
        self.clamp = clamp

    def sample_weight(self, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain  # [B, in]
        return self.weight.unsqueeze(0) * styles.unsqueeze(1)  # [B, out, in]

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        x = _pointwise(x, weight) + self.bias
        return x if self.clamp is None else x.clamp(-self.clamp, self.clamp)


def instance_std(x: torch.Tensor) -> torch.Tensor:
    """The released "instance norm" statistic: unbiased std over the pixels of ``[B, h, w, C]`` → ``[B, C]``."""
    return x.std(dim=(1, 2)) + 1e-8


# ---------------------------------------------------------------------------- lattices


@dataclass(frozen=True)
class Span:
    """Absolute lattice indices ``[start, stop)`` of one axis of a block."""

    start: int
    stop: int


def _coarse_span(fine: Span, n_coarse: int, n_fine: int, mode: str) -> Span:
    """The coarse lattice indices that upsampling onto ``fine`` reads."""
    if n_coarse == n_fine:
        return fine
    if mode == "nearest":
        q = n_fine // n_coarse
        return Span(fine.start // q, (fine.stop - 1) // q + 1)
    num, den = n_coarse - 1, n_fine - 1
    last = (fine.stop - 1) * num
    return Span(fine.start * num // den, last // den + (1 if last % den else 0) + 1)


def _upsample_axis(
    x: torch.Tensor, dim: int, coarse: Span, fine: Span, n_coarse: int, n_fine: int, mode: str
) -> torch.Tensor:
    """Resample axis ``dim`` of ``x`` from the coarse lattice span to the fine one."""
    if n_coarse == n_fine:
        return x
    k = torch.arange(fine.start, fine.stop)
    if mode == "nearest":
        return x.index_select(dim, (k // (n_fine // n_coarse) - coarse.start).to(x.device))
    num, den = n_coarse - 1, n_fine - 1
    lo = k * num // den
    frac = [float(Fraction(int(v) * num % den, den)) for v in k]
    hi = lo + (torch.tensor(frac) > 0).long()
    shape = [1] * x.ndim
    shape[dim] = len(k)
    weight = torch.tensor(frac, dtype=x.dtype, device=x.device).view(shape)
    x0 = x.index_select(dim, (lo - coarse.start).to(x.device))
    x1 = x.index_select(dim, (hi - coarse.start).to(x.device))
    return x0 * (1 - weight) + x1 * weight


def _upsample(
    x: torch.Tensor, coarse: tuple[Span, Span], fine: tuple[Span, Span], n_coarse: int, n_fine: int, mode: str
) -> torch.Tensor:
    """``x [B, h, w, C]`` on the coarse spans → ``[B, h', w', C]`` on the fine spans."""
    x = _upsample_axis(x, 1, coarse[0], fine[0], n_coarse, n_fine, mode)
    return _upsample_axis(x, 2, coarse[1], fine[1], n_coarse, n_fine, mode)


def _lattice_points(grid: Grid, rows: Span, cols: Span, kappa: float) -> torch.Tensor:
    """Plane positions ``[h, w, 2]`` (row, col) float64 of lattice points at spacing ``kappa`` × the grid's."""
    r = grid.top + torch.arange(rows.start, rows.stop, dtype=torch.float64) * (kappa * grid.row_step)
    c = grid.left + torch.arange(cols.start, cols.stop, dtype=torch.float64) * (kappa * grid.col_step)
    points = torch.stack(torch.meshgrid(r, c, indexing="ij"), dim=-1)  # [h, w, 2]
    if grid.affine != IDENTITY:
        a, b, t_row, c_, d, t_col = grid.affine
        matrix = torch.tensor([[a, b], [c_, d]], dtype=torch.float64)
        points = points @ matrix.T + torch.tensor([t_row, t_col], dtype=torch.float64)
    return points


# ---------------------------------------------------------------------------- blocks and the synthesis


class SynthesisBlock(nn.Module):
    """One block: [upsample] → [concat embeddings] → FMM layers → ToRGB (added to the running image)."""

    def __init__(self, cfg: InrGanConfig, nominal: int, in_channels: int, out_channels: int) -> None:
        """``nominal``: the StyleGAN2 block resolution (its name, ``b{nominal}``)."""
        super().__init__()
        self.resolution = max(nominal, cfg.input_resolution)  # the grid it runs on at the native frame
        w_dim, clamp = cfg.mapping.w_dim, cfg.conv_clamp
        if nominal == 4 or self.resolution > cfg.input_resolution:
            medium = self.resolution >= cfg.medium_resolution
            const = cfg.const_emb_medium if medium else cfg.const_emb_low
            self.embedding = CoordEmbedding(self.resolution, medium, cfg.random_emb_size, cfg.fourier_scale, const)
            first_in = in_channels + self.embedding.channels
        else:
            self.embedding = None
            first_in = in_channels
        count = 1 if nominal == 4 else 2
        if cfg.extra_layers_from and self.resolution >= cfg.extra_layers_from:
            count += 1
        self.layers = nn.ModuleList(
            FMMLayer(first_in if i == 0 else out_channels, out_channels, w_dim, cfg.fmm_rank, cfg.fmm, clamp)
            for i in range(count)
        )
        self.torgb = ToRGB(out_channels, cfg.img_channels, w_dim, clamp)
        self.instance_norm = cfg.instance_norm

    @property
    def num_layers(self) -> int:
        return len(self.layers)


class InrGanSynthesis(nn.Module):
    """``ws [B, num_ws, w_dim]``, grid → images ``[B, img_channels, H, W]`` (see the module docstring)."""

    def __init__(self, cfg: InrGanConfig) -> None:
        super().__init__()
        self.cfg = cfg
        R = cfg.img_resolution
        nominal = [2**i for i in range(2, int(math.log2(R)) + 1)]
        channels = {res: min(cfg.channel_base // res, cfg.channel_max) for res in nominal}
        self.blocks = nn.ModuleDict(
            {
                f"b{res}": SynthesisBlock(cfg, res, channels[res // 2] if res > 4 else 0, channels[res])
                for res in nominal
            }
        )
        self.num_ws = sum(b.num_layers for b in self.blocks.values()) + 1
        mode = cfg.upsampling
        self.kappa = [
            R / b.resolution if mode == "nearest" else (R - 1) / (b.resolution - 1) for b in self.blocks.values()
        ]

    # -- per-sample parameters

    def sample_weights(self, ws: torch.Tensor) -> list[torch.Tensor]:
        """Every INR layer's weight for each sample, in order (FMM layers then ToRGB, block by block).

        Block i's layers use ``ws[:, w_i + j]`` and its ToRGB ``ws[:, w_i + num_layers]`` (StyleGAN2's indexing:
        a block's ToRGB shares the next block's first w).
        """
        if ws.ndim != 3 or ws.shape[1] != self.num_ws:
            raise PolyinrError(f"INR-GAN synthesis takes ws [B, {self.num_ws}, w_dim], got {tuple(ws.shape)}")
        weights, index = [], 0
        for block in self.blocks.values():
            weights += [layer.sample_weight(ws[:, index + j]) for j, layer in enumerate(block.layers)]
            weights.append(block.torgb.sample_weight(ws[:, index + block.num_layers]))
            index += block.num_layers
        return weights

    def weight_shapes(self) -> list[tuple[int, int]]:
        """``(out, in)`` of each per-sample weight :meth:`sample_weights` returns, in its order."""
        shapes = []
        for block in self.blocks.values():
            shapes += [(layer.out_channels, layer.in_channels) for layer in block.layers]
            shapes.append(tuple(block.torgb.weight.shape))
        return shapes

    def forward(self, ws: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        """Render ``ws [B, num_ws, w_dim]`` on ``grid`` (default: the native frame) → ``[B, C, H, W]``."""
        return self.render(self.sample_weights(ws), grid)

    def render(self, weights: list[torch.Tensor], grid: Grid | None = None) -> torch.Tensor:
        """Render per-sample INR weights (:meth:`sample_weights`) on ``grid`` → ``[B, C, H, W]``."""
        native = Grid.frame(self.cfg.img_resolution)
        grid = native if grid is None else grid
        stds = None
        if self.cfg.instance_norm and grid != native:
            stds = self._run(weights, native, None)[1]
        return self._run(weights, grid, stds)[0]

    def spans(self, grid: Grid) -> list[tuple[Span, Span]]:
        """Each block's lattice spans (rows, cols) that the grid's pixels need, coarsest block first."""
        r0, r1 = grid.rows or (0, grid.height)
        c0, c1 = grid.cols or (0, grid.width)
        spans = [(Span(r0, r1), Span(c0, c1))]
        blocks = list(self.blocks.values())
        for coarse, fine in zip(reversed(blocks[:-1]), reversed(blocks[1:])):
            rows, cols = spans[0]
            args = (coarse.resolution, fine.resolution, self.cfg.upsampling)
            spans.insert(0, (_coarse_span(rows, *args), _coarse_span(cols, *args)))
        return spans

    def _run(
        self, weights: list[torch.Tensor], grid: Grid, stds: list[torch.Tensor] | None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The image ``[B, C, H, W]`` and the instance-norm stds it used (computed here when ``stds`` is None)."""
        cfg, R, mode = self.cfg, self.cfg.img_resolution, self.cfg.upsampling
        device, B = weights[0].device, weights[0].shape[0]
        spans = self.spans(grid)
        used: list[torch.Tensor] = []
        x = img = prev = None
        it = iter(weights)
        for block, kappa, span in zip(self.blocks.values(), self.kappa, spans):
            if prev is not None:  # features and image from the previous block's lattice onto this one's
                x = _upsample(x, prev[1], span, prev[0].resolution, block.resolution, mode)
                img = _upsample(img, prev[1], span, prev[0].resolution, block.resolution, mode)
            if block.embedding is not None:
                index = _lattice_points(grid, *span, kappa) * ((R - 1) / kappa)  # [h, w, 2] native lattice index
                emb = block.embedding(index.to(device), weights[0].dtype)  # [h, w, E]
                emb = emb.unsqueeze(0).expand(B, -1, -1, -1)
                x = emb if x is None else torch.cat([x, emb], dim=-1)
            for i, layer in enumerate(block.layers):
                if block.instance_norm and i > 0:
                    std = instance_std(x) if stds is None else stds[len(used)]
                    used.append(std)
                    x = x / std[:, None, None, :]
                x = layer(x, next(it))
            y = block.torgb(x, next(it))
            img = y if img is None else img + y
            prev = (block, span)
        H, W = grid.shape
        return img.permute(0, 3, 1, 2).reshape(B, cfg.img_channels, H, W), used

    def macs_per_image(self) -> int:
        """Multiply-adds of one native render (FMM layers and ToRGB; the per-sample affines excluded)."""
        total = 0
        for block in self.blocks.values():
            per_pixel = sum(layer.in_channels * layer.out_channels for layer in block.layers)
            per_pixel += block.torgb.weight.numel()
            total += per_pixel * block.resolution**2
        return total


PRESETS = {
    # The released 256² layout (configs/inr-gan.yml): 512/512/256/128 channels, blocks ≤ 32 on a 32² grid,
    # one extra layer at 128 and 256, nearest ×2, demodulated FMM of rank 10, no learned per-pixel constants.
    "paper-256": dict(
        img_resolution=256, input_resolution=32, channel_base=32768, channel_max=512, extra_layers_from=128
    ),
    # The same with bilinear ×2 and the instance norm (configs/inr-gan-bil.yml).
    "paper-256-bil": dict(
        img_resolution=256,
        input_resolution=32,
        channel_base=32768,
        channel_max=512,
        extra_layers_from=128,
        upsampling="bilinear",
        instance_norm=True,
    ),
    # Minutes on two CPU cores at 32²: blocks on 8², 16², 32² grids, 64/64/32 channels.
    "cpu": dict(
        img_resolution=32,
        input_resolution=8,
        channel_base=1024,
        channel_max=64,
        extra_layers_from=0,
        medium_resolution=32,
        random_emb_size=16,
        mapping=dict(z_dim=64, w_dim=128),
    ),
}


@register("inr-gan", InrGanConfig, presets=PRESETS)
class InrGanGenerator(TrainableGenerator, Generator):
    """INR-GAN: StyleGAN2's mapping network and the multi-scale FMM INR, on any grid."""

    grid_support = CONTINUOUS

    def __init__(self, cfg: InrGanConfig) -> None:
        super().__init__(cfg)
        self.synthesis = InrGanSynthesis(cfg)
        self.mapping = MappingNetwork(cfg.mapping, self.synthesis.num_ws)

    def macs_per_pixel(self) -> int:
        """Multiply-adds per output pixel of a native render (most of them run on coarser grids)."""
        return round(self.synthesis.macs_per_image() / self.cfg.img_resolution**2)

    def inr_parameters(self, ws: torch.Tensor) -> torch.Tensor:
        """Each sample's INR parameters, flattened: every layer's modulated weight → ``[B, D]``."""
        return torch.cat([w.flatten(1) for w in self.synthesis.sample_weights(ws)], dim=1)

    def synthesize_inr(self, params: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        """Render flattened INR parameters ``[B, D]`` (:meth:`inr_parameters`) on ``grid`` → ``[B, C, H, W]``."""
        shapes = self.synthesis.weight_shapes()
        sizes = [math.prod(s) for s in shapes]
        if params.ndim != 2 or params.shape[1] != sum(sizes):
            raise PolyinrError(f"INR parameters must be [B, {sum(sizes)}], got {tuple(params.shape)}")
        parts = params.split(sizes, dim=1)
        weights = [p.reshape(len(params), *s) for p, s in zip(parts, shapes)]
        return self.synthesis.render(weights, self.check_grid(grid))
