"""Texture sticking: StyleGAN3's figure of averages over a small latent neighbourhood (Karras et al., NeurIPS 2021).

Fine detail that moves with the content blurs away when many nearby images are averaged; detail stuck to pixel
coordinates (StyleGAN2's aliasing) stays sharp in the average. For each seed this module renders

- a **latent walk**: ``num_frames`` frames along a small random walk in ``w`` around the seed's ``w_0``, the
  space StyleGAN3's own videos move through (their ``gen_video.py`` interpolates ``ws``), so the step means the
  same for every model: a move of the synthesis' input, not of a mapping's input scale. The walk is
  ``w_t = w_0 + radius · σ_w ⊙ (ε_1 + … + ε_t) / √T`` with ``ε_s ~ N(0, I)``, so its last frame lies about
  ``radius`` standard deviations of ``w`` (per dimension and ``ws`` index, ``σ_w`` over the generator's
  samples) from ``w_0``; one ``ε`` moves every ``ws`` index, so ``ws`` that repeat one ``w`` keep doing so;
- **translated frames**, where the generator's grids allow it: ``w_0`` on the default view shifted by random
  offsets of up to ``max_shift`` pixels (whole pixels where the model accepts only those). An equivariant
  generator moves everything, so their average blurs; details tied to pixels stay put;

and reports, per average, how much fine detail survives it: :func:`high_frequency_energy` of the average over
that of one frame, the mean over the averaged frames (so a frame that happens to be smooth or busy does not sway
it). The energy is a squared norm, so the ratio lies in ``[0, 1]``: 0 = every detail moved, 1 = every detail stuck.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.image_io import check_memory, image_grid, to_uint8
from polyinr.models.generator import Generator
from polyinr.sampling import iter_ws, ws_for

HALF_NYQUIST = 0.25  # cycles per pixel: the high-pass keeps frequencies above half the Nyquist rate (0.5)
SPREAD_SAMPLES = 1000  # samples of w whose per-dimension standard deviation scales the walk


@dataclass(frozen=True)
class SeedSticking:
    """One seed's images ``[C, H, W]`` in ``[-1, 1]`` and detail ratios (None where the model cannot translate)."""

    seed: int
    frame: torch.Tensor  # w_0 on the default view
    walk_average: torch.Tensor  # mean of the latent-walk frames
    translation_average: torch.Tensor | None  # mean of the translated frames
    walk_ratio: float  # high-frequency energy of walk_average over the mean of its frames'
    translation_ratio: float | None


@dataclass(frozen=True)
class Sticking:
    """Texture sticking over seeds: each seed's images and ratios, their means, and why translation is missing."""

    seeds: list[SeedSticking]
    walk_ratio: float  # mean over seeds
    translation_ratio: float | None
    translation_refusal: str | None  # the generator's reason when it cannot render translated frames


# ---------------------------------------------------------------------------- the measure


def high_frequency_energy(images: torch.Tensor, cutoff: float = HALF_NYQUIST) -> torch.Tensor:
    """Energy above ``cutoff`` cycles per pixel of images ``[B, C, H, W]`` → ``[B]``.

    Each channel has its mean removed and is multiplied by a separable Hann window (so the FFT's wrap-around
    does not turn the borders into false edges); the energy is the sum of ``|FFT|²`` over all channels and the
    frequencies ``(f_y, f_x)`` with ``√(f_y² + f_x²) > cutoff``, divided by the number of pixels.
    """
    H, W = images.shape[-2:]
    x = images.double()
    x = x - x.mean(dim=(2, 3), keepdim=True)
    window = torch.hann_window(H, periodic=False, dtype=x.dtype, device=x.device)[:, None] * torch.hann_window(
        W, periodic=False, dtype=x.dtype, device=x.device
    )  # [H, W]
    power = torch.fft.fft2(x * window).abs().square()  # [B, C, H, W]
    fy = torch.fft.fftfreq(H, dtype=x.dtype, device=x.device)[:, None]  # cycles per pixel
    fx = torch.fft.fftfreq(W, dtype=x.dtype, device=x.device)[None, :]
    high = (fy.square() + fx.square()).sqrt() > cutoff  # [H, W]
    return (power * high).sum(dim=(1, 2, 3)) / (H * W)


def detail_ratio(average: torch.Tensor, frame_energy: float) -> float:
    """:func:`high_frequency_energy` of ``average [C, H, W]`` over ``frame_energy``, that of one frame (the mean
    over the averaged frames)."""
    if frame_energy <= 0:
        raise PolyinrError("the frames have no detail above half the Nyquist rate, so nothing can stick to pixels")
    return float(high_frequency_energy(average[None])[0]) / frame_energy


# ---------------------------------------------------------------------------- the frames


@torch.no_grad()
def w_spread(G: Generator, class_idx: int | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard deviation ``[num_ws, w_dim]`` of ``ws`` over :data:`SPREAD_SAMPLES` seeds (of ``class_idx``)."""
    ws = torch.cat(list(iter_ws(G, range(SPREAD_SAMPLES), class_idx, device=device, batch_size=250)))
    return ws.std(dim=0)  # [num_ws, w_dim]


def walk_offsets(spread: torch.Tensor, num_frames: int, radius: float, generator: torch.Generator) -> torch.Tensor:
    """The random walk's offsets from ``ws_0`` for ``spread [num_ws, w_dim]``, ``[num_frames, num_ws, w_dim]``:
    ``radius · spread ⊙ cumsum(ε) / √T``, one ``ε [w_dim]`` per step for every ``ws`` index."""
    steps = torch.randn(num_frames, spread.shape[1], generator=generator, dtype=torch.float64)  # [T, w_dim]
    walk = steps.cumsum(dim=0)[:, None] / math.sqrt(num_frames)  # [T, 1, w_dim]
    return (radius * spread.double().cpu() * walk).float()


def translation_grids(
    G: Generator, view: Grid, num_frames: int, max_shift: float, generator: torch.Generator
) -> tuple[list[Grid] | None, str | None]:
    """``view`` shifted by ``num_frames`` random offsets, uniform in ``±max_shift`` pixels per axis, and None;
    offsets rounded to whole pixels where the model accepts only those; ``(None, reason)`` when it accepts neither."""
    shifts = (torch.rand(num_frames, 2, generator=generator, dtype=torch.float64) * 2 - 1) * max_shift
    refusal = None
    for offsets in (shifts, shifts.round()):
        grids = [view.translated(dr * view.row_step, dc * view.col_step) for dr, dc in offsets.tolist()]
        refusal = next(filter(None, (G.grid_support.refusal(G, grid) for grid in grids)), None)
        if refusal is None:
            return grids, None
    return None, refusal


# ---------------------------------------------------------------------------- the experiment


@torch.no_grad()
def texture_sticking(
    G: Generator,
    seeds: Sequence[int],
    class_idx: int | None = None,
    num_frames: int = 64,
    radius: float = 0.25,
    max_shift: float = 2.0,
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    on_frames: Callable[[int], None] | None = None,
) -> Sticking:
    """StyleGAN3's texture-sticking experiment for ``seeds`` (see the module docstring).

    ``class_idx``: the class of every seed, for a conditional generator. ``radius``: the walk's
    reach in standard deviations of ``w``; ``max_shift``: the largest translation, in pixels. A seed's walk and
    shifts come from its own random generator, so a seed gives the same result among any other seeds.
    ``on_frames(n)`` follows every ``n`` frames rendered (``len(seeds) · (1 + 2·num_frames)`` in all).
    """
    if len(seeds) == 0:
        raise PolyinrError("give at least one seed")
    if num_frames < 2:
        raise PolyinrError(f"an average needs at least 2 frames, got {num_frames}")
    if not (math.isfinite(radius) and radius > 0):
        raise PolyinrError(f"the walk's radius must be a positive number, got {radius}")
    if not (math.isfinite(max_shift) and max_shift > 0):
        raise PolyinrError(f"the largest translation must be a positive number of pixels, got {max_shift}")
    check_memory(num_frames * G.w_dim * (8 + 4 * G.num_ws), f"a walk of {num_frames:,} frames", "use fewer frames")
    report = on_frames or (lambda n: None)
    view = G.native_grid()
    w0 = ws_for(G, seeds=list(seeds), classes=class_idx, device=device)  # [N, num_ws, w_dim]
    spread = w_spread(G, class_idx, device)
    results = []
    for seed, ws in zip(seeds, w0):
        rng = torch.Generator().manual_seed(int(seed))
        frame = G.synthesize(ws[None], view)[0].float()  # [C, H, W]
        report(1)
        walk = ws[None] + walk_offsets(spread, num_frames, radius, rng).to(ws.device)  # [T, num_ws, w_dim]
        walk_average, walk_ratio = _average(G.synthesize(batch, view) for batch in walk.split(batch_size))
        report(num_frames)
        grids, refusal = translation_grids(G, view, num_frames, max_shift, rng)
        translation_average = translation_ratio = None
        if grids is not None:
            translation_average, translation_ratio = _average(G.synthesize(ws[None], grid) for grid in grids)
            report(num_frames)
        results.append(
            SeedSticking(int(seed), frame.cpu(), walk_average, translation_average, walk_ratio, translation_ratio)
        )
    translated = [r.translation_ratio for r in results if r.translation_ratio is not None]
    return Sticking(
        seeds=results,
        walk_ratio=float(np.mean([r.walk_ratio for r in results])),
        translation_ratio=float(np.mean(translated)) if translated else None,
        translation_refusal=refusal,
    )


def _average(batches: Iterable[torch.Tensor]) -> tuple[torch.Tensor, float]:
    """The mean image ``[C, H, W]`` (on the CPU) of frame batches ``[b, C, H, W]``, and its :func:`detail_ratio`."""
    total, energy, count = 0.0, 0.0, 0
    for frames in batches:
        total = total + frames.float().sum(dim=0)
        energy += float(high_frequency_energy(frames).sum())
        count += len(frames)
    average = (total / count).cpu()
    return average, detail_ratio(average, energy / count)


def sticking_sheet(sticking: Sticking) -> np.ndarray:
    """uint8 ``[N·H, K·W, 3]``: one row per seed — its frame, the walk's average, the translated frames' average
    (``K = 3``; 2 where the model cannot translate)."""
    rows = []
    for r in sticking.seeds:
        rows += [r.frame, r.walk_average] + ([] if r.translation_average is None else [r.translation_average])
    images = to_uint8(torch.stack(rows))  # [N·K, H, W, 3]
    cols = len(rows) // len(sticking.seeds)
    return image_grid(list(images), cols=cols, rows=len(sticking.seeds))
