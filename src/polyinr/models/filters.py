"""Resampling filters shared by the StyleGAN generators (StyleGAN2's ``[1, 3, 3, 1]``, StyleGAN3's Kaiser sincs).

NVIDIA's ``upfirdn2d`` upsamples by inserting zeros, padding and convolving; the same samples come out of one
strided transposed convolution per axis, which never multiplies the inserted zeros (:func:`upsample_1d`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def upsample_1d(x: torch.Tensor, f: torch.Tensor, up: int, crop: int, dim: int) -> torch.Tensor:
    """Zero-insert ``x`` by ``up`` along ``dim`` (2 = rows, 3 = columns), convolve with ``f`` and drop ``crop``
    samples at both ends of the full output, as one strided transposed convolution (polyphase: the inserted
    zeros are never multiplied): length ``(L − 1)·up + K − 2·crop``. ``x [B, C, H, W]``, ``f [K]``."""
    C, K = x.shape[1], f.numel()
    shape, stride, padding = ((C, 1, K, 1), (up, 1), (crop, 0)) if dim == 2 else ((C, 1, 1, K), (1, up), (0, crop))
    return F.conv_transpose2d(x, f.view(shape[1:]).expand(shape), stride=stride, padding=padding, groups=C)
