"""Path-length regularisation (StyleGAN2, as StyleGAN-XL's ``training/loss.py`` applies it to its stem).

For fakes ``x = G(ws)`` and image-sized noise ``y ~ N(0, I) / √(H·W)``, the path length of each sample is
``‖∂(x·y)/∂ws‖`` (squared over ``w_dim``, averaged over the ``num_ws`` copies, square root); the penalty is its
squared distance to a running mean of all lengths seen so far (decay ``pl_decay``). The gradient is taken with
respect to ``ws`` only: no weight gradients are computed through it (their ``pl_no_weight_grad``); the penalty's
own backward pass then reaches every weight, as theirs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

PL_DECAY = 0.01  # the running mean's decay per micro-batch (StyleGAN2's and StyleGAN-XL's pl_decay)
PL_BATCH_SHRINK = 2  # the penalty runs on this fraction of each micro-batch (their pl_batch_shrink)


class PathLengthPenalty(nn.Module):
    """``(images [B, C, H, W], ws [B, num_ws, w_dim]) → penalty [B]``, updating the running mean of the path
    lengths (a buffer, so that a snapshot keeps it and a resumed run continues exactly)."""

    def __init__(self, decay: float = PL_DECAY) -> None:
        super().__init__()
        self.decay = decay
        self.register_buffer("pl_mean", torch.zeros([]))

    def forward(self, images: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        H, W = images.shape[-2:]
        noise = torch.randn_like(images) / math.sqrt(H * W)
        (grads,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)  # [B, num_ws, w_dim]
        lengths = grads.square().sum(dim=2).mean(dim=1).sqrt()  # [B]
        mean = self.pl_mean.lerp(lengths.mean(), self.decay)
        self.pl_mean.copy_(mean.detach())
        return (lengths - mean).square()
