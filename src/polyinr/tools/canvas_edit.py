"""InfinityGAN applications on a user's own images: outpainting and inbetweening by canvas inversion.

The images are placed on one canvas of the model's pixel lattice; the canvas's inputs (global latents, the
local latents of every cell, the noise of every layer) are optimised so that the canvas reproduces the images
where they sit, with the paper's losses (``configs/test/inversion_*.yaml``): pixel distance 10, perceptual
distance 10 (LPIPS when available offline, else a Laplacian-pyramid L1), noise regularisation 1000 (StyleGAN2's
autocorrelation penalty, noise renormalised after each step), priors 10 on the global and local latents (their
first two moments held at those of N(0, 1); the authors' texture-style prior, weight 0.01, is not used). The
rest of the canvas is then whatever the generator paints around them: outpainting (one image, one global latent)
or inbetweening (two images; their global latents fused spatially, centred on each image).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.models.generator import CanvasInputs, Generator
from polyinr.sampling import latents_from_seeds
from polyinr.tools.canvas import CanvasLatents
from polyinr.tools.invert import perceptual_distance, projector_lr, psnr

WEIGHTS = {"pixel": 10.0, "perceptual": 10.0, "noise": 1000.0, "global_prior": 10.0, "local_prior": 10.0}


@dataclass(frozen=True)
class Placement:
    """An image ``[1, 3, h, w]`` in ``[-1, 1]`` at lattice pixel ``(top, left)`` of the canvas."""

    image: torch.Tensor
    top: int
    left: int


@dataclass(frozen=True)
class CanvasInversion:
    image: torch.Tensor  # [1, 3, H, W]: the whole canvas
    psnr: list[float]  # dB, per placed image, over its region
    perceptual: str  # the perceptual distance used
    latents: CanvasLatents | None  # the canvas's inputs (one image: a canvas latent file), else None


def noise_regularisation(noise: torch.Tensor) -> torch.Tensor:
    """StyleGAN2's projector penalty: squared autocorrelation at one-pixel shifts, at every octave ≥ 8 px."""
    loss = noise.new_zeros([])
    while True:
        loss = loss + (noise * noise.roll(1, dims=3)).mean() ** 2 + (noise * noise.roll(1, dims=2)).mean() ** 2
        if min(noise.shape[2:]) <= 8:
            return loss
        noise = F.avg_pool2d(noise, 2)


def moment_prior(x: torch.Tensor) -> torch.Tensor:
    """Keeps ``x`` in the typical set of N(0, 1): ``mean² + (mean square − 1)²``."""
    return x.mean() ** 2 + (x.square().mean() - 1) ** 2


def lattice_window(G: Generator, top: int, left: int, height: int, width: int) -> Grid:
    step = 1.0 / (G.img_resolution - 1)
    return Grid.window(top * step, left * step, (top + height - 1) * step, (left + width - 1) * step, height, width)


def invert_canvas(
    G: Generator,
    placements: Sequence[Placement],
    size: tuple[int, int],
    num_steps: int = 1000,
    perceptual: str = "auto",
    seed: int = 0,
    blur: int = 255,
    device: torch.device | str = "cpu",
    on_step: Callable[[int, float], None] | None = None,
) -> CanvasInversion:
    """Optimise a ``size`` canvas (lattice pixels from (0, 0)) to reproduce ``placements``; render all of it."""
    if G.grid_support.kind != "canvas":
        raise PolyinrError(f"{G.model_name} has no canvas to invert into (InfinityGAN has)")
    H, W = size
    for p in placements:
        h, w = p.image.shape[2:]
        if p.top < 0 or p.left < 0 or p.top + h > H or p.left + w > W:
            raise PolyinrError(f"an image of {h}x{w} at ({p.top}, {p.left}) does not fit the {H}x{W} canvas")
    G = G.eval().requires_grad_(False)
    name, distance = perceptual_distance(perceptual, device)
    start = G.canvas_from_seeds([seed], lattice_window(G, 0, 0, H, W), device)
    local = start.local.clone().requires_grad_(True)
    noises = [n.clone().requires_grad_(True) for n in start.noises]
    z = latents_from_seeds(range(seed, seed + len(placements)), G.z_dim).to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([z, local, *noises], lr=0.1, betas=(0.9, 0.999))
    centres = [(p.top + p.image.shape[2] / 2, p.left + p.image.shape[3] / 2) for p in placements]

    def render(grid: Grid) -> torch.Tensor:
        canvas = CanvasInputs(local, start.coords, noises, origin=start.origin)
        ws = G.mapping(z)
        fusion = G.style_fusion(ws, centres, blur) if len(placements) > 1 else None
        return G.render_canvas(ws[:1], grid, canvas, fusion)

    for step in range(num_steps):
        for group in optimizer.param_groups:
            group["lr"] = projector_lr(step, num_steps)
        loss = WEIGHTS["global_prior"] * moment_prior(z) + WEIGHTS["local_prior"] * moment_prior(local)
        loss = loss + WEIGHTS["noise"] * sum(noise_regularisation(n) for n in noises)
        for p in placements:
            image = render(lattice_window(G, p.top, p.left, *p.image.shape[2:]))
            loss = loss + WEIGHTS["pixel"] * (image - p.image).square().mean()
            loss = loss + WEIGHTS["perceptual"] * distance(image, p.image).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for n in noises:
                n.sub_(n.mean()).div_(n.square().mean().sqrt() + 1e-8)
        if on_step is not None:
            on_step(step, float(loss.detach()))
    with torch.no_grad():
        whole = render(lattice_window(G, 0, 0, H, W))
        scores = [
            psnr(whole[..., p.top : p.top + p.image.shape[2], p.left : p.left + p.image.shape[3]], p.image)
            for p in placements
        ]
    latents = None
    if len(placements) == 1:
        latents = CanvasLatents(
            z.detach().unsqueeze(1).repeat(1, 2, 1), local.detach(), [n.detach() for n in noises], start.coords
        )
    return CanvasInversion(whole, scores, name, latents)
