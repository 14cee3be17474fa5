"""DiffAugment: differentiable augmentation for data-efficient GAN training (Zhao et al., NeurIPS 2020).

The discriminator sees real and generated images through the same random transformations, and every
transformation is differentiable with respect to the images, so the generator's gradient passes through it.
Images are in the discriminator's range ``[-1, 1]``; each sample gets its own draw. Policies, applied in the
order they are named:

- ``color``: brightness ``+ U(-0.5, 0.5)``; saturation ``× U(0, 2)`` about each pixel's channel mean;
  contrast ``× U(0.5, 1.5)`` about the image mean;
- ``translation``: an integer shift of up to ``translation_ratio`` of the height and of the width in each
  direction, the uncovered pixels set to 0;
- ``cutout``: a ``cutout_ratio·H × cutout_ratio·W`` rectangle set to 0, centred on a uniformly random pixel
  (clipped by the border).

Random numbers come from ``generator`` when given (drawn on its device), else from the global RNG of the
images' device, so a training loop can make the draws reproducible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from polyinr.errors import PolyinrError

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """``'color,translation'`` → ``('color', 'translation')``; None or ``''`` → ``()``; unknown names → error."""
    names = tuple(p.strip() for p in (policy or "").split(",") if p.strip())
    for name in names:
        if name not in POLICIES:
            raise PolyinrError(f"unknown DiffAugment policy {name!r}; policies: {', '.join(POLICIES)}")
    return names


def diff_augment(
    x: torch.Tensor,
    policy: str | None = "color,translation,cutout",
    translation_ratio: float = 0.125,
    cutout_ratio: float = 0.2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Augment images ``[B, C, H, W]`` (in ``[-1, 1]``) → ``[B, C, H, W]``, differentiably w.r.t. ``x``."""
    names = parse_policy(policy)
    if x.ndim != 4:
        raise PolyinrError(f"DiffAugment expects images [B, C, H, W], got {tuple(x.shape)}")
    for name in names:
        if name == "color":
            x = _color(x, generator)
        elif name == "translation":
            x = _translation(x, translation_ratio, generator)
        else:
            x = _cutout(x, cutout_ratio, generator)
    return x


def _rand(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``U(0, 1)`` per sample, ``[B, 1, 1, 1]`` in ``x``'s dtype and device."""
    device = generator.device if generator is not None else x.device
    u = torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=device)
    return u.to(device=x.device, dtype=x.dtype)


def _randint(low: int, high: int, n: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Integers in ``[low, high)`` per sample, ``[n, 1, 1]`` (long, on ``x``'s device)."""
    device = generator.device if generator is not None else x.device
    return torch.randint(low, high, (n, 1, 1), generator=generator, device=device).to(x.device)


def _color(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    x = x + (_rand(x, generator) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)  # [B, 1, H, W]
    x = (x - mean) * (_rand(x, generator) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # [B, 1, 1, 1]
    return (x - mean) * (_rand(x, generator) + 0.5) + mean  # contrast


def _translation(x: torch.Tensor, ratio: float, generator: torch.Generator | None) -> torch.Tensor:
    B, C, H, W = x.shape
    max_dy, max_dx = int(H * ratio + 0.5), int(W * ratio + 0.5)
    dy = _randint(-max_dy, max_dy + 1, B, x, generator)  # [B, 1, 1]
    dx = _randint(-max_dx, max_dx + 1, B, x, generator)
    # Output pixel (r, c) reads source pixel (r + dy, c + dx) of the image padded by one zero pixel; sources
    # beyond the image are clamped onto that zero border.
    rows = (torch.arange(H, device=x.device).view(1, H, 1) + dy + 1).clamp(0, H + 1)  # [B, H, 1]
    cols = (torch.arange(W, device=x.device).view(1, 1, W) + dx + 1).clamp(0, W + 1)  # [B, 1, W]
    index = (rows * (W + 2) + cols).view(B, 1, H * W).expand(B, C, H * W)  # [B, C, H·W]
    padded = F.pad(x, (1, 1, 1, 1)).flatten(2)  # [B, C, (H+2)·(W+2)]
    return padded.gather(2, index).view(B, C, H, W)


def _cutout(x: torch.Tensor, ratio: float, generator: torch.Generator | None) -> torch.Tensor:
    B, _, H, W = x.shape
    h, w = int(H * ratio + 0.5), int(W * ratio + 0.5)
    top = _randint(0, H + (1 - h % 2), B, x, generator) - h // 2  # [B, 1, 1]
    left = _randint(0, W + (1 - w % 2), B, x, generator) - w // 2
    rows = torch.arange(H, device=x.device).view(1, H, 1)
    cols = torch.arange(W, device=x.device).view(1, 1, W)
    inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)  # [B, H, W]
    return x * (~inside).unsqueeze(1).to(x.dtype)
