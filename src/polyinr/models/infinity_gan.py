"""InfinityGAN: infinite-pixel synthesis from seamless patches (Lin, Lee, Cheng, Tulyakov, Yang; ICLR 2022).

An image is described by a *global* latent ``z_g`` (overall appearance), a grid of *local* latents ``z_l`` (one
``local_latent_dim`` vector per latent cell: what is where) and coordinates (where the patch sits). This module
computes what the authors' released code computes (``models/infinitygan_generator.py``, ``models/ops.py``):

- **structure synthesizer** ``G_S``: ``structure_layers`` modulated + demodulated ``k×k`` convolutions *without
  padding* (the code's "feature unfolding"), modulated by the raw ``z_g`` (not the mapping output), each taking
  ``[features, coordinates]``; coordinates ``(tanh(v), cos(πh), sin(πh))`` saturate vertically and are periodic
  horizontally. ``35×35`` latent cells become ``11×11`` structure features for the paper's sizes.
- **texture synthesizer** ``G_T``: StyleGAN2 made padding-free. Per block an up-sampling layer (stride-2
  transposed 3×3, crop ``[1:-1]``, unpadded ``[1,2,1]`` blur) and a valid 3×3 layer; noise ``x + s·n`` before
  the bias and lrelu; skip ToRGB after each block, the running image up-sampled by the same cropped transposed
  blur and centre-cropped. ``11 → 19 → 17 → 31 → 29 → 55 → 53 → 103 → 101`` for the paper's preset. Its
  mapping is 8 equalised-lr layers on ``z_g`` (pixel norm first, lr multiplier 0.01), no truncation.

Every layer is a valid convolution, so each output pixel is a fixed function of a fixed window of local
latents, coordinates and noise: patches cut from one canvas of those inputs agree exactly where they overlap.
The synthesis therefore renders any window of the model's pixel lattice (a *canvas* model in the generator
contract): the window is cut into patches (``patch_cells`` latent cells of texture input each, the authors'
101-pixel patches at a 96-pixel stride by default), the patches go through the network a batch at a time, and
the memory of a render is that of a batch of patches whatever the window's size.

``ws [B, 1 + num_styles, w_dim]``: ``ws[:, 0]`` is the raw global latent (it modulates ``G_S`` and keys the
sample's canvas of local latents and noise), ``ws[:, 1:]`` the mapped styles of the texture layers (conv ``i``
takes style ``i``; the ToRGB after block ``j`` takes style ``2j + 3``, the last one style ``2·blocks``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.models.generator import CANVAS, Generator, GridRefused, lattice_origin
from polyinr.models.layers import LRELU_GAIN, LRELU_SLOPE, EqualizedLinear
from polyinr.models.mapping import MappingConfig, MappingNetwork
from polyinr.models.registry import register
from polyinr.models.training_hooks import TrainableGenerator


def _paper_mapping() -> MappingConfig:
    return MappingConfig(z_dim=512, w_dim=512, num_layers=8, lr_multiplier=0.01)


@dataclass(frozen=True)
class InfinityGANConfig:
    mapping: MappingConfig = field(default_factory=_paper_mapping)  # z_dim = w_dim = global latent size
    local_latent_dim: int = 256  # channels of a local latent cell (and of G_S's features)
    structure_layers: int = 4  # valid convolutions of G_S
    structure_kernel: int = 7  # their kernel (2·unfold radius + 1)
    ts_input_size: int = 11  # latent cells across G_T's input for a training patch
    ts_channels: tuple[int, ...] = (512, 512, 512, 512)  # output channels of each G_T block (up + valid conv)
    img_channels: int = 3  # output channels
    coord_vert_sample_size: int = 10  # vertical start positions sampled in training (the paper's V)
    coord_vert_cut: float = 3.0  # vertical coordinate range before tanh
    coord_hori_occupy_ratio: float = 0.25  # fraction of the horizontal period one training patch covers

    def __post_init__(self) -> None:
        object.__setattr__(self, "ts_channels", tuple(self.ts_channels))  # JSON gives lists

    @property
    def num_blocks(self) -> int:
        return len(self.ts_channels)

    @property
    def margin(self) -> int:
        """Latent cells G_S consumes on each side (the authors' ``ss_unfold_size``)."""
        return self.structure_layers * (self.structure_kernel // 2)

    @property
    def cell_pixels(self) -> int:
        """Output pixels per latent cell (16 for four blocks)."""
        return 2**self.num_blocks

    @property
    def img_resolution(self) -> int:
        """Side of a training patch in pixels (101 for the paper's preset)."""
        return texture_sizes(self.ts_input_size, self.num_blocks)[-1]

    @property
    def num_styles(self) -> int:
        """Styles of G_T: one per conv and one for the last ToRGB (9 for four blocks)."""
        return 2 * self.num_blocks + 1

    @property
    def hori_period(self) -> int:
        """Horizontal coordinate period in latent cells (139 for the paper's preset)."""
        return round((self.ts_input_size + 2 * self.margin) / self.coord_hori_occupy_ratio) - 1

    @property
    def vert_scale(self) -> float:
        """Pre-tanh vertical coordinate per latent cell: ``2·cut / (ts_input + V − 1)`` (0.3 for the paper)."""
        return 2 * self.coord_vert_cut / (self.ts_input_size + self.coord_vert_sample_size - 1)


def texture_sizes(n: int, num_blocks: int) -> list[int]:
    """Output side of each G_T conv for ``n`` input cells: up ``x → 2x − 3``, valid ``x → x − 2``."""
    sizes, x = [], n
    for _ in range(num_blocks):
        x = 2 * x - 3
        sizes.append(x)
        x = x - 2
        sizes.append(x)
    return sizes


def texture_steps(num_blocks: int) -> list[int]:
    """Elements of each G_T conv's output per latent cell: 2, 2, 4, 4, 8, 8, 16, 16 for four blocks."""
    return [2 ** (i // 2 + 1) for i in range(2 * num_blocks)]


def min_cells(num_blocks: int) -> int:
    """The fewest input cells that leave every G_T layer at least one element."""
    n = 1
    while min(texture_sizes(n, num_blocks)) < 1:
        n += 1
    return n


def blur(x: torch.Tensor) -> torch.Tensor:
    """The unpadded up-sampling blur ``outer([1,2,1]) / 16 × 4`` on the last two axes (``H → H − 2``), computed
    separably (a one-channel 3×3 convolution takes a slow path on CPU)."""
    x = x[..., :-2] + 2 * x[..., 1:-1] + x[..., 2:]
    return (x[..., :-2, :] + 2 * x[..., 1:-1, :] + x[..., 2:, :]) * 0.25


def upsample_skip(x: torch.Tensor) -> torch.Tensor:
    """The running image's up-sampling: stride-2 transposed conv with ``outer([1,2,1]) / 16 × 4``, cropped
    ``[1:-1]`` (``H → 2H − 1``): exactly linear interpolation with aligned corners, on the last two axes."""

    def along_last(t: torch.Tensor) -> torch.Tensor:
        head, tail = t[..., :-1], t[..., 1:]
        return torch.cat([torch.stack([head, (head + tail) * 0.5], dim=-1).flatten(-2), t[..., -1:]], dim=-1)

    return along_last(along_last(x).transpose(-1, -2)).transpose(-1, -2)


# ---------------------------------------------------------------------------------------------------------- canvases


class Canvas(Protocol):
    """The random inputs of ``N`` samples over the integer lattice of latent cells.

    Cell ``(a, b)`` is latent row ``a``, column ``b``; cells ``0 … ts_input_size − 1`` feed the texture input of
    the native patch (pixels ``0 … img_resolution − 1``), so its G_S input spans ``−margin … ts_input_size +
    margin − 1``. Noise of G_T conv ``k`` is indexed on that layer's own lattice: element ``step_k · a`` is the
    first element of the layer's output for a patch whose texture input starts at cell ``a``.
    """

    def local_latents(self, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        """``[N, local_latent_dim, h, w]`` for cell rows ``[r0, r1)`` and columns ``[c0, c1)``."""
        ...

    def coords(self, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        """``[N, 3, h, w]`` coordinates of those cells."""
        ...

    def noise(self, layer: int, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        """``[N, 1, h, w]`` noise of G_T conv ``layer`` over its elements ``[r0, r1) × [c0, c1)``."""
        ...

    def region(self, rows: tuple[int, int], cols: tuple[int, int]) -> Canvas:
        """A canvas holding (at least) the inputs of the texture-input cells ``[r0, r1) × [c0, c1)``, which
        patches within them read quickly."""
        ...

    def cell_limits(self) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """The texture-input cells ``([r0, r1), [c0, c1))`` a finite canvas covers; None when infinite."""
        ...


def lattice_coords(cfg: InfinityGANConfig, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``[3, len(rows), len(cols)]`` coordinates of cells given as (float64) indices.

    ``tanh(vert_scale · (a − centre))`` with the native patch's G_S input centred, and ``cos / sin(π y)`` with
    ``y = 2 (b + margin) / hori_period − 1`` (the authors' formula with the native patch's first G_S column at 0).
    """
    centre = (cfg.ts_input_size - 1) / 2
    v = torch.tanh(cfg.vert_scale * (rows - centre))  # [h]
    y = math.pi * (2 * (cols + cfg.margin) / cfg.hori_period - 1)  # [w]
    h, w = len(rows), len(cols)
    out = torch.stack([v[:, None].expand(h, w), torch.cos(y)[None].expand(h, w), torch.sin(y)[None].expand(h, w)])
    return out.float()


def authors_coords(cfg: InfinityGANConfig, height: int, width: int) -> torch.Tensor:
    """``[1, 3, height, width]``: the authors' evaluation coordinates over a whole canvas of latent cells
    (``CoordHandler._creat_coord_grid`` + ``convert_idx_to_input_coords``, float32 in their order of operations):
    vertically centred on the canvas, horizontally starting at its first column."""
    x = torch.arange(height, dtype=torch.float32) / (cfg.ts_input_size + cfg.coord_vert_sample_size - 1)
    y = torch.arange(width, dtype=torch.float32) / cfg.hori_period
    x = x - (x[-1] - 1) / 2
    x, y = (x * 2 - 1) * cfg.coord_vert_cut, y * 2 - 1
    out = torch.stack([
        torch.tanh(x)[:, None].expand(height, width),
        torch.cos(y * math.pi)[None].expand(height, width),
        torch.sin(y * math.pi)[None].expand(height, width),
    ])  # fmt: skip
    return out.unsqueeze(0)


BLOCK_CELLS = 16  # latent cells per side of a block of the seeded random field


def canvas_key(global_latent: torch.Tensor) -> bytes:
    """The key of a sample's canvas: a digest of its raw global latent ``[Dg]`` (float32 bytes)."""
    data = global_latent.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return hashlib.blake2b(data, digest_size=16).digest()


def _block_generator(key: bytes, kind: int, block_row: int, block_col: int) -> torch.Generator:
    digest = hashlib.blake2b(key + f"/{kind}/{block_row}/{block_col}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))


class SeededCanvas:
    """An infinite canvas per sample: local latents and noise drawn block by block from a key (the sample's
    global latent, or a seed), coordinates from :func:`lattice_coords`.

    Blocks are ``BLOCK_CELLS`` cells on a side (``BLOCK_CELLS · step_k`` elements for noise of layer ``k``), each
    drawn from its own generator, so any window's values are the same whatever else is rendered.
    """

    def __init__(self, cfg: InfinityGANConfig, keys: Sequence[bytes], device: torch.device | str = "cpu") -> None:
        self.cfg, self.keys, self.device = cfg, list(keys), torch.device(device)
        self.steps = texture_steps(cfg.num_blocks)

    @classmethod
    def from_seeds(
        cls, cfg: InfinityGANConfig, seeds: Sequence[int], device: torch.device | str = "cpu"
    ) -> SeededCanvas:
        return cls(cfg, [f"seed:{int(s)}".encode() for s in seeds], device)

    @classmethod
    def from_global(cls, cfg: InfinityGANConfig, global_latent: torch.Tensor) -> SeededCanvas:
        """One canvas per row of ``global_latent [N, Dg]``."""
        return cls(cfg, [canvas_key(g) for g in global_latent], global_latent.device)

    def _field(
        self, kind: int, channels: int, block: int, rows: tuple[int, int], cols: tuple[int, int]
    ) -> torch.Tensor:
        (r0, r1), (c0, c1) = rows, cols
        out = torch.empty(len(self.keys), channels, r1 - r0, c1 - c0)
        for br in range(r0 // block, -(-r1 // block)):
            for bc in range(c0 // block, -(-c1 // block)):
                ra, rb = max(r0, br * block), min(r1, (br + 1) * block)
                ca, cb = max(c0, bc * block), min(c1, (bc + 1) * block)
                for i, key in enumerate(self.keys):
                    values = torch.randn(channels, block, block, generator=_block_generator(key, kind, br, bc))
                    out[i, :, ra - r0 : rb - r0, ca - c0 : cb - c0] = values[
                        :, ra - br * block : rb - br * block, ca - bc * block : cb - bc * block
                    ]
        return out.to(self.device)

    def local_latents(self, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        return self._field(0, self.cfg.local_latent_dim, BLOCK_CELLS, rows, cols)

    def coords(self, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        r = torch.arange(*rows, dtype=torch.float64)
        c = torch.arange(*cols, dtype=torch.float64)
        return lattice_coords(self.cfg, r, c).unsqueeze(0).expand(len(self.keys), -1, -1, -1).to(self.device)

    def noise(self, layer: int, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        return self._field(1 + layer, 1, BLOCK_CELLS * self.steps[layer], rows, cols)

    def cell_limits(self) -> None:
        return None

    def region(self, rows: tuple[int, int], cols: tuple[int, int]) -> TensorCanvas:
        """The inputs of the texture-input cells ``[r0, r1) × [c0, c1)`` (and G_S's margins), drawn once."""
        m = self.cfg.margin
        (r0, r1), (c0, c1) = rows, cols
        sizes = zip(texture_sizes(r1 - r0, self.cfg.num_blocks), texture_sizes(c1 - c0, self.cfg.num_blocks))
        noises = [self.noise(k, (s * r0, s * r0 + h), (s * c0, s * c0 + w)) for k, (s, (h, w)) in
                  enumerate(zip(self.steps, sizes))]  # fmt: skip
        latent_rows, latent_cols = (r0 - m, r1 + m), (c0 - m, c1 + m)
        return TensorCanvas(self.cfg, self.local_latents(latent_rows, latent_cols),
                            self.coords(latent_rows, latent_cols), noises, origin=(r0, c0))  # fmt: skip


class TensorCanvas:
    """A finite canvas held in tensors (a latent file, or a region of a :class:`SeededCanvas`).

    ``local [N, Dl, h, w]`` holds the cells ``origin + [−margin, h − margin)`` on each axis (the texture-input
    cells ``origin + [0, h − 2·margin)`` and G_S's margins), ``coords [N, 3, h, w]`` their coordinates (None:
    :func:`authors_coords` over this canvas), ``noises`` one ``[N, 1, H_k, W_k]`` per G_T conv covering the whole
    canvas from element ``step_k · origin``.
    """

    def __init__(
        self,
        cfg: InfinityGANConfig,
        local: torch.Tensor,
        coords: torch.Tensor | None,
        noises: Sequence[torch.Tensor],
        origin: tuple[int, int] = (0, 0),
    ) -> None:
        N, C, h, w = local.shape
        if cfg.local_latent_dim != C:
            raise PolyinrError(f"local latents have {C} channels, the model takes {cfg.local_latent_dim}")
        self.cfg, self.local, self.origin = cfg, local, origin
        self.coords_tensor = authors_coords(cfg, h, w).to(local.device) if coords is None else coords
        if self.coords_tensor.shape[-2:] != (h, w) or self.coords_tensor.shape[1] != 3:
            raise PolyinrError(
                f"coordinates {tuple(self.coords_tensor.shape)} do not fit the latents {tuple(local.shape)}"
            )
        self.coords_tensor = self.coords_tensor.expand(N, -1, -1, -1)
        self.cells = (h - 2 * cfg.margin, w - 2 * cfg.margin)  # texture-input cells the canvas covers
        if min(self.cells) < min_cells(cfg.num_blocks):
            raise PolyinrError(
                f"a canvas of {h}x{w} latent cells is too small: it needs at least "
                f"{min_cells(cfg.num_blocks) + 2 * cfg.margin} on each side"
            )
        sizes = (texture_sizes(self.cells[0], cfg.num_blocks), texture_sizes(self.cells[1], cfg.num_blocks))
        self.noise_shapes = list(zip(*sizes))
        if len(noises) != len(self.noise_shapes):
            raise PolyinrError(f"the canvas needs {len(self.noise_shapes)} noise maps, got {len(noises)}")
        for k, (n, shape) in enumerate(zip(noises, self.noise_shapes)):
            if tuple(n.shape[-2:]) != shape:
                raise PolyinrError(f"noise {k} is {tuple(n.shape[-2:])}, the canvas needs {shape}")
        self.noises = list(noises)
        self.steps = texture_steps(cfg.num_blocks)

    def to(self, device: torch.device | str) -> TensorCanvas:
        return TensorCanvas(self.cfg, self.local.to(device), self.coords_tensor.to(device),
                            [n.to(device) for n in self.noises], self.origin)  # fmt: skip

    @property
    def pixel_shape(self) -> tuple[int, int]:
        """``(H, W)`` pixels of the whole canvas: ``16·(h − 2·margin) − 75`` for the paper's sizes."""
        return self.noise_shapes[-1]

    def region(self, rows: tuple[int, int], cols: tuple[int, int]) -> TensorCanvas:
        return self

    def cell_limits(self) -> tuple[tuple[int, int], tuple[int, int]]:
        (r, c), (h, w) = self.origin, self.cells
        return (r, r + h), (c, c + w)

    @staticmethod
    def _slice(t: torch.Tensor, rows: tuple[int, int], cols: tuple[int, int], r_off: int, c_off: int) -> torch.Tensor:
        (r0, r1), (c0, c1) = (rows[0] - r_off, rows[1] - r_off), (cols[0] - c_off, cols[1] - c_off)
        H, W = t.shape[-2:]
        if r0 < 0 or c0 < 0 or r1 > H or c1 > W:
            raise PolyinrError("the window reaches beyond the canvas the latents define")
        return t[..., r0:r1, c0:c1]

    def local_latents(self, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        m = self.cfg.margin
        return self._slice(self.local, rows, cols, self.origin[0] - m, self.origin[1] - m)

    def coords(self, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        m = self.cfg.margin
        return self._slice(self.coords_tensor, rows, cols, self.origin[0] - m, self.origin[1] - m)

    def noise(self, layer: int, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        step = self.steps[layer]
        return self._slice(self.noises[layer], rows, cols, step * self.origin[0], step * self.origin[1])


def training_coords(
    cfg: InfinityGANConfig, x_st: torch.Tensor, y_st: torch.Tensor, jitter: torch.Tensor
) -> torch.Tensor:
    """``[B, 3, h, h]`` coordinates of training patches (``h = ts_input_size + 2·margin`` latent cells), as the
    authors' ``CoordHandler.sample_coord_grid`` makes them in training.

    Patch ``i`` takes rows ``x_st[i] + [0, h)`` of their grid of ``h + V`` rows (:func:`lattice_coords`'s
    vertical formula, the native patch at ``x_st = V / 2``) and columns ``(y_st[i] + [0, h)) mod (hori_period +
    1)`` of their grid of ``hori_period + 1`` columns; its first and last columns have the same angle, so a patch
    that wraps around the period repeats one column, as theirs do. ``jitter [B, 3]`` (cells, in ``[-½, ½)``)
    moves each channel by its own amount: the cosine and sine channels independently, as their
    ``add_rnd_perturb`` does.
    """
    m, n, V, P = cfg.margin, cfg.ts_input_size, cfg.coord_vert_sample_size, cfg.hori_period
    B, h = len(x_st), n + 2 * m
    cells = torch.arange(h, dtype=torch.float64)
    jitter = jitter.to(torch.float64)
    rows = cells - m + (x_st.double()[:, None] - V / 2) + jitter[:, :1]  # [B, h] our lattice rows
    v = torch.tanh(cfg.vert_scale * (rows - (n - 1) / 2))
    cols = (torch.arange(h)[None] + y_st.long()[:, None]) % (P + 1)  # [B, h] their grid's columns
    y_cos = math.pi * (2 * (cols + jitter[:, 1:2]) / P - 1)
    y_sin = math.pi * (2 * (cols + jitter[:, 2:3]) / P - 1)
    out = torch.stack([
        v[:, :, None].expand(B, h, h),
        torch.cos(y_cos)[:, None].expand(B, h, h),
        torch.sin(y_sin)[:, None].expand(B, h, h),
    ], dim=1)  # fmt: skip
    return out.float()


def training_canvas(
    cfg: InfinityGANConfig, batch: int, generator: torch.Generator | None = None, paired: bool = False
) -> tuple[TensorCanvas, torch.Tensor]:
    """The random inputs of ``batch`` training patches and their vertical positions ``[batch]`` in ``[-1, 1]``.

    As the authors' ``CoordHandler`` in training (:func:`training_coords`): each patch starts at one of
    ``coord_vert_sample_size`` rows (``x_st``) and at any column of the horizontal period (``y_st``), each
    coordinate channel jittered by up to half a cell; its label is ``2·x_st / (V − 1) − 1``. Local latents and
    noise are fresh. ``paired``: samples ``2i`` and ``2i + 1`` share coordinates (the mode-seeking pairs; their
    local latents differ).
    """
    m, n, V = cfg.margin, cfg.ts_input_size, cfg.coord_vert_sample_size
    h = n + 2 * m

    def draw(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    x_st = torch.randint(0, V, (batch,), generator=generator)
    y_st = torch.randint(0, cfg.hori_period + 1, (batch,), generator=generator)
    jitter = torch.rand(batch, 3, generator=generator, dtype=torch.float64) - 0.5
    if paired:
        x_st[1::2], y_st[1::2], jitter[1::2] = (
            x_st[0::2][: batch // 2],
            y_st[0::2][: batch // 2],
            jitter[0::2][: batch // 2],
        )
    coords = training_coords(cfg, x_st, y_st, jitter)
    sizes = texture_sizes(n, cfg.num_blocks)
    canvas = TensorCanvas(cfg, draw(batch, cfg.local_latent_dim, h, h), coords, [draw(batch, 1, k, k) for k in sizes])
    return canvas, x_st.float() / (V - 1) * 2 - 1


# ---------------------------------------------------------------------------------------------------------- layers


class ModulatedConv(nn.Module):
    """StyleGAN2's modulated convolution, unpadded, on patch batches.

    Features are ``[P, B·C, H, W]``: ``P`` patches of ``B`` samples, the samples as convolution groups (the
    authors' fused form for ``P = 1``), so the patches of one sample share its modulated weight.
    ``up``: stride-2 transposed conv, crop ``[1:-1]``, unpadded blur (``H → 2H − 3``); else valid (``H → H − k + 1``).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, style_dim: int, demodulate: bool = True,
                 up: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.in_ch, self.out_ch, self.kernel, self.demodulate, self.up = in_ch, out_ch, kernel, demodulate, up
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.modulation = EqualizedLinear(style_dim, in_ch, bias_init=1.0)
        self.scale = 1 / math.sqrt(in_ch * kernel * kernel)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """``x [P, B·Cin, H, W]``, ``style [B, style_dim]`` → ``[P, B·Cout, H', W']``; or one sample's per-pixel
        styles ``[P, style_dim, H, W]`` (spatial style fusion, ``B = 1``)."""
        if style.ndim == 4:
            return self._spatial(x, style)
        B = style.shape[0]
        s = self.modulation(style)  # [B, Cin]
        w = self.scale * self.weight.unsqueeze(0) * s[:, None, :, None, None]  # [B, Cout, Cin, k, k]
        if self.demodulate:
            w = w * torch.rsqrt(w.pow(2).sum(dim=(2, 3, 4)) + 1e-8)[:, :, None, None, None]
        if not self.up:
            return F.conv2d(x, w.reshape(B * self.out_ch, self.in_ch, self.kernel, self.kernel), groups=B)
        w = w.transpose(1, 2).reshape(B * self.in_ch, self.out_ch, self.kernel, self.kernel)
        return blur(F.conv_transpose2d(x, w, stride=2, groups=B)[:, :, 1:-1, 1:-1])  # [P, B·Cout, 2H − 3, 2W − 3]

    def _spatial(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """The authors' per-pixel modulation (``ModulatedConv2d`` with a spatial style): ``(x · s(p)) ⊛ W``, then
        each output pixel demodulated by its own input pixel's style (interpolated after up-sampling, cropped
        after a valid conv), an approximation where the style varies within the kernel."""
        s = self.modulation(style.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # [P, Cin, H, W]
        w = self.scale * self.weight  # [Cout, Cin, k, k]
        demod = None
        if self.demodulate:
            energy = w.pow(2).sum(dim=(2, 3))  # [Cout, Cin]
            demod = torch.rsqrt(torch.einsum("oi,pihw->pohw", energy, s.square()) + 1e-8)  # [P, Cout, H, W]
        if not self.up:
            out = F.conv2d(x * s, w)
            if demod is not None:
                r = self.kernel // 2
                out = out * demod[:, :, r : demod.shape[2] - r, r : demod.shape[3] - r]
            return out
        out = F.conv_transpose2d(x * s, w.transpose(0, 1), stride=2)[:, :, 1:-1, 1:-1]
        if demod is not None:
            out = out * F.interpolate(demod, size=out.shape[2:], mode="bilinear", align_corners=True)
        return blur(out)


class StyledLayer(nn.Module):
    """Modulated conv → (noise ``x + strength · n``) → bias and lrelu · √2 (authors' ``StyledConv``)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, style_dim: int, up: bool, noise: bool) -> None:
        super().__init__()
        self.conv = ModulatedConv(in_ch, out_ch, kernel, style_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros([])) if noise else None
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``x [P, B·Cin, H, W]``, ``style [B, D]``, ``noise [P, B, 1, H', W']`` → ``[P, B·Cout, H', W']``."""
        x = self.conv(x, style)
        P, BC, H, W = x.shape
        B = style.shape[0] if style.ndim == 2 else 1
        x = x.view(P, B, BC // B, H, W)
        if self.noise_strength is not None:
            x = x + self.noise_strength * noise
        x = F.leaky_relu(x + self.bias.view(1, 1, -1, 1, 1), LRELU_SLOPE) * LRELU_GAIN
        return x.view(P, BC, H, W)


class ToRGB(nn.Module):
    """Modulated 1×1 conv without demodulation, + bias; adds the up-sampled, centre-cropped running image."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv(in_ch, out_ch, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        """``x [P, B·C, H, W]``, ``skip [P, B·3, h, w]`` or None → ``[P, B·3, H, W]``."""
        B = style.shape[0] if style.ndim == 2 else 1
        out = self.conv(x, style)
        P, BC, H, W = out.shape
        out = (out.view(P, B, -1, H, W) + self.bias.view(1, 1, -1, 1, 1)).view(P, BC, H, W)
        if skip is None:
            return out
        up = upsample_skip(skip)  # [P, B·3, 2h − 1, 2w − 1]
        dh, dw = (up.shape[2] - H) // 2, (up.shape[3] - W) // 2
        return out + up[:, :, dh : dh + H, dw : dw + W].reshape(P, BC, H, W)


# ---------------------------------------------------------------------------------------------------------- networks


class StructureSynthesizer(nn.Module):
    """G_S: ``local [P, B·Dl, h, w]``, ``coords [P, B·3, h, w]``, global latent ``[B, Dg]`` → ``[P, B·Dl, h − 2m,
    w − 2m]``; each layer sees ``[features, centre-cropped coordinates]``."""

    def __init__(self, cfg: InfinityGANConfig) -> None:
        super().__init__()
        D, Dg = cfg.local_latent_dim, cfg.mapping.z_dim
        self.layers = nn.ModuleList(
            StyledLayer(D + 3, D, cfg.structure_kernel, Dg, up=False, noise=False) for _ in range(cfg.structure_layers)
        )
        self.shrink = cfg.structure_kernel - 1

    def forward(
        self, local: torch.Tensor, coords: torch.Tensor, global_latent: torch.Tensor | Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """``global_latent [B, Dg]``, or per layer one sample's per-cell latents ``[P, Dg, h_i, w_i]`` (fusion)."""
        P, _, h, w = local.shape
        per_layer = not isinstance(global_latent, torch.Tensor)
        B = 1 if per_layer else global_latent.shape[0]
        x = local
        for i, layer in enumerate(self.layers):
            c = i * self.shrink // 2
            crop = coords[:, :, c : h - c, c : w - c]  # [P, B·3, h_i, w_i]
            x = torch.cat([x.view(P, B, -1, h - 2 * c, w - 2 * c), crop.view(P, B, 3, h - 2 * c, w - 2 * c)], dim=2)
            x = layer(x.view(P, -1, h - 2 * c, w - 2 * c), global_latent[i] if per_layer else global_latent)
        return x


class TextureSynthesizer(nn.Module):
    """G_T: structure features ``[P, B·Dl, n, n']``, styles ``[B, num_styles, w_dim]``, noise per conv →
    RGB ``[P, B·C, 16n − 75, …]`` (for four blocks)."""

    def __init__(self, cfg: InfinityGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        in_ch, w_dim = cfg.local_latent_dim, cfg.mapping.w_dim
        self.layers = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        for out_ch in cfg.ts_channels:
            self.layers.append(StyledLayer(in_ch, out_ch, 3, w_dim, up=True, noise=True))
            self.layers.append(StyledLayer(out_ch, out_ch, 3, w_dim, up=False, noise=True))
            self.to_rgbs.append(ToRGB(out_ch, cfg.img_channels, w_dim))
            in_ch = out_ch

    def rgb_style_index(self, block: int) -> int:
        """The style of block ``block``'s ToRGB: ``2·block + 3``, the last one ``2·blocks`` (3, 5, 7, 8)."""
        return min(2 * block + 3, 2 * self.cfg.num_blocks)

    def forward(
        self,
        x: torch.Tensor,
        styles: torch.Tensor | None,
        noises: Sequence[torch.Tensor],
        fused: tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """``styles [B, num_styles, w_dim]``; or ``fused``: per-pixel styles of one sample for every conv's input
        and every ToRGB's input (``[P, w_dim, H, W]`` each)."""
        skip = None
        for j, rgb in enumerate(self.to_rgbs):
            for i in (2 * j, 2 * j + 1):
                x = self.layers[i](x, fused[0][i] if fused else styles[:, i], noises[i])
            skip = rgb(x, fused[1][j] if fused else styles[:, self.rgb_style_index(j)], skip)
        return skip


@dataclass(frozen=True)
class Patch:
    """One patch: texture-input cells ``[row, row + cells[0]) × [col, col + cells[1])``."""

    row: int
    col: int
    cells: tuple[int, int]


def window_cells(cfg: InfinityGANConfig, start: int, stop: int) -> tuple[int, int]:
    """The texture-input cells ``(first, count)`` whose output covers pixels ``[start, stop)``."""
    px, n_min = cfg.cell_pixels, min_cells(cfg.num_blocks)
    first = start // px
    lost = px * n_min - texture_sizes(n_min, cfg.num_blocks)[-1]  # pixels lost to valid convs (75 for 4 blocks)
    count = max(n_min, -(-(stop - px * first + lost) // px))
    return first, count


class StyleFusion:
    """Spatial style fusion (the paper's Sec. 3.4): several styles ``ws [S, num_ws, w_dim]`` placed at ``centers``
    (lattice pixels ``(row, col)``); each pixel takes the style of its nearest centre, box-blurred over ``blur``
    pixels (the authors' ``blur_kernel: 255, blur_type: mean``), and every layer reads that map at its own
    elements' pixel positions (the authors calibrate the map back through the layers by interpolation)."""

    def __init__(self, ws: torch.Tensor, centers: Sequence[tuple[float, float]], blur: int = 255) -> None:
        if ws.ndim != 3 or len(ws) != len(centers) or not len(ws):
            raise PolyinrError(f"style fusion needs one centre per style, got {len(centers)} for {tuple(ws.shape)}")
        if blur < 1:
            raise PolyinrError(f"the fusion blur must be at least 1 pixel, got {blur}")
        self.ws, self.blur = ws, blur
        self.centers = torch.tensor([[float(r), float(c)] for r, c in centers], dtype=torch.float64)  # [S, 2]
        self._map: torch.Tensor | None = None  # [S, Y, X] blurred weights on integer pixels from self._origin
        self._origin = (0, 0)

    def prepare(self, rows: tuple[int, int], cols: tuple[int, int]) -> None:
        """Blur the nearest-centre map over the pixels ``[r0, r1] × [c0, c1]`` (summed-area tables)."""
        r = self.blur // 2
        (r0, r1), (c0, c1) = rows, cols
        y = torch.arange(r0 - r, r1 + r + 1, dtype=torch.float64)
        x = torch.arange(c0 - r, c1 + r + 1, dtype=torch.float64)
        dist = (y[None, :, None] - self.centers[:, 0, None, None]) ** 2 + (
            x[None, None] - self.centers[:, 1, None, None]
        ) ** 2
        nearest = F.one_hot(dist.argmin(dim=0), len(self.centers)).permute(2, 0, 1).double()  # [S, Y, X]
        table = F.pad(nearest.cumsum(1).cumsum(2), (1, 0, 1, 0))  # [S, Y + 1, X + 1]
        k = 2 * r + 1
        box = table[:, k:, k:] - table[:, :-k, k:] - table[:, k:, :-k] + table[:, :-k, :-k]
        self._map, self._origin = (box / (k * k)).float(), (r0, c0)

    def weights(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """``[S, h, w]`` weights at pixel positions ``rows [h]``, ``cols [w]`` (bilinear between pixels)."""
        assert self._map is not None, "prepare() the region first"
        Y, X = self._map.shape[1:]
        fy, fx = rows - self._origin[0], cols - self._origin[1]
        if fy.min() < 0 or fx.min() < 0 or fy.max() > Y - 1 or fx.max() > X - 1:
            raise PolyinrError("style fusion weights asked outside the prepared region")
        y0, x0 = fy.floor().long().clamp(max=Y - 2), fx.floor().long().clamp(max=X - 2)
        wy, wx = (fy - y0).float()[None, :, None], (fx - x0).float()[None, None, :]
        m = self._map
        top = m[:, y0][:, :, x0] * (1 - wx) + m[:, y0][:, :, x0 + 1] * wx
        bottom = m[:, y0 + 1][:, :, x0] * (1 - wx) + m[:, y0 + 1][:, :, x0 + 1] * wx
        return top * (1 - wy) + bottom * wy

    def styles(self, index: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """``[w_dim, h, w]``: ``ws[:, index]`` blended by the weights at those positions."""
        return torch.einsum("shw,sd->dhw", self.weights(rows, cols).to(self.ws), self.ws[:, index])


class InfinityGANSynthesis(nn.Module):
    """``ws [B, 1 + num_styles, w_dim]``, a window of the pixel lattice → ``[B, C, H, W]``, patch by patch."""

    def __init__(self, cfg: InfinityGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.structure = StructureSynthesizer(cfg)
        self.texture = TextureSynthesizer(cfg)
        self.steps = texture_steps(cfg.num_blocks)

    def patch_inputs(self, canvas: Canvas, patches: Sequence[Patch]) -> tuple[torch.Tensor, torch.Tensor, list]:
        """Cut the patches' inputs from the canvas: local ``[P, B·Dl, h, w]``, coords ``[P, B·3, h, w]``, noise
        ``[P, B, 1, H_k, W_k]`` per conv. All patches must have the same size."""
        m = self.cfg.margin
        local, coords, noises = [], [], [[] for _ in self.steps]
        for p in patches:
            rows, cols = (p.row - m, p.row + p.cells[0] + m), (p.col - m, p.col + p.cells[1] + m)
            local.append(canvas.local_latents(rows, cols).flatten(0, 1))
            coords.append(canvas.coords(rows, cols).flatten(0, 1))
            sizes = zip(texture_sizes(p.cells[0], self.cfg.num_blocks), texture_sizes(p.cells[1], self.cfg.num_blocks))
            for k, (step, (h, w)) in enumerate(zip(self.steps, sizes)):
                noises[k].append(canvas.noise(k, (step * p.row, step * p.row + h), (step * p.col, step * p.col + w)))
        return torch.stack(local), torch.stack(coords), [torch.stack(n) for n in noises]

    def pixel_positions(self, step: int, lost_k: int, first: int, count: int) -> torch.Tensor:
        """Output-pixel positions ``[count]`` of elements ``first …`` of a layer with ``step`` elements per cell
        whose size is ``step·n − lost_k`` for ``n`` cells (layers are centred on each other)."""
        cfg = self.cfg
        lost = cfg.cell_pixels * cfg.ts_input_size - cfg.img_resolution
        e = torch.arange(first, first + count, dtype=torch.float64)
        return cfg.cell_pixels / step * (e + (lost_k + 1) / 2) - (lost + 1) / 2

    def fused_styles(self, fusion: StyleFusion, patches: Sequence[Patch]) -> tuple[list, list, list]:
        """Per-pixel styles of every layer's input for each patch: G_S layers, G_T convs, ToRGBs."""
        cfg, m, r = self.cfg, self.cfg.margin, self.cfg.structure_kernel // 2
        n = cfg.ts_input_size
        lost = [s * n - k for s, k in zip(self.steps, texture_sizes(n, cfg.num_blocks))]

        def layer_maps(index: int, step: int, lost_k: int, starts: Callable[[Patch], tuple[int, int]],
                       size: Callable[[Patch], tuple[int, int]]) -> torch.Tensor:  # fmt: skip
            maps = []
            for p in patches:
                (r0, c0), (h, w) = starts(p), size(p)
                rows, cols = self.pixel_positions(step, lost_k, r0, h), self.pixel_positions(step, lost_k, c0, w)
                maps.append(fusion.styles(index, rows, cols))
            return torch.stack(maps)  # [P, D, h, w]

        structure = [
            layer_maps(0, 1, 0, lambda p, i=i: (p.row - m + i * r, p.col - m + i * r),
                       lambda p, i=i: (p.cells[0] + 2 * (m - i * r), p.cells[1] + 2 * (m - i * r)))
            for i in range(cfg.structure_layers)
        ]  # fmt: skip

        def sizes(k: int) -> Callable[[Patch], tuple[int, int]]:
            return lambda p: (
                texture_sizes(p.cells[0], cfg.num_blocks)[k],
                texture_sizes(p.cells[1], cfg.num_blocks)[k],
            )

        convs = [layer_maps(1, 1, 0, lambda p: (p.row, p.col), lambda p: p.cells)]
        for k in range(1, 2 * cfg.num_blocks):
            step = self.steps[k - 1]
            convs.append(layer_maps(1 + k, step, lost[k - 1], lambda p, s=step: (s * p.row, s * p.col), sizes(k - 1)))
        rgbs = []
        for j in range(cfg.num_blocks):
            k, step = 2 * j + 1, self.steps[2 * j + 1]
            index = 1 + self.texture.rgb_style_index(j)
            rgbs.append(layer_maps(index, step, lost[k], lambda p, s=step: (s * p.row, s * p.col), sizes(k)))
        return structure, convs, rgbs

    def render_patches(
        self, ws: torch.Tensor, canvas: Canvas, patches: Sequence[Patch], fusion: StyleFusion | None = None
    ) -> torch.Tensor:
        """Same-sized ``patches`` of every sample in one batched call → ``[P, B, C, H_p, W_p]``."""
        B = ws.shape[0]
        local, coords, noises = self.patch_inputs(canvas, patches)
        dtype = ws.dtype
        if fusion is not None:
            structure_styles, conv_styles, rgb_styles = self.fused_styles(fusion, patches)
            x = self.structure(local.to(dtype), coords.to(dtype), structure_styles)
            rgb = self.texture(x, None, [n.to(dtype) for n in noises], fused=(conv_styles, rgb_styles))
        else:
            x = self.structure(local.to(dtype), coords.to(dtype), ws[:, 0])
            rgb = self.texture(x, ws[:, 1:], [n.to(dtype) for n in noises])
        P, _, H, W = rgb.shape
        return rgb.view(P, B, -1, H, W)

    def forward(
        self,
        ws: torch.Tensor,
        grid: Grid | None = None,
        canvas: Canvas | None = None,
        patch_cells: int | None = None,
        patch_batch: int = 1,
        fusion: StyleFusion | None = None,
    ) -> torch.Tensor:
        """Render ``ws`` on ``grid`` (a window of the pixel lattice; default: the native patch) → ``[B, C, H, W]``.

        ``canvas`` gives the local latents, coordinates and noise (default: one :class:`SeededCanvas` per sample,
        keyed by its global latent ``ws[:, 0]``). Patches of ``patch_cells`` texture-input cells (default
        ``ts_input_size``: the authors' 101-pixel patches) sit on a fixed lattice of the canvas, ``⌊patch pixels /
        cell pixels⌋`` cells apart (96 px for the paper's), and go through the network ``patch_batch`` at a time
        (calls are padded to full batches: convolutions may round differently for another batch size); each
        pixel is taken from the patch that owns it (from its first pixel to the next patch's), so a pixel has the
        same value, bit for bit, in every window rendered with the same ``patch_cells`` and ``patch_batch``, and
        overlapping pixels are never blended. ``fusion`` (one sample) replaces ``ws``'s styles by the fused
        styles of several (``ws`` then keys only the canvas).
        """
        cfg = self.cfg
        B, L, _ = ws.shape
        if 1 + cfg.num_styles != L:
            raise PolyinrError(f"InfinityGAN synthesis takes {1 + cfg.num_styles} ws per sample, got {L}")
        R = cfg.img_resolution
        grid = Grid.frame(R) if grid is None else grid
        (top, left), (H, W) = lattice_origin(grid, R), grid.shape
        canvas = SeededCanvas.from_global(cfg, ws[:, 0]) if canvas is None else canvas
        n = patch_cells or cfg.ts_input_size
        if n < min_cells(cfg.num_blocks):
            raise PolyinrError(f"patches need at least {min_cells(cfg.num_blocks)} latent cells, got {n}")
        limits = canvas.cell_limits()
        rows, n_r = self._axis(top, top + H, n, None if limits is None else limits[0])
        cols, n_c = self._axis(left, left + W, n, None if limits is None else limits[1])
        canvas = canvas.region((rows[0][0], rows[-1][0] + n_r), (cols[0][0], cols[-1][0] + n_c))
        px = cfg.cell_pixels
        if fusion is not None:
            if B != 1:
                raise PolyinrError("style fusion renders one sample at a time")
            reach = (cfg.margin + 1) * px + px * n
            fusion.prepare((rows[0][0] * px - reach, rows[-1][0] * px + reach),
                           (cols[0][0] * px - reach, cols[-1][0] * px + reach))  # fmt: skip
        out = ws.new_empty(B, cfg.img_channels, H, W)
        jobs = [(r, c) for r in rows for c in cols]
        for i in range(0, len(jobs), patch_batch):
            batch = jobs[i : i + patch_batch]
            patches = [Patch(r[0], c[0], (n_r, n_c)) for r, c in batch]
            patches += patches[-1:] * (patch_batch - len(patches))  # a full batch: the same conv path every call
            rgb = self.render_patches(ws, canvas, patches, fusion)  # [P, B, C, h, w]
            for ((r, (ra, rb)), (c, (ca, cb))), img in zip(batch, rgb):
                r0, c0 = r * px, c * px  # the patch's first pixel on the lattice
                out[:, :, ra - top : rb - top, ca - left : cb - left] = img[:, :, ra - r0 : rb - r0, ca - c0 : cb - c0]
        return out

    def _axis(
        self, start: int, stop: int, n: int, limit: tuple[int, int] | None
    ) -> tuple[list[tuple[int, tuple[int, int]]], int]:
        """Patches along one axis for pixels ``[start, stop)``: ``[(first cell, (first, stop) pixel owned
        within the window)]`` and the patch size in cells.

        Patches start at multiples of the stride; a finite canvas (``limit``: its texture-input cells) moves the
        patches that would leave it back inside and shrinks them when it is smaller than a patch.
        """
        cfg = self.cfg
        px = cfg.cell_pixels
        if limit is not None:
            first_px, last_px = limit[0] * px, limit[0] * px + texture_sizes(limit[1] - limit[0], cfg.num_blocks)[-1]
            if start < first_px or stop > last_px:
                raise PolyinrError(f"the window reaches beyond the canvas the latents define (pixels "
                                   f"{first_px}..{last_px - 1} of the lattice)")  # fmt: skip
            n = min(n, limit[1] - limit[0])
        step = px * (texture_sizes(n, cfg.num_blocks)[-1] // px)  # pixels between patch starts
        starts = list(range((start // step) * step, stop, step))
        cells = [s // px for s in starts]
        if limit is not None:
            cells = sorted({min(max(c, limit[0]), limit[1] - n) for c in cells})
        bounds = [c * px for c in cells[1:]] + [cells[-1] * px + texture_sizes(n, cfg.num_blocks)[-1]]
        owned = [(max(c * px, start), min(b, stop)) for c, b in zip(cells, bounds)]
        return [(c, o) for c, o in zip(cells, owned) if o[0] < o[1]], n

    def render_canvas(self, ws: torch.Tensor, canvas: TensorCanvas, patch_batch: int = 1) -> torch.Tensor:
        """The whole canvas a :class:`TensorCanvas` defines, ``[B, C, H, W]``, as the authors' patch-by-patch
        inference renders it for the same inputs (valid convolutions: any patching gives the same pixels)."""
        H, W = canvas.pixel_shape
        R = self.cfg.img_resolution
        grid = Grid.window(0.0, 0.0, (H - 1) / (R - 1), (W - 1) / (R - 1), H, W)
        return self.forward(ws, grid, canvas=canvas, patch_batch=patch_batch)


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

    @property
    def img_resolution(self) -> int:
        return self.cfg.img_resolution

    @classmethod
    def stage_settings(cls, resolutions: list[int], stage: int) -> dict[str, Any]:
        """None: a patch's size follows from the preset's layers, whatever the images' resolution."""
        return {}

    def training_grid(self, resolution: int) -> Grid:
        """The native patch, whatever the resolution of the images it is trained on (patches are cut from
        them); images smaller than a patch are refused."""
        R = self.img_resolution
        if resolution < R:
            raise GridRefused(f"infinitygan trains {R}x{R} patches cut from the images; {resolution}x{resolution} "
                              f"images are smaller than a patch: train at {R} or more")  # fmt: skip
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


def _global_then_styles(z: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """The ws of InfinityGAN: the raw global latent ``z [B, Dg]`` first, then ``styles [B, num_styles, Dg]``
    → ``[B, 1 + num_styles, Dg]``."""
    return torch.cat([z.to(styles.dtype).unsqueeze(1), styles], dim=1)


class InfinityGANMapping(nn.Module):
    """``z [B, Dg] → ws [B, 1 + num_styles, Dg]``: the raw global latent, then the shared mapping's styles."""

    def __init__(self, cfg: InfinityGANConfig) -> None:
        super().__init__()
        self.styles = MappingNetwork(cfg.mapping, num_ws=cfg.num_styles)
        self.num_ws = 1 + cfg.num_styles
        self.z_dim, self.w_dim, self.num_classes = cfg.mapping.z_dim, cfg.mapping.w_dim, cfg.mapping.num_classes

    @property
    def w_avg(self) -> torch.Tensor:
        """The styles' running mean ``[C or 1, w_dim]``."""
        return self.styles.w_avg

    def set_class_embeddings(self, table: torch.Tensor) -> None:
        self.styles.set_class_embeddings(table)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """Truncation (not in the authors' code) applies to the styles only; ``truncation_cutoff`` counts
        styles."""
        styles = self.styles(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                             update_emas=update_emas)  # fmt: skip
        return _global_then_styles(z, styles)

    def interpolate_classes(
        self,
        z: torch.Tensor,
        a: int,
        b: int,
        t: float,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """The shared mapping's class interpolation for the styles, after the raw global latent."""
        styles = self.styles.interpolate_classes(z, a, b, t, truncation_psi, truncation_cutoff)
        return _global_then_styles(z, styles)
