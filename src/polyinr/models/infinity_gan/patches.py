"""InfinityGAN's patch renderer: any window of the pixel lattice, patch by patch, with spatial style fusion.

Patches sit on a fixed lattice of the canvas and each pixel is taken from the patch that owns it, so a pixel has
the same value in every window; the memory of a render is that of a batch of patches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.models.generator import lattice_origin
from polyinr.models.infinity_gan.canvas import Canvas, SeededCanvas, TensorCanvas
from polyinr.models.infinity_gan.config import InfinityGANConfig, min_cells, texture_sizes, texture_steps
from polyinr.models.infinity_gan.network import StructureSynthesizer, TextureSynthesizer


@dataclass(frozen=True)
class Patch:
    """One patch: texture-input cells ``[row, row + cells[0]) × [col, col + cells[1])``."""

    row: int
    col: int
    cells: tuple[int, int]


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

        def layer_maps(
            index: int,
            step: int,
            lost_k: int,
            starts: Callable[[Patch], tuple[int, int]],
            size: Callable[[Patch], tuple[int, int]],
        ) -> torch.Tensor:
            maps = []
            for p in patches:
                (r0, c0), (h, w) = starts(p), size(p)
                rows, cols = self.pixel_positions(step, lost_k, r0, h), self.pixel_positions(step, lost_k, c0, w)
                maps.append(fusion.styles(index, rows, cols))
            return torch.stack(maps)  # [P, D, h, w]

        structure = [
            layer_maps(
                0,
                1,
                0,
                lambda p, i=i: (p.row - m + i * r, p.col - m + i * r),
                lambda p, i=i: (p.cells[0] + 2 * (m - i * r), p.cells[1] + 2 * (m - i * r)),
            )
            for i in range(cfg.structure_layers)
        ]

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
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Same-sized ``patches`` of every sample in one batched call → images ``[P, B, C, H_p, W_p]`` and the
        structure features G_T paints them from ``[P, B·Dl, h, w]``."""
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
        return rgb.view(P, B, -1, H, W), x

    def check_ws(self, ws: torch.Tensor) -> None:
        L = ws.shape[1]
        if 1 + self.cfg.num_styles != L:
            raise PolyinrError(f"InfinityGAN synthesis takes {1 + self.cfg.num_styles} ws per sample, got {L}")

    def training_patch(self, ws: torch.Tensor, canvas: TensorCanvas) -> tuple[torch.Tensor, torch.Tensor]:
        """The native patch of each sample of a training canvas (``ts_input_size`` texture-input cells from its
        origin), as :meth:`forward` renders the native grid: images ``[B, C, R, R]`` and the structure features
        ``[B, Dl, n, n]`` G_T paints them from."""
        self.check_ws(ws)
        n = self.cfg.ts_input_size
        rgb, features = self.render_patches(ws, canvas, [Patch(*canvas.origin, (n, n))])  # one patch: P = 1
        return rgb[0].to(ws.dtype), features.view(ws.shape[0], -1, n, n)

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
        self.check_ws(ws)
        B = ws.shape[0]
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
            fusion.prepare(
                (rows[0][0] * px - reach, rows[-1][0] * px + reach), (cols[0][0] * px - reach, cols[-1][0] * px + reach)
            )
        out = ws.new_empty(B, cfg.img_channels, H, W)
        jobs = [(r, c) for r in rows for c in cols]
        for i in range(0, len(jobs), patch_batch):
            batch = jobs[i : i + patch_batch]
            patches = [Patch(r[0], c[0], (n_r, n_c)) for r, c in batch]
            patches += patches[-1:] * (patch_batch - len(patches))  # a full batch: the same conv path every call
            rgb, _ = self.render_patches(ws, canvas, patches, fusion)  # [P, B, C, h, w]
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
                raise PolyinrError(
                    f"the window reaches beyond the canvas the latents define (pixels "
                    f"{first_px}..{last_px - 1} of the lattice)"
                )
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
