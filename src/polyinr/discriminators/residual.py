"""StyleGAN2's residual discriminator (Karras et al., CVPR 2020; conditioning as in StyleGAN2-ADA, 2020).

Needs no pretrained weights. Inputs may first pass through DiffAugment (``diffaug``, off by default).
``FromRGB`` (1×1 conv) at the input resolution, then one residual block per halving down to 4×4::

    x ← (skip(x) + conv1↓(conv0(x))) · √½      skip: 1×1 conv ↓, no bias;  conv0, conv1: 3×3 conv + lrelu

Each 2× downsampling blurs with the ``[1, 3, 3, 1]`` filter and takes a stride-2 convolution. The 4×4
epilogue appends the minibatch standard deviation (groups of ``mbstd_group`` samples, or of one class with
``mbstd_by_class``; one channel), then a 3×3 conv, a fully connected layer and the output layer. Channels at
resolution ``r`` are ``min(channel_base // r, channel_max)``. Every layer has an equalised learning rate and
lrelu layers a gain of √2. A conditional discriminator maps the label through its class table
(``[num_classes, embed_dim]``, normalised) and two lrelu layers to ``cmap [B, cmap_dim]`` (``cmap_dim`` = the
4×4 channels) and projects: ``logit = (out · cmap).sum() / √cmap_dim``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from polyinr.discriminators.augment import diff_augment, parse_policy
from polyinr.discriminators.base import Discriminator
from polyinr.discriminators.registry import register_discriminator
from polyinr.errors import PolyinrError
from polyinr.models.layers import LRELU_GAIN, LRELU_SLOPE, EqualizedLinear
from polyinr.models.mapping import normalize_2nd_moment

MAPPING_LAYERS = 2  # lrelu layers from the class embedding to cmap
MAPPING_LR_MULTIPLIER = 0.01  # StyleGAN2-ADA's value for the discriminator's label mapping


@dataclass(frozen=True)
class ResidualDiscriminatorConfig:
    img_resolution: int = 32  # input size H = W in pixels, ≥ 8; filled from the data (see ResidualDiscriminator)
    num_classes: int = 0  # 0 = unconditional; filled from the data
    channel_base: int = 4096  # channels at resolution r = min(channel_base // r, channel_max)
    channel_max: int = 512  # upper bound on the channels of any layer
    mbstd_group: int = 4  # samples per minibatch-stddev group (the largest divisor of the batch ≤ this)
    embed_dim: int = 320  # width of the class table (320 fits EfficientNet-lite0 class embeddings)
    aux_outputs: int = 0  # extra regression outputs (InfinityGAN's patch position) from the epilogue; 0 = none
    diffaug: str | None = None  # DiffAugment policy applied to every input (real and generated); None = none
    mbstd_by_class: bool = False  # conditional D: one stddev group per class of the batch (unconditional: unused)

    def __post_init__(self) -> None:
        parse_policy(self.diffaug)
        R = self.img_resolution
        if R < 8:
            raise PolyinrError(f"the residual discriminator needs a resolution ≥ 8, got {R}")
        if self.channel_base < R or self.channel_max < 1:
            raise PolyinrError(
                f"channel_base must be ≥ the resolution ({R}) and channel_max ≥ 1, "
                f"got {self.channel_base} and {self.channel_max}"
            )
        if self.mbstd_group < 1 or self.embed_dim < 1 or self.num_classes < 0 or self.aux_outputs < 0:
            raise PolyinrError("mbstd_group and embed_dim must be ≥ 1, num_classes and aux_outputs ≥ 0")


class Blur(nn.Module):
    """Depthwise ``[1, 3, 3, 1]`` ⊗ ``[1, 3, 3, 1]`` / 64 filter, zero padding ``pad`` on every side."""

    def __init__(self, pad: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
        self.register_buffer("kernel", (taps[:, None] * taps[None, :] / 64).view(1, 1, 4, 4), persistent=False)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W] → [B, C, H + 2·pad − 3, W + 2·pad − 3]``."""
        C = x.shape[1]
        kernel = self.kernel.to(x.dtype).expand(C, 1, 4, 4)
        return F.conv2d(F.pad(x, (self.pad,) * 4), kernel, groups=C)


class EqualizedConv2d(nn.Module):
    """Convolution with an equalised learning rate: weight ``randn``, scaled by ``1/sqrt(in·k²)`` at run time.

    ``down=True`` halves the resolution (blur, then stride 2); ``activation='lrelu'`` applies
    ``lrelu(·, 0.2)·√2``; the result is multiplied by ``gain``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,  # odd
        bias: bool = True,
        activation: str = "linear",  # 'linear' or 'lrelu'
        down: bool = False,
        gain: float = 1.0,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.activation = activation
        self.gain = gain * (LRELU_GAIN if activation == "lrelu" else 1.0)
        # Downsampling: pad k//2 + 1 and blur (size → size + 2·(k//2) − 1), then a stride-2 conv → size / 2.
        self.blur = Blur(kernel_size // 2 + 1) if down else None
        self.stride = 2 if down else 1
        self.padding = 0 if down else kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in, H, W] → [B, out, H, W]`` (``[B, out, H/2, W/2]`` when downsampling)."""
        if self.blur is not None:
            x = self.blur(x)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        x = F.conv2d(x, (self.weight * self.weight_gain).to(x.dtype), bias, stride=self.stride, padding=self.padding)
        if self.activation == "lrelu":
            x = F.leaky_relu(x, LRELU_SLOPE)
        return x * self.gain if self.gain != 1 else x

    def extra_repr(self) -> str:
        out_channels, in_channels, k, _ = self.weight.shape
        return f"{in_channels}→{out_channels}, k={k}, {self.activation}, down={self.blur is not None}"


class ResidualBlock(nn.Module):
    """``[B, C_in, r, r] → [B, C_out, r/2, r/2]``: ``(skip(x) + conv1↓(conv0(x))) · √½``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, activation="lrelu", down=True, gain=math.sqrt(0.5))
        self.skip = EqualizedConv2d(in_channels, out_channels, 1, bias=False, down=True, gain=math.sqrt(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.conv1(self.conv0(x))


def minibatch_std(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """Append the minibatch standard deviation as one channel: ``[B, C, H, W] → [B, C + 1, H, W]``.

    Samples are split into groups of ``G`` (the largest divisor of ``B`` that is ≤ ``group_size``); sample
    ``i`` belongs to group ``i mod (B / G)``. The new channel is the mean over channels and pixels of the
    per-feature standard deviation within the sample's group.
    """
    B, C, H, W = x.shape
    G = max(g for g in range(1, min(group_size, B) + 1) if B % g == 0)
    y = x.reshape(G, B // G, C, H, W)  # [G, n, C, H, W]
    y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()  # [n, C, H, W] stddev over each group
    y = y.mean(dim=(1, 2, 3)).reshape(B // G, 1, 1, 1)  # [n, 1, 1, 1]
    return torch.cat([x, y.repeat(G, 1, H, W)], dim=1)  # [B, C + 1, H, W]


def class_minibatch_std(x: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """:func:`minibatch_std` with one group per class: ``[B, C, H, W]``, labels ``[B]`` → ``[B, C + 1, H, W]``.

    The new channel of sample ``i`` is the mean over channels and pixels of the per-feature standard deviation
    over the batch's samples of ``i``'s class (0 + ε for a class seen once). Groups of mixed classes show the
    spread between classes, which a generator drawing one prototype per class matches; groups of one class
    show the spread within it, which such a generator lacks.
    """
    B, C, H, W = x.shape
    one_hot = F.one_hot(labels, num_classes).to(x.dtype)  # [B, K]
    count = one_hot.sum(dim=0).clamp(min=1)[:, None]  # [K, 1]
    flat = x.reshape(B, C * H * W)
    mean = one_hot.T @ flat / count  # [K, C·H·W]
    var = one_hot.T @ (flat - mean[labels]).square() / count  # [K, C·H·W]
    std = var.add(1e-8).sqrt().mean(dim=1)  # [K]
    return torch.cat([x, std[labels].reshape(B, 1, 1, 1).expand(B, 1, H, W)], dim=1)  # [B, C + 1, H, W]


@register_discriminator("residual", ResidualDiscriminatorConfig)
class ResidualDiscriminator(Discriminator):
    """StyleGAN2's residual discriminator: ``images [B, 3, R, R], labels [B] | None → logits [B, 1]``.

    The network runs at the power of two nearest R; other sizes (InfinityGAN's odd patches) are resized to it
    bilinearly first.
    """

    def __init__(self, cfg: ResidualDiscriminatorConfig) -> None:
        super().__init__(cfg)
        R = 2 ** round(math.log2(cfg.img_resolution))  # the network's resolution: the nearest power of two
        self.net_resolution = R
        resolutions = [2**i for i in range(int(math.log2(R)), 1, -1)]  # R, R/2, …, 4

        def channels(res: int) -> int:
            return min(cfg.channel_base // res, cfg.channel_max)

        self.from_rgb = EqualizedConv2d(3, channels(R), 1, activation="lrelu")
        self.blocks = nn.ModuleDict(
            {f"b{res}": ResidualBlock(channels(res), channels(res // 2)) for res in resolutions[:-1]}
        )
        C = channels(4)
        self.epilogue_conv = EqualizedConv2d(C + 1, C, 3, activation="lrelu")
        self.epilogue_fc = EqualizedLinear(C * 4 * 4, C, activation="lrelu")
        self.cmap_dim = C if cfg.num_classes > 0 else 0
        self.out = EqualizedLinear(C, self.cmap_dim or 1)
        self.aux = None  # the authors' InfinityGAN `coord_linear`: two layers from the flattened epilogue features
        if cfg.aux_outputs > 0:
            self.aux = nn.Sequential(
                EqualizedLinear(C * 4 * 4, C, activation="lrelu"), EqualizedLinear(C, cfg.aux_outputs)
            )
        if cfg.num_classes > 0:
            self.embed = nn.Embedding(cfg.num_classes, cfg.embed_dim)  # [num_classes, embed_dim]
            self.label_mapping = nn.Sequential(
                *(
                    EqualizedLinear(
                        cfg.embed_dim if i == 0 else C, C, activation="lrelu", lr_multiplier=MAPPING_LR_MULTIPLIER
                    )
                    for i in range(MAPPING_LAYERS)
                )
            )
        else:
            self.embed = None
            self.label_mapping = None

    def set_class_embeddings(self, table: torch.Tensor) -> None:
        """Start the class table from a pretrained one, ``[num_classes, embed_dim]`` (fine-tuned afterwards)."""
        self.check_class_table(table, self.cfg.embed_dim)
        with torch.no_grad():
            self.embed.weight.copy_(table)

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None, aux: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``images [B, 3, R, R]`` in ``[-1, 1]``, ``labels [B]`` (conditional only) → ``logits [B, 1]``; with
        ``aux`` also the auxiliary predictions ``[B, aux_outputs]``."""
        labels = self.check_inputs(images, labels)
        if self.net_resolution != self.cfg.img_resolution:  # e.g. InfinityGAN's odd patch sizes (101 → 128)
            images = F.interpolate(
                images,
                size=self.net_resolution,
                mode="bilinear",
                align_corners=False,
                antialias=self.net_resolution < self.cfg.img_resolution,
            )
        x = self.from_rgb(diff_augment(images, self.cfg.diffaug))  # [B, C_R, R, R]
        for block in self.blocks.values():
            x = block(x)  # halves the resolution
        if self.cfg.mbstd_by_class and labels is not None:
            x = class_minibatch_std(x, labels, self.cfg.num_classes)  # [B, C + 1, 4, 4]
        else:
            x = minibatch_std(x, self.cfg.mbstd_group)  # [B, C + 1, 4, 4]
        features = self.epilogue_conv(x).flatten(1)  # [B, C·4·4]
        x = self.epilogue_fc(features)  # [B, C]
        x = self.out(x)  # [B, cmap_dim or 1]
        if self.embed is not None:
            cmap = self.label_mapping(normalize_2nd_moment(self.embed(labels)))  # [B, cmap_dim]
            x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)  # [B, 1]
        if aux:
            if self.aux is None:
                raise PolyinrError("this discriminator has no auxiliary outputs (aux_outputs = 0)")
            return x, self.aux(features)
        return x
