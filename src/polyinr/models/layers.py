"""Layers shared by several generators: StyleGAN's equalised-learning-rate fully connected layer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # StyleGAN's bias_act gain for 'lrelu': keeps activations at unit variance


class EqualizedLinear(nn.Module):
    """StyleGAN's ``FullyConnectedLayer`` (Karras et al. 2018, equalised learning rate).

    The weight is stored as ``randn / lr_multiplier`` and scaled by ``lr_multiplier / sqrt(in_features)`` at run
    time, so Adam's effective step is ``lr · lr_multiplier`` for every layer whatever its fan-in. With
    ``activation='lrelu'`` the output is ``lrelu(x W^T + b, 0.2) · sqrt(2)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: str = "linear",  # 'linear' or 'lrelu'
        lr_multiplier: float = 1.0,  # scales the effective learning rate of this layer
        bias_init: float = 0.0,  # initial value of the bias, before the multiplier
    ) -> None:
        super().__init__()
        if activation not in ("linear", "lrelu"):
            raise ValueError(f"unknown activation {activation!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_multiplier))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., in_features] → [..., out_features]``."""
        weight = self.weight.to(x.dtype) * self.weight_gain
        bias = self.bias.to(x.dtype)
        if self.bias_gain != 1:
            bias = bias * self.bias_gain
        x = F.linear(x, weight, bias)
        if self.activation == "lrelu":
            x = F.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN
        return x

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, activation={self.activation}"
