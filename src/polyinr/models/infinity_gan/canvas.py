"""InfinityGAN's canvases: the random inputs (local latents, coordinates, noise) over the lattice of latent cells.

A canvas is infinite and seeded (:class:`SeededCanvas`: drawn block by block from a key, so any window's values
are the same whatever else is rendered) or finite and held in tensors (:class:`TensorCanvas`: a latent file, a
region of a seeded canvas, a training batch). The training canvas (:func:`training_canvas`) places each patch
where the authors' ``CoordHandler`` does.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Protocol

import torch

from polyinr.errors import PolyinrError
from polyinr.models.infinity_gan.config import InfinityGANConfig, min_cells, texture_sizes, texture_steps


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
    out = torch.stack(
        [
            torch.tanh(x)[:, None].expand(height, width),
            torch.cos(y * math.pi)[None].expand(height, width),
            torch.sin(y * math.pi)[None].expand(height, width),
        ]
    )
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
        noises = [
            self.noise(k, (s * r0, s * r0 + h), (s * c0, s * c0 + w))
            for k, (s, (h, w)) in enumerate(zip(self.steps, sizes))
        ]
        latent_rows, latent_cols = (r0 - m, r1 + m), (c0 - m, c1 + m)
        return TensorCanvas(
            self.cfg,
            self.local_latents(latent_rows, latent_cols),
            self.coords(latent_rows, latent_cols),
            noises,
            origin=(r0, c0),
        )


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
        return TensorCanvas(
            self.cfg,
            self.local.to(device),
            self.coords_tensor.to(device),
            [n.to(device) for n in self.noises],
            self.origin,
        )

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
    out = torch.stack(
        [
            v[:, :, None].expand(B, h, h),
            torch.cos(y_cos)[:, None].expand(B, h, h),
            torch.sin(y_sin)[:, None].expand(B, h, h),
        ],
        dim=1,
    )
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


def window_cells(cfg: InfinityGANConfig, start: int, stop: int) -> tuple[int, int]:
    """The texture-input cells ``(first, count)`` whose output covers pixels ``[start, stop)``."""
    px, n_min = cfg.cell_pixels, min_cells(cfg.num_blocks)
    first = start // px
    lost = px * n_min - texture_sizes(n_min, cfg.num_blocks)[-1]  # pixels lost to valid convs (75 for 4 blocks)
    count = max(n_min, -(-(stop - px * first + lost) // px))
    return first, count
