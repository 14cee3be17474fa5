"""Exponential moving average of the generator (StyleGAN's G_ema), as a pure function of progress."""

from __future__ import annotations

import torch
from torch import nn


def ema_beta(batch_size: int, ema_kimg: float, cur_nimg: int, rampup: float | None) -> float:
    """Decay per step for a half-life of ``ema_kimg`` thousand images, shortened early on by ``rampup``.

    StyleGAN2-ADA: ``ema_nimg = min(ema_kimg·1000, cur_nimg·rampup)`` (rampup None = off) and
    ``beta = 0.5 ** (batch_size / ema_nimg)``.
    """
    ema_nimg = ema_kimg * 1000
    if rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """``ema ← model + beta · (ema − model)`` for parameters; buffers are copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)
