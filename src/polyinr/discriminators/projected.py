"""The projected discriminator (Sauer et al., Projected GANs, NeurIPS 2021; as configured in StyleGAN-XL, 2022).

Real and generated images are judged in the feature spaces of frozen, pretrained networks. For each feature
network (a *branch*; the authors use ``tf_efficientnet_lite0`` and ``deit_base_distilled_patch16_224``):

1. DiffAugment (``color, translation, cutout``), drawn independently for each branch;
2. ``[-1, 1] → [0, 1]``, the network's own normalisation, bilinear resize to 224 when the images are smaller
   (``interp224``; always for a ViT);
3. four feature maps from the frozen network (:mod:`~polyinr.discriminators.feature_networks`); a ViT's
   14×14 maps are first reassembled into a pyramid at 4×, 2×, 1×, ½× by random 1×1 convs followed by a
   transposed conv (×4, ×2), nothing, or a stride-2 3×3 conv (×½), to ``embed_dim · (⅛, ¼, ½, 1)`` channels;
4. random, frozen mixing: cross-channel (1×1 convs to 64, 128, 256, 512 channels) and cross-scale, top-down
   from the coarsest map: add the coarser fused map, upsample ×2 (bilinear, ``align_corners=True`` as the
   authors' ``FeatureFusionBlock``), 1×1 conv — giving maps of 64, 64, 128, 256 channels at twice each stage's
   resolution (112, 56, 28, 14 for a 224 input);
5. one small trainable discriminator per map: spectral-normalised 4×4 stride-2 convs, BatchNorm and
   LeakyReLU(0.2), then a spectral-normalised 4×4 conv to a patch logit map. The number of stride-2 convs
   and their widths are those that bring the map the network gives for a ``HEAD_NOMINAL_RESOLUTION`` (256)
   input down to 8×8 — the authors size their heads from a 256² probe whatever the image size — so larger
   inputs keep the authors' depth and give larger logit maps (13×13 at 512²). A
   conditional head outputs ``cmap_dim = 64`` channels instead and projects them onto its class embedding
   (its own table ``[num_classes, embed_dim]``, started from a pretrained one by :meth:`set_class_embeddings`,
   through an lrelu layer ``embed_dim → 64``): ``logit = Σ_c h_c · cmap_c / √64``.

The logits of every head of every branch are flattened and concatenated: ``[B, K]``;
:meth:`ProjectedDiscriminator.split_logits` cuts them back into one group per branch, which the losses
average separately and sum (the authors' weighting: every feature network counts the same). Only the heads and
their class tables / projections are trainable; the feature networks and random projections are frozen and
stay in eval mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from polyinr.discriminators.augment import diff_augment, parse_policy
from polyinr.discriminators.base import Discriminator
from polyinr.discriminators.feature_networks import (
    INTERP_SIZE,
    NUM_STAGES,
    FeatureNetwork,
    FrozenModule,
    create_feature_network,
)
from polyinr.discriminators.registry import register_discriminator
from polyinr.errors import PolyinrError
from polyinr.models.layers import LRELU_SLOPE, EqualizedLinear

AUTHORS_BACKBONES = ("tf_efficientnet_lite0", "deit_base_distilled_patch16_224")
VIT_PYRAMID_DIVISORS = (8, 4, 2, 1)  # a ViT's reassembled maps have embed_dim / these channels (96 … 768)
MIXING_CHANNELS = (64, 128, 256, 512)  # cross-channel mixing, finest stage first
CMAP_DIM = 64  # channels a conditional head projects onto its class embedding
HEAD_END_SIZE = 8  # heads downsample the map of a nominal input until it is at most this size
HEAD_NOMINAL_RESOLUTION = 256  # heads are sized from the maps of an input this large (the authors' calc_dims)
HEAD_CHANNELS = {4: 512, 8: 512, 16: 256, 32: 128, 64: 64, 128: 64, 256: 32, 512: 16, 1024: 8}  # by map size


@dataclass(frozen=True)
class ProjectedDiscriminatorConfig:
    img_resolution: int = 256  # input size H = W in pixels (≥ 8); filled from the data
    num_classes: int = 0  # 0 = unconditional; filled from the data
    backbones: tuple[str, ...] = AUTHORS_BACKBONES  # timm names of the frozen feature networks, one branch each
    pretrained: bool = True  # download timm's pretrained weights; False = random (a file in `weights` wins)
    weights: dict[str, str] | None = None  # backbone name → local weights file (safetensors / state dict)
    diffaug: str | None = "color,translation,cutout"  # DiffAugment policy of every branch; None or "" = none
    interp224: bool | None = None  # resize CNN inputs to 224; None = when img_resolution < 224 (ViTs: always)
    embed_dim: int = 320  # width of the heads' class tables (320 fits EfficientNet-lite0 class embeddings)

    def __post_init__(self) -> None:
        backbones = (self.backbones,) if isinstance(self.backbones, str) else tuple(self.backbones)
        object.__setattr__(self, "backbones", backbones)
        if not backbones:
            raise PolyinrError("the projected discriminator needs at least one backbone")
        if self.img_resolution < 8 or self.num_classes < 0 or self.embed_dim < 1:
            raise PolyinrError(
                f"the projected discriminator needs a resolution ≥ 8, num_classes ≥ 0 and embed_dim ≥ 1, "
                f"got {self.img_resolution}, {self.num_classes}, {self.embed_dim}"
            )
        unused = sorted(set(self.weights or {}) - set(backbones))
        if unused:
            raise PolyinrError(
                f"weights given for {', '.join(unused)}, which is not among the backbones ({', '.join(backbones)})"
            )
        parse_policy(self.diffaug)


def vit_reassembly(dim: int, widths: tuple[int, ...]) -> nn.ModuleList:
    """Random convs turning four ViT maps ``[B, dim, 14, 14]`` into a pyramid at 4×, 2×, 1×, ½× (DPT-style)."""
    return nn.ModuleList(
        [
            nn.Sequential(nn.Conv2d(dim, widths[0], 1), nn.ConvTranspose2d(widths[0], widths[0], 4, stride=4)),
            nn.Sequential(nn.Conv2d(dim, widths[1], 1), nn.ConvTranspose2d(widths[1], widths[1], 2, stride=2)),
            nn.Conv2d(dim, widths[2], 1),
            nn.Sequential(nn.Conv2d(dim, widths[3], 1), nn.Conv2d(widths[3], widths[3], 3, stride=2, padding=1)),
        ]
    )


class RandomProjection(FrozenModule):
    """Frozen random mixing of a network's four maps: [ViT reassembly] → cross-channel → cross-scale."""

    def __init__(self, in_channels: tuple[int, ...], vit: bool) -> None:
        super().__init__()
        self.reassemble = None
        if vit:
            dim = in_channels[0]
            in_channels = tuple(dim // d for d in VIT_PYRAMID_DIVISORS)
            self.reassemble = vit_reassembly(dim, in_channels)
        self.channel_mixing = nn.ModuleList(nn.Conv2d(c, m, 1) for c, m in zip(in_channels, MIXING_CHANNELS))
        self.out_channels = tuple(MIXING_CHANNELS[max(k - 1, 0)] for k in range(NUM_STAGES))  # 64, 64, 128, 256
        self.scale_mixing = nn.ModuleList(nn.Conv2d(m, o, 1) for m, o in zip(MIXING_CHANNELS, self.out_channels))
        self.freeze()

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Four maps ``[B, C_k, H_k, W_k]`` (finest first) → four maps ``[B, out_channels[k], 2·H_k, 2·W_k]``."""
        if self.reassemble is not None:
            features = [r(f) for r, f in zip(self.reassemble, features)]
        mixed = [conv(f) for conv, f in zip(self.channel_mixing, features)]  # [B, 64·2^k, H_k, W_k]
        out = []  # coarsest first
        for x, conv in zip(reversed(mixed), reversed(self.scale_mixing)):
            if out:
                fused = out[-1]
                if fused.shape[-2:] != x.shape[-2:]:  # odd stage sizes: the coarser map is one pixel off
                    fused = F.interpolate(fused, size=x.shape[-2:], mode="bilinear", align_corners=True)
                x = x + fused
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)  # [B, ·, 2·H_k, 2·W_k]
            out.append(conv(x))
        return out[::-1]


def head_width(size: int) -> int:
    """Channels of a head layer whose map is ``size`` pixels wide (the authors' table, nearest power of two)."""
    nominal = 2 ** min(max(round(math.log2(size)), 2), 10)
    return HEAD_CHANNELS[nominal]


class ClassProjection(nn.Module):
    """``h [B, cmap_dim, H, W]``, labels ``[B]`` → ``[B, 1, H, W]``: ``Σ_c h_c · cmap_c / √cmap_dim``."""

    def __init__(self, num_classes: int, embed_dim: int, cmap_dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, embed_dim)  # [num_classes, embed_dim]
        self.proj = EqualizedLinear(embed_dim, cmap_dim, activation="lrelu")
        self.cmap_dim = cmap_dim

    def forward(self, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cmap = self.proj(self.embed(labels)).to(h.dtype)[:, :, None, None]  # [B, cmap_dim, 1, 1]
        return (h * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)


class PatchHead(nn.Module):
    """Trainable discriminator of one feature map ``[B, C, S, S]`` → patch logits ``[B, 1, S', S']``."""

    def __init__(self, in_channels: int, size: int, num_classes: int, embed_dim: int) -> None:
        """``size``: the nominal map size the head's depth and widths are taken from (halved down to 8)."""
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        while size > HEAD_END_SIZE:
            size //= 2
            width = head_width(size)
            layers += [
                spectral_norm(nn.Conv2d(channels, width, 4, stride=2, padding=1, bias=False)),
                nn.BatchNorm2d(width),
                nn.LeakyReLU(LRELU_SLOPE),
            ]
            channels = width
        padding = max(0, math.ceil((4 - size) / 2))  # maps smaller than the kernel still give a logit
        out_channels = CMAP_DIM if num_classes > 0 else 1
        layers.append(spectral_norm(nn.Conv2d(channels, out_channels, 4, padding=padding, bias=False)))
        self.main = nn.Sequential(*layers)
        self.projection = ClassProjection(num_classes, embed_dim, CMAP_DIM) if num_classes > 0 else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = self.main(x)  # [B, 1 or cmap_dim, S', S']
        return h if self.projection is None else self.projection(h, labels)


class FeatureBranch(nn.Module):
    """One feature network: augment → normalise/resize → frozen features → random projection → heads."""

    def __init__(
        self,
        features: FeatureNetwork,
        img_resolution: int,
        resize: bool,
        diffaug: str | None,
        num_classes: int,
        embed_dim: int,
    ) -> None:
        super().__init__()
        self.features = features
        self.projection = RandomProjection(features.channels, features.is_vit)
        self.resize = resize
        self.diffaug = diffaug
        with torch.no_grad():  # the maps' sizes at the nominal input decide each head's depth
            nominal = min(img_resolution, HEAD_NOMINAL_RESOLUTION)  # smaller unresized inputs: their own size
            probe = torch.zeros(1, 3, nominal, nominal)
            maps = self.projection(features(features.prepare(probe, resize)))
        self.heads = nn.ModuleList(PatchHead(m.shape[1], m.shape[-1], num_classes, embed_dim) for m in maps)

    def head_maps(self, images: torch.Tensor, labels: torch.Tensor | None) -> list[torch.Tensor]:
        """``images [B, 3, R, R]`` in ``[-1, 1]`` → each head's logit map ``[B, 1, S_k, S_k]``."""
        x = diff_augment(images, self.diffaug)
        x = self.features.prepare((x + 1) / 2, self.resize)
        maps = self.projection(self.features(x))
        return [head(m, labels) for head, m in zip(self.heads, maps)]

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """``images [B, 3, R, R]`` in ``[-1, 1]`` → logits ``[B, K_branch]``."""
        return torch.cat([m.flatten(1) for m in self.head_maps(images, labels)], dim=1)


@register_discriminator("projected", ProjectedDiscriminatorConfig)
class ProjectedDiscriminator(Discriminator):
    """``images [B, 3, R, R], labels [B] | None → logits [B, K]`` (patch logits of every head and branch)."""

    def __init__(self, cfg: ProjectedDiscriminatorConfig) -> None:
        super().__init__(cfg)
        resize = cfg.img_resolution < INTERP_SIZE if cfg.interp224 is None else cfg.interp224
        weights = cfg.weights or {}
        self.branches = nn.ModuleList(
            FeatureBranch(
                create_feature_network(name, cfg.pretrained, weights.get(name)),
                cfg.img_resolution,
                resize,
                cfg.diffaug,
                cfg.num_classes,
                cfg.embed_dim,
            )
            for name in cfg.backbones
        )
        self.branch_widths: list[int] = []  # logits per branch, K_b, known after the first forward

    def split_logits(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """``logits [B, K]`` → one ``[B, K_b]`` per feature network."""
        widths = self.branch_widths
        if sum(widths) != logits.shape[1]:
            raise PolyinrError(f"{logits.shape[1]} logits do not split into this discriminator's branches {widths}")
        return list(torch.split(logits, widths, dim=1))

    def set_class_embeddings(self, table: torch.Tensor) -> None:
        """Start every head's class table from a pretrained one, ``[num_classes, embed_dim]``."""
        self.check_class_table(table, self.cfg.embed_dim)
        for branch in self.branches:
            for head in branch.heads:
                with torch.no_grad():
                    head.projection.embed.weight.copy_(table)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``images [B, 3, R, R]`` in ``[-1, 1]``, ``labels [B]`` (conditional only) → ``logits [B, K]``."""
        labels = self.check_inputs(images, labels)
        logits = [branch(images, labels) for branch in self.branches]
        self.branch_widths = [x.shape[1] for x in logits]
        return torch.cat(logits, dim=1)
