"""Pixel grids over windows of the continuous image plane.

The training frame is the unit square ``[0, 1]²``. A grid names a window ``(top, left, bottom, right)`` in
frame units and a pixel count ``(height, width)``. Pixel ``(r, c)`` sits at::

    row = top  + r · (bottom − top) / (height − 1)
    col = left + c · (right − left) / (width − 1)

which is the Poly-INR authors' corner-aligned convention (``arange(R) / (R − 1)``, ``meshgrid`` in 'ij' order):
the first coordinate is the row (vertical), the second the column. The training grid at resolution R is
``Grid.frame(R)``. A one-pixel axis sits at its window's first edge.

Every continuous operation is a statement about grids: a higher resolution is the same window with more
pixels, extrapolation is a window beyond ``[0, 1]``, zoom is a small window with many pixels, a huge render is
a grid cut into tiles (:meth:`Grid.tiles`) whose pixels are exactly the big grid's pixels, and the
translations and rotations of the equivariance metrics are affine maps of the grid (:meth:`Grid.transformed`).

Coordinates are computed in float64 from the integer pixel index, so a tile or crop reproduces its parent's
coordinates bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from polyinr.errors import PolyinrError

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


class GridError(PolyinrError, ValueError):
    """A grid was asked for with a degenerate window or size."""


@dataclass(frozen=True)
class Grid:
    """``height × width`` pixels over the window ``[top, bottom] × [left, right]`` of the plane.

    ``rows`` / ``cols`` select a crop ``[start, stop)`` of the full pixel lattice (``None`` = all of it), so
    tiles keep their parent's spacing exactly. ``affine`` is a 2×3 matrix, row-major
    ``(a, b, t_row, c, d, t_col)``, applied to each pixel's ``(row, col, 1)`` after the window: it maps the
    grid to where it is sampled in the plane (identity by default).
    """

    top: float
    left: float
    bottom: float
    right: float
    height: int
    width: int
    rows: tuple[int, int] | None = None
    cols: tuple[int, int] | None = None
    affine: tuple[float, float, float, float, float, float] = IDENTITY

    def __post_init__(self) -> None:
        for name in ("top", "left", "bottom", "right"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise GridError(f"grid {name} must be a finite number, got {value!r}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise GridError(f"grid {name} must be a positive integer, got {value!r}")
        if self.height > 1 and not self.top < self.bottom:
            raise GridError(f"grid window is empty: top {self.top} must be above bottom {self.bottom}")
        if self.width > 1 and not self.left < self.right:
            raise GridError(f"grid window is empty: left {self.left} must be left of right {self.right}")
        if len(self.affine) != 6 or not all(math.isfinite(v) for v in self.affine):
            raise GridError(f"grid affine must be 6 finite numbers, got {self.affine!r}")
        for name, size in (("rows", self.height), ("cols", self.width)):
            span = getattr(self, name)
            if span is not None and not (0 <= span[0] < span[1] <= size):
                raise GridError(f"grid {name} crop {span} is outside 0..{size}")

    # ------------------------------------------------------------------ constructors

    @classmethod
    def frame(cls, resolution: int | tuple[int, int]) -> Grid:
        """The training grid: the unit square at ``resolution`` (an int, or ``(height, width)``)."""
        height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
        return cls(0.0, 0.0, 1.0, 1.0, height, width)

    @classmethod
    def window(cls, top: float, left: float, bottom: float, right: float, height: int, width: int) -> Grid:
        """An arbitrary window of the plane; beyond ``[0, 1]`` extrapolates, a small window zooms."""
        return cls(float(top), float(left), float(bottom), float(right), height, width)

    # ------------------------------------------------------------------ geometry

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the pixels this grid holds (the crop, if any)."""
        r0, r1 = self.rows or (0, self.height)
        c0, c1 = self.cols or (0, self.width)
        return r1 - r0, c1 - c0

    @property
    def num_pixels(self) -> int:
        h, w = self.shape
        return h * w

    @property
    def row_step(self) -> float:
        """Distance between pixel rows in frame units (the window's height for one row)."""
        return (self.bottom - self.top) / (self.height - 1) if self.height > 1 else 0.0

    @property
    def col_step(self) -> float:
        return (self.right - self.left) / (self.width - 1) if self.width > 1 else 0.0

    def is_frame(self, resolution: int) -> bool:
        """True when this grid is exactly the training grid at ``resolution`` (no crop, no affine)."""
        return self == Grid.frame(resolution)

    def axes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Row and column coordinates before the affine map, float64: ``[H]`` and ``[W]``."""
        r0, r1 = self.rows or (0, self.height)
        c0, c1 = self.cols or (0, self.width)
        rows = self.top + torch.arange(r0, r1, dtype=torch.float64) * self.row_step
        cols = self.left + torch.arange(c0, c1, dtype=torch.float64) * self.col_step
        return rows, cols

    def coords(self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Plane coordinates of every pixel, ``[H, W, 2]`` with ``[..., 0]`` = row, ``[..., 1]`` = column."""
        rows, cols = self.axes()
        grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)  # [H, W, 2]
        if self.affine != IDENTITY:
            a, b, t_row, c, d, t_col = self.affine
            matrix = torch.tensor([[a, b], [c, d]], dtype=torch.float64)
            grid = grid @ matrix.T + torch.tensor([t_row, t_col], dtype=torch.float64)
        return grid.to(device=device, dtype=dtype)

    # ------------------------------------------------------------------ derived grids

    def crop(self, rows: tuple[int, int], cols: tuple[int, int]) -> Grid:
        """The sub-grid of pixel rows ``[r0, r1)`` and columns ``[c0, c1)`` of this grid's pixels."""
        base_r = self.rows[0] if self.rows else 0
        base_c = self.cols[0] if self.cols else 0
        h, w = self.shape
        if not (0 <= rows[0] < rows[1] <= h and 0 <= cols[0] < cols[1] <= w):
            raise GridError(f"crop rows {rows} cols {cols} is outside this {h}x{w} grid")
        return replace(self, rows=(base_r + rows[0], base_r + rows[1]), cols=(base_c + cols[0], base_c + cols[1]))

    def tiles(self, tile_height: int, tile_width: int | None = None) -> Iterator[tuple[int, int, Grid]]:
        """Cut the grid into tiles, row-major: yields ``(row_offset, col_offset, tile)``.

        Each tile's pixels are exactly this grid's pixels at those offsets, so rendering the tiles and pasting
        them reproduces the full render bit for bit.
        """
        tile_width = tile_height if tile_width is None else tile_width
        if tile_height <= 0 or tile_width <= 0:
            raise GridError(f"tile size must be positive, got {tile_height}x{tile_width}")
        h, w = self.shape
        for r in range(0, h, tile_height):
            for c in range(0, w, tile_width):
                yield r, c, self.crop((r, min(r + tile_height, h)), (c, min(c + tile_width, w)))

    def transformed(self, matrix: tuple[float, float, float, float, float, float]) -> Grid:
        """This grid with ``matrix`` (2×3, row-major, acting on ``(row, col, 1)``) applied after its own affine."""
        a1, b1, t1, c1, d1, u1 = self.affine
        a2, b2, t2, c2, d2, u2 = (float(v) for v in matrix)
        composed = (
            a2 * a1 + b2 * c1,
            a2 * b1 + b2 * d1,
            a2 * t1 + b2 * u1 + t2,
            c2 * a1 + d2 * c1,
            c2 * b1 + d2 * d1,
            c2 * t1 + d2 * u1 + u2,
        )
        return replace(self, affine=composed)

    def translated(self, d_row: float, d_col: float) -> Grid:
        """Sample the plane shifted by ``(d_row, d_col)`` frame units: content moves by the opposite amount."""
        return self.transformed((1.0, 0.0, d_row, 0.0, 1.0, d_col))

    def rotated(self, angle: float, center: tuple[float, float] = (0.5, 0.5)) -> Grid:
        """Sample the plane rotated by ``angle`` radians about ``center`` (row, col)."""
        cos, sin = math.cos(angle), math.sin(angle)
        r0, c0 = center
        return self.transformed((cos, -sin, r0 - cos * r0 + sin * c0, sin, cos, c0 - sin * r0 - cos * c0))

    def scaled(self, factor: float, center: tuple[float, float] = (0.5, 0.5)) -> Grid:
        """Sample the plane scaled by ``factor`` about ``center``: factor < 1 zooms in."""
        if not math.isfinite(factor) or factor == 0:
            raise GridError(f"scale factor must be finite and non-zero, got {factor}")
        r0, c0 = center
        return self.transformed((factor, 0.0, r0 * (1 - factor), 0.0, factor, c0 * (1 - factor)))


def parse_window(text: str) -> tuple[float, float, float, float]:
    """Parse ``'top,left,bottom,right'`` into four floats, with a one-line error when malformed."""
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise GridError(f"window must be four numbers 'top,left,bottom,right', got {text!r}")
    top, left, bottom, right = values
    if not (top < bottom and left < right):
        raise GridError(f"window {text!r} is empty: need top < bottom and left < right")
    return values  # type: ignore[return-value]
