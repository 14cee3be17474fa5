"""Equivariance metrics EQ-T, EQ-T_frac and EQ-R (Karras et al. 2021, "Alias-Free GANs", Appendix E).

Each compares "generate with the input transformed" against "generate, then transform the image", as a PSNR in
dB over the valid pixels: ``20·log10(2) − 10·log10(Σ masked squared error / Σ mask)``, sums in float64, images
in ``[-1, 1]`` (dynamic range 2). The definitions are StyleGAN3's ``metrics/equivariance.py``:

- EQ-T: a translation ``t ~ U[−0.125, 0.125]²`` of the image size, rounded to whole pixels; the reference
  shifts the pixels (zero fill) and the mask is the overlap.
- EQ-T_frac: the same without rounding; the reference is a separable Lanczos-windowed sinc shift (a = 3) and
  pixels within the filter's reach of the border are masked.
- EQ-R: an angle ``~ U[−π, π]``; the reference rotates the image with a band-limited (sinc·Lanczos) filter,
  4× upsampling and bilinear resampling; the generated image is filtered with the same band limit without
  resampling ("pseudo-rotation"); the valid-region masks are multiplied.

One transform is drawn per group of :data:`GROUP_SIZE` samples, as StyleGAN3 does (its batch of 4).

Both sides are rendered on the grids' uniform coordinates (:meth:`Generator.uniform_coordinates`): a model
that stores its own coordinates for the native frame (an imported or learned grid) would otherwise render the
untransformed side on them and the transformed side on uniform ones, and the metric would measure the
difference between the two grids instead of the model's equivariance.

The "input transform" is an affine map of the pixel grid (:meth:`~polyinr.grid.Grid.translated`,
:meth:`~polyinr.grid.Grid.rotated`), so the metrics apply to every generator that renders on a transformed
:class:`~polyinr.grid.Grid`. StyleGAN3's matrix ``M`` acts on (x, y) = (column, row) and shows the image at
``M·p``; a grid's matrix acts on (row, column), so ``M[:2, 2] = −t`` is ``grid.translated(−t_row, −t_col)``
and ``M = rotation_matrix(−α)`` is ``grid.rotated(−α)``. The resampling operators are pure-PyTorch ports of
StyleGAN3's reference ``upfirdn2d`` path (true convolution, zero padding).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.metrics.sampling import Progress
from polyinr.sampling import iter_ws

GROUP_SIZE = 4
KINDS = ("eqt_int", "eqt_frac", "eqr")


# ---------------------------------------------------------------------------- filters


def sinc(x: torch.Tensor) -> torch.Tensor:
    y = (x * math.pi).abs()
    return torch.where(y < 1e-30, torch.ones_like(x), torch.sin(y) / y.clamp(min=1e-30))


def lanczos_window(x: torch.Tensor, a: float) -> torch.Tensor:
    x = x.abs() / a
    return torch.where(x < 1, sinc(x), torch.zeros_like(x))


def rotation_matrix(angle: float) -> torch.Tensor:
    """StyleGAN3's 3×3 rotation acting on (x, y, 1): ``[[cos, sin], [−sin, cos]]``."""
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def upfirdn2d(
    x: torch.Tensor, f: torch.Tensor, up: int = 1, padding: tuple[int, int, int, int] = (0, 0, 0, 0), gain: float = 1.0
) -> torch.Tensor:
    """Insert ``up − 1`` zeros after each pixel, pad ``(x0, x1, y0, y1)`` (negative crops), convolve with ``f``.

    ``x [B, C, H, W]``, ``f [fh, fw]`` (2-D, applied per channel as a true convolution, scaled by ``gain``).
    """
    B, C, H, W = x.shape
    if up > 1:
        x = F.pad(x.reshape(B, C, H, 1, W, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(B, C, H * up, W * up)
    px0, px1, py0, py1 = padding
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    weight = (f * gain).flip([0, 1]).to(x.dtype)[None, None].repeat(C, 1, 1, 1)  # [C, 1, fh, fw]
    return F.conv2d(x, weight, groups=C)


def filter2d(x: torch.Tensor, f: torch.Tensor, padding: tuple[int, int, int, int] = (0, 0, 0, 0)) -> torch.Tensor:
    """Filter ``x`` with ``f`` keeping its size, plus extra ``padding`` (x0, x1, y0, y1)."""
    fh, fw = f.shape
    px0, px1, py0, py1 = padding
    return upfirdn2d(x, f, padding=(px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2))


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int, padding: int) -> torch.Tensor:
    """Upsample ``x`` by ``up`` with the filter ``f``, padded by ``padding`` on every side of the output."""
    fh, fw = f.shape
    p = (padding + (fw + up - 1) // 2, padding + (fw - up) // 2, padding + (fh + up - 1) // 2, padding + (fh - up) // 2)
    return upfirdn2d(x, f, up=up, padding=p, gain=up * up)


def affine_bandlimit_filter(
    mat: torch.Tensor,
    a: int = 3,
    amax: int = 16,
    aflt: int = 64,
    up: int = 4,
    cutoff_in: float = 1,
    cutoff_out: float = 1,
) -> torch.Tensor:
    """An oriented low-pass filter band-limiting both the input and the output of the 2-D transform ``mat``.

    The convolution of two oriented 2-D sincs (input and transformed output band limits), windowed by the
    convolution of two oriented Lanczos windows; ``[2·amax·up − 1]²`` taps, each polyphase normalised.
    """
    if not a <= amax < aflt:
        raise ValueError("need a <= amax < aflt")
    taps = ((torch.arange(aflt * up * 2 - 1) + 1) / up - aflt).roll(1 - aflt * up)
    yi, xi = torch.meshgrid(taps, taps, indexing="ij")
    xo, yo = (torch.stack([xi, yi], dim=2) @ mat[:2, :2].T).unbind(2)
    fi = sinc(xi * cutoff_in) * sinc(yi * cutoff_in)
    fo = sinc(xo * cutoff_out) * sinc(yo * cutoff_out)
    f = torch.fft.ifftn(torch.fft.fftn(fi) * torch.fft.fftn(fo)).real
    wi = lanczos_window(xi, a) * lanczos_window(yi, a)
    wo = lanczos_window(xo, a) * lanczos_window(yo, a)
    w = torch.fft.ifftn(torch.fft.fftn(wi) * torch.fft.fftn(wo)).real
    f = f * w
    c = (aflt - amax) * up
    f = f.roll([aflt * up - 1] * 2, dims=[0, 1])[c:-c, c:-c]
    f = F.pad(f, [0, 1, 0, 1]).reshape(amax * 2, up, amax * 2, up)
    f = f / f.sum([0, 2], keepdim=True) / (up**2)
    return f.reshape(amax * 2 * up, amax * 2 * up)[:-1, :-1]


# ---------------------------------------------------------------------------- reference transforms


def integer_translation(x: torch.Tensor, shift_row: int, shift_col: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift ``x [B, C, H, W]`` by whole pixels (content moves down/right for positive shifts), zero fill.

    Returns the shifted image and its valid-pixel mask, both ``[B, C, H, W]``.
    """
    _, _, H, W = x.shape
    iy, ix = shift_row, shift_col
    z, m = torch.zeros_like(x), torch.zeros_like(x)
    if abs(ix) < W and abs(iy) < H:
        z[:, :, max(iy, 0) : H + min(iy, 0), max(ix, 0) : W + min(ix, 0)] = x[
            :, :, max(-iy, 0) : H + min(-iy, 0), max(-ix, 0) : W + min(-ix, 0)
        ]
        m[:, :, max(iy, 0) : H + min(iy, 0), max(ix, 0) : W + min(ix, 0)] = 1
    return z, m


def fractional_translation(
    x: torch.Tensor, shift_row: float, shift_col: float, a: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift ``x`` by fractional pixels with a separable Lanczos-windowed sinc (``2a`` taps); image and mask."""
    _, _, H, W = x.shape
    ix, iy = math.floor(shift_col), math.floor(shift_row)
    fx, fy = shift_col - ix, shift_row - iy
    b = a - 1
    z = torch.zeros_like(x)
    zx0, zy0 = max(ix - b, 0), max(iy - b, 0)
    zx1, zy1 = min(ix + a, 0) + W, min(iy + a, 0) + H
    if zx0 < zx1 and zy0 < zy1:
        taps = torch.arange(a * 2, device=x.device, dtype=torch.float64) - b
        filter_x = (sinc(taps - fx) * sinc((taps - fx) / a)).unsqueeze(0)  # [1, 2a]
        filter_y = (sinc(taps - fy) * sinc((taps - fy) / a)).unsqueeze(1)  # [2a, 1]
        y = filter2d(x, (filter_x / filter_x.sum()).float(), padding=(b, a, 0, 0))
        y = filter2d(y, (filter_y / filter_y.sum()).float(), padding=(0, 0, b, a))
        rows = slice(max(b - iy, 0), H + b + a + min(-iy - a, 0))
        cols = slice(max(b - ix, 0), W + b + a + min(-ix - a, 0))
        z[:, :, zy0:zy1, zx0:zx1] = y[:, :, rows, cols]
    m = torch.zeros_like(x)
    mx0, my0 = max(ix + a, 0), max(iy + a, 0)
    mx1, my1 = min(ix - b, 0) + W, min(iy - b, 0) + H
    if mx0 < mx1 and my0 < my1:
        m[:, :, my0:my1, mx0:mx1] = 1
    return z, m


def affine_transformation(
    x: torch.Tensor, mat: torch.Tensor, up: int = 4, **filter_kwargs: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample ``x [B, C, H, W]`` by the (x, y) transform ``mat [3, 3]``, band-limited; image and mask."""
    B, _, H, W = x.shape
    f = affine_bandlimit_filter(mat, up=up, **filter_kwargs).to(x.device)
    p = f.shape[0] // 2
    theta = mat.inverse()
    theta[:2, 2] *= 2
    theta[0, 2] += 1 / up / W
    theta[1, 2] += 1 / up / H
    theta[0, :] *= W / (W + p / up * 2)
    theta[1, :] *= H / (H + p / up * 2)
    theta = theta[:2, :3].unsqueeze(0).repeat(B, 1, 1).to(x.device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = upsample2d(x, f, up=up, padding=p)
    z = F.grid_sample(y, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    m = torch.zeros_like(y)
    c = p * 2 + 1
    m[:, :, c:-c, c:-c] = 1
    m = F.grid_sample(m, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return z, m


def fractional_rotation(x: torch.Tensor, angle: float, a: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate ``x`` by ``angle`` (StyleGAN3's operator R_α), band-limited; image and mask."""
    return affine_transformation(x, rotation_matrix(angle), a=a, amax=a * 2)


def fractional_pseudo_rotation(x: torch.Tensor, angle: float, a: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Give ``x`` the spectrum of a rotated image without rotating it (operator R*_α); image and mask."""
    f = affine_bandlimit_filter(rotation_matrix(-angle), a=a, amax=a * 2, up=1).to(x.device)
    y = filter2d(x, f)
    m = torch.zeros_like(y)
    c = f.shape[0] // 2
    m[:, :, c:-c, c:-c] = 1
    return y, m


# ---------------------------------------------------------------------------- the metric


@torch.no_grad()
def equivariance_psnr(
    G: Any,
    kind: str,
    num_samples: int,
    labels: np.ndarray | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    translate_max: float = 0.125,
    rotate_max: float = 1.0,
    on_progress: Progress | None = None,
) -> float:
    """EQ-T (``'eqt_int'``), EQ-T_frac (``'eqt_frac'``) or EQ-R (``'eqr'``) of ``G`` in dB over ``num_samples``.

    Samples use seeds ``seed + i`` and ``labels[i]`` (class-conditional generators); the transforms are drawn
    from ``np.random.default_rng(seed)``, one per group of :data:`GROUP_SIZE`. ``translate_max`` is a fraction
    of the image size; ``rotate_max`` a fraction of π. Returns ``inf`` when the two sides agree exactly.
    """
    if kind not in KINDS:
        raise PolyinrError(f"unknown equivariance metric {kind!r}; use one of {', '.join(KINDS)}")
    G = G.uniform_coordinates()  # the frame and its transforms on one coordinate system (not a stored grid)
    R = G.img_resolution
    base = Grid.frame(R)
    step = base.row_step  # frame units per pixel
    rng = np.random.default_rng(seed)
    err_sum = torch.zeros((), dtype=torch.float64)
    mask_sum = torch.zeros((), dtype=torch.float64)
    done = 0
    for ws in iter_ws(G, range(seed, seed + num_samples), labels, device=device, batch_size=GROUP_SIZE):
        orig = G.synthesize(ws, base).float()
        if kind == "eqr":
            angle = float(rng.uniform(-1, 1)) * rotate_max * math.pi
            img = G.synthesize(ws, base.rotated(-angle)).float()
            ref, ref_mask = fractional_rotation(orig, angle)
            img, img_mask = fractional_pseudo_rotation(img, angle)
            mask = ref_mask * img_mask
        else:
            shift = rng.uniform(-translate_max, translate_max, size=2) * R  # (row, col) in pixels
            if kind == "eqt_int":
                shift = np.round(shift)
            img = G.synthesize(ws, base.translated(-shift[0] * step, -shift[1] * step)).float()
            if kind == "eqt_int":
                ref, mask = integer_translation(orig, int(shift[0]), int(shift[1]))
            else:
                ref, mask = fractional_translation(orig, float(shift[0]), float(shift[1]))
        err_sum += ((ref - img).square() * mask).double().sum().cpu()
        mask_sum += mask.double().sum().cpu()
        done += len(ws)
        if on_progress is not None:
            on_progress(f"{kind} samples", done, num_samples)
    if mask_sum == 0:
        raise PolyinrError("no valid pixels to compare: the image is too small for this equivariance metric")
    mse = float(err_sum / mask_sum)
    return math.inf if mse == 0 else 20 * math.log10(2) - 10 * math.log10(mse)
