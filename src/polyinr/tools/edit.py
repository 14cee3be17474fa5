"""Latent edits and what the levels do: interpolation paths, style mixing and per-level heat maps.

These are the demonstrations of the Poly-INR paper (Singh et al., CVPR 2023) as functions returning tensors
and uint8 figures; :mod:`polyinr.tools.video` turns paths into videos and the CLI writes the figures.

- Interpolation: a looping walk through key latents (z or ws), linear or spherical.
- Style mixing: every level of a row source, except the chosen ``levels``, which come from a column source
  (StyleGAN's figure: column sources on top, row sources on the left, mixes in between).
- Heat maps: at every pixel, the magnitude of level ``i``'s coordinate term ``A_i X`` and of its output
  features, computed with the synthesis' own pieces so the maps show exactly what the network computes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.image_io import to_uint8
from polyinr.models.generator import CapabilityMissing, Generator, LevelMaps

INTERPOLATIONS = ("lerp", "slerp")

# ---------------------------------------------------------------------------- interpolation


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation along the last dimension of ``a``, ``b [..., D]``; lerp where they are parallel.

    The norm is interpolated linearly and the direction along the great circle, so vectors of equal norm stay
    on their sphere.
    """
    norm_a, norm_b = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    unit_a, unit_b = a / norm_a.clamp_min(1e-12), b / norm_b.clamp_min(1e-12)
    omega = (unit_a * unit_b).sum(dim=-1, keepdim=True).clamp(-1, 1).acos()  # [..., 1] angle between them
    sin_omega = omega.sin()
    parallel = sin_omega.abs() < 1e-6
    safe = torch.where(parallel, torch.ones_like(sin_omega), sin_omega)
    direction = (torch.sin((1 - t) * omega) * unit_a + torch.sin(t * omega) * unit_b) / safe
    direction = torch.where(parallel, torch.lerp(unit_a, unit_b, t), direction)
    return direction * torch.lerp(norm_a, norm_b, t)


def interpolate(a: torch.Tensor, b: torch.Tensor, t: float, kind: str = "lerp") -> torch.Tensor:
    """The point at fraction ``t`` from ``a`` to ``b`` (same shape, ``[..., D]``), ``kind`` 'lerp' or 'slerp'."""
    if kind == "lerp":
        return torch.lerp(a, b, t)
    if kind == "slerp":
        return slerp(a, b, t)
    raise PolyinrError(f"unknown interpolation {kind!r}; use one of {', '.join(INTERPOLATIONS)}")


def num_path_frames(num_keys: int, frames_per_step: int, loop: bool = True) -> int:
    """Frames of :func:`interpolation_path`: ``K·f`` when looping, ``(K − 1)·f + 1`` otherwise."""
    return num_keys * frames_per_step if loop else (num_keys - 1) * frames_per_step + 1


def interpolation_path(
    keys: torch.Tensor, frames_per_step: int, kind: str = "lerp", loop: bool = True
) -> Iterator[torch.Tensor]:
    """Walk through ``keys [K, ...]`` (interpolated along the last dimension): yields one ``[...]`` per frame.

    Frame ``k·f`` is key ``k`` exactly. Looping, the last step runs from the last key back towards the first
    and stops one frame before it, so the video repeats without a jump; otherwise the walk ends on the last key.
    """
    K = len(keys)
    if K < 2:
        raise PolyinrError(f"an interpolation needs at least 2 key latents, got {K}")
    if frames_per_step < 1:
        raise PolyinrError(f"frames per step must be at least 1, got {frames_per_step}")
    if kind not in INTERPOLATIONS:
        raise PolyinrError(f"unknown interpolation {kind!r}; use one of {', '.join(INTERPOLATIONS)}")
    steps = K if loop else K - 1
    for k in range(steps):
        a, b = keys[k], keys[(k + 1) % K]
        for j in range(frames_per_step):
            yield interpolate(a, b, j / frames_per_step, kind)
    if not loop:
        yield keys[-1]


# ---------------------------------------------------------------------------- style mixing


def check_levels(levels: Sequence[int], num_ws: int) -> list[int]:
    """``levels`` as a sorted list of distinct level indices in ``0..num_ws−1``; one-line errors otherwise."""
    if len(levels) == 0:
        raise PolyinrError("the level range is empty: give at least one level, e.g. 0-3")
    bad = sorted({i for i in levels if not 0 <= i < num_ws})
    if bad:
        raise PolyinrError(f"levels {bad} do not exist: this generator has levels 0..{num_ws - 1}")
    return sorted(set(levels))


def style_mix(row_ws: torch.Tensor, col_ws: torch.Tensor, levels: Sequence[int]) -> torch.Tensor:
    """``row_ws [R, L, D]``, ``col_ws [C, L, D]`` → ``[R, C, L, D]``: the row's ws with ``levels`` from the column."""
    if row_ws.ndim != 3 or col_ws.shape[1:] != row_ws.shape[1:]:
        raise PolyinrError(
            f"row and column ws must both be [N, L, D], got {tuple(row_ws.shape)} and {tuple(col_ws.shape)}"
        )
    R, L, _ = row_ws.shape
    C = len(col_ws)
    mixed = row_ws.unsqueeze(1).repeat(1, C, 1, 1)  # [R, C, L, D]
    chosen = check_levels(levels, L)
    mixed[:, :, chosen] = col_ws[None, :, chosen].expand(R, -1, -1, -1)
    return mixed


@torch.no_grad()
def style_mix_figure(
    G: Generator, row_ws: torch.Tensor, col_ws: torch.Tensor, levels: Sequence[int], grid: Grid | None = None
) -> np.ndarray:
    """StyleGAN's style-mixing figure, uint8 ``[(R+1)·H, (C+1)·W, 3]``.

    Top row: the column sources; left column: the row sources; cell ``(r, c)``: row source ``r`` with
    ``levels`` taken from column source ``c``. Every image is rendered on ``grid`` (default: the native frame).
    """
    mixable = G.style_mixing_range()
    if mixable is None:
        raise CapabilityMissing(f"{G.model_name} cannot mix styles")
    outside = sorted(set(levels) - set(mixable))
    if outside:
        raise PolyinrError(
            f"levels {outside} do not exist: {G.model_name} mixes levels {mixable.start}..{mixable.stop - 1}"
        )
    mixed = style_mix(row_ws, col_ws, levels)  # [R, C, L, D]
    R, C = mixed.shape[:2]
    rows = to_uint8(G.synthesize(row_ws, grid))  # [R, H, W, 3]
    cols = to_uint8(G.synthesize(col_ws, grid))  # [C, H, W, 3]
    cells = np.stack([to_uint8(G.synthesize(mixed[r], grid)) for r in range(R)])  # [R, C, H, W, 3]
    H, W = rows.shape[1:3]
    canvas = np.full(((R + 1) * H, (C + 1) * W, 3), 255, dtype=np.uint8)
    canvas[:H, W:] = cols.transpose(1, 0, 2, 3).reshape(H, C * W, 3)
    canvas[H:, :W] = rows.reshape(R * H, W, 3)
    canvas[H:, W:] = cells.transpose(0, 2, 1, 3, 4).reshape(R * H, C * W, 3)
    return canvas


# ---------------------------------------------------------------------------- heat maps


def level_maps(G: Generator, ws: torch.Tensor, grid: Grid | None = None, **options: Any) -> LevelMaps:
    """What each level of ``G`` computes at every pixel of ``grid`` (a generator capability: models without
    levels raise a one-line error); ``options`` go to the model's ``level_heatmaps``."""
    return G.level_heatmaps(ws, grid, **options)


# Viridis (matplotlib's perceptually uniform colormap), sampled at 9 evenly spaced points.
VIRIDIS = np.array(
    [
        [68, 1, 84],
        [72, 40, 120],
        [62, 73, 137],
        [49, 104, 142],
        [38, 130, 142],
        [31, 158, 137],
        [53, 183, 121],
        [110, 206, 88],
        [253, 231, 37],
    ],
    dtype=np.float64,
)


def colorize(values: np.ndarray | torch.Tensor) -> np.ndarray:
    """Values ``[H, W]`` in ``[0, 1]`` (clipped) → uint8 ``[H, W, 3]`` through viridis, linearly interpolated."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0) * (len(VIRIDIS) - 1)
    lo = np.minimum(np.floor(v).astype(np.int64), len(VIRIDIS) - 2)
    frac = (v - lo)[..., None]
    return np.round(VIRIDIS[lo] * (1 - frac) + VIRIDIS[lo + 1] * frac).astype(np.uint8)


def normalize_map(values: torch.Tensor) -> torch.Tensor:
    """Stretch a map ``[H, W]`` to ``[0, 1]`` between its minimum and maximum (a constant map becomes zeros)."""
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else torch.zeros_like(values)


def heatmap_figure(maps: LevelMaps, index: int = 0, scale: int | None = None) -> np.ndarray:
    """The labelled heat-map figure of sample ``index``: uint8 ``[rows, cols, 3]``.

    The image, then two rows of one panel per level (``|A_i X|`` on top, the level's features below), each
    stretched between its own minimum and maximum (printed under it). Panels are enlarged ``scale``× with
    nearest-neighbour sampling (default: enough to make them at least 96 pixels tall, so the labels fit).
    """
    L = maps.features.shape[1]
    image = to_uint8(maps.image[index : index + 1])[0]
    scale = max(1, math.ceil(96 / image.shape[0])) if scale is None else scale
    H, W = image.shape[0] * scale, image.shape[1] * scale
    font = ImageFont.load_default()
    text_h, gap = 14, 4
    block_h = text_h + H + text_h + gap  # row title, panels, labels
    fig = Image.new(
        "RGB", ((L + 1) * (W + gap) + gap, text_h + (1 + (maps.coord is not None)) * block_h), (255, 255, 255)
    )
    draw = ImageDraw.Draw(fig)
    draw.text((gap, 0), "levels: RMS over channels at each pixel", fill=(0, 0, 0), font=font)

    def paste(panel: np.ndarray, col: int, row: int, label: str) -> None:
        x, y = gap + col * (W + gap), text_h + row * block_h + text_h
        fig.paste(Image.fromarray(panel).resize((W, H), Image.Resampling.NEAREST), (x, y))
        draw.text((x, y + H + 1), label, fill=(0, 0, 0), font=font)

    paste(image, 0, 0, "image")
    rows = [("features x_i after level i", maps.features)]
    if maps.coord is not None:
        rows.insert(0, ("coordinate term |A_i X| of level i", maps.coord))
    for row, (title, values) in enumerate(rows):
        draw.text((gap + W + gap, text_h + row * block_h), title, fill=(0, 0, 0), font=font)
        for level in range(L):
            level_map = values[index, level].float().cpu()
            label = f"L{level} {float(level_map.min()):.3g}-{float(level_map.max()):.3g}"
            paste(colorize(normalize_map(level_map).numpy()), level + 1, row, label)
    return np.asarray(fig)
