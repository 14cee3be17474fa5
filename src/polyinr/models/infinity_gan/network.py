"""InfinityGAN's network: padding-free modulated layers, the structure and texture synthesizers, the mapping.

Features are ``[P, B·C, H, W]``: ``P`` patches of ``B`` samples, the samples as convolution groups, so the
patches of one sample share its modulated weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from polyinr.models.infinity_gan.config import InfinityGANConfig
from polyinr.models.layers import LRELU_GAIN, LRELU_SLOPE, EqualizedLinear
from polyinr.models.mapping import MappingNetwork


def blur(x: torch.Tensor) -> torch.Tensor:
    """The unpadded up-sampling blur ``outer([1,2,1]) / 16 × 4`` on the last two axes (``H → H − 2``), computed
    separably (a one-channel 3×3 convolution takes a slow path on CPU)."""
    x = x[..., :-2] + 2 * x[..., 1:-1] + x[..., 2:]
    return (x[..., :-2, :] + 2 * x[..., 1:-1, :] + x[..., 2:, :]) * 0.25


def upsample_skip(x: torch.Tensor) -> torch.Tensor:
    """The running image's up-sampling: stride-2 transposed conv with ``outer([1,2,1]) / 16 × 4``, cropped
    ``[1:-1]`` (``H → 2H − 1``): exactly linear interpolation with aligned corners, on the last two axes."""

    def along_last(t: torch.Tensor) -> torch.Tensor:
        head, tail = t[..., :-1], t[..., 1:]
        return torch.cat([torch.stack([head, (head + tail) * 0.5], dim=-1).flatten(-2), t[..., -1:]], dim=-1)

    return along_last(along_last(x).transpose(-1, -2)).transpose(-1, -2)


# ---------------------------------------------------------------------------------------------------------- layers


class ModulatedConv(nn.Module):
    """StyleGAN2's modulated convolution, unpadded, on patch batches.

    Features are ``[P, B·C, H, W]``: ``P`` patches of ``B`` samples, the samples as convolution groups (the
    authors' fused form for ``P = 1``), so the patches of one sample share its modulated weight.
    ``up``: stride-2 transposed conv, crop ``[1:-1]``, unpadded blur (``H → 2H − 3``); else valid (``H → H − k + 1``).
    """

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, style_dim: int, demodulate: bool = True, up: bool = False
    ) -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.kernel, self.demodulate, self.up = in_ch, out_ch, kernel, demodulate, up
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.modulation = EqualizedLinear(style_dim, in_ch, bias_init=1.0)
        self.scale = 1 / math.sqrt(in_ch * kernel * kernel)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """``x [P, B·Cin, H, W]``, ``style [B, style_dim]`` → ``[P, B·Cout, H', W']``; or one sample's per-pixel
        styles ``[P, style_dim, H, W]`` (spatial style fusion, ``B = 1``)."""
        if style.ndim == 4:
            return self._spatial(x, style)
        B = style.shape[0]
        s = self.modulation(style)  # [B, Cin]
        w = self.scale * self.weight.unsqueeze(0) * s[:, None, :, None, None]  # [B, Cout, Cin, k, k]
        if self.demodulate:
            w = w * torch.rsqrt(w.pow(2).sum(dim=(2, 3, 4)) + 1e-8)[:, :, None, None, None]
        if not self.up:
            return F.conv2d(x, w.reshape(B * self.out_ch, self.in_ch, self.kernel, self.kernel), groups=B)
        w = w.transpose(1, 2).reshape(B * self.in_ch, self.out_ch, self.kernel, self.kernel)
        return blur(F.conv_transpose2d(x, w, stride=2, groups=B)[:, :, 1:-1, 1:-1])  # [P, B·Cout, 2H − 3, 2W − 3]

    def _spatial(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """The authors' per-pixel modulation (``ModulatedConv2d`` with a spatial style): ``(x · s(p)) ⊛ W``, then
        each output pixel demodulated by its own input pixel's style (interpolated after up-sampling, cropped
        after a valid conv), an approximation where the style varies within the kernel."""
        s = self.modulation(style.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # [P, Cin, H, W]
        w = self.scale * self.weight  # [Cout, Cin, k, k]
        demod = None
        if self.demodulate:
            energy = w.pow(2).sum(dim=(2, 3))  # [Cout, Cin]
            demod = torch.rsqrt(torch.einsum("oi,pihw->pohw", energy, s.square()) + 1e-8)  # [P, Cout, H, W]
        if not self.up:
            out = F.conv2d(x * s, w)
            if demod is not None:
                r = self.kernel // 2
                out = out * demod[:, :, r : demod.shape[2] - r, r : demod.shape[3] - r]
            return out
        out = F.conv_transpose2d(x * s, w.transpose(0, 1), stride=2)[:, :, 1:-1, 1:-1]
        if demod is not None:
            out = out * F.interpolate(demod, size=out.shape[2:], mode="bilinear", align_corners=True)
        return blur(out)


class StyledLayer(nn.Module):
    """Modulated conv → (noise ``x + strength · n``) → bias and lrelu · √2 (authors' ``StyledConv``)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, style_dim: int, up: bool, noise: bool) -> None:
        super().__init__()
        self.conv = ModulatedConv(in_ch, out_ch, kernel, style_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros([])) if noise else None
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``x [P, B·Cin, H, W]``, ``style [B, D]``, ``noise [P, B, 1, H', W']`` → ``[P, B·Cout, H', W']``."""
        x = self.conv(x, style)
        P, BC, H, W = x.shape
        B = style.shape[0] if style.ndim == 2 else 1
        x = x.view(P, B, BC // B, H, W)
        if self.noise_strength is not None:
            x = x + self.noise_strength * noise
        x = F.leaky_relu(x + self.bias.view(1, 1, -1, 1, 1), LRELU_SLOPE) * LRELU_GAIN
        return x.view(P, BC, H, W)


class ToRGB(nn.Module):
    """Modulated 1×1 conv without demodulation, + bias; adds the up-sampled, centre-cropped running image."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv(in_ch, out_ch, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        """``x [P, B·C, H, W]``, ``skip [P, B·3, h, w]`` or None → ``[P, B·3, H, W]``."""
        B = style.shape[0] if style.ndim == 2 else 1
        out = self.conv(x, style)
        P, BC, H, W = out.shape
        out = (out.view(P, B, -1, H, W) + self.bias.view(1, 1, -1, 1, 1)).view(P, BC, H, W)
        if skip is None:
            return out
        up = upsample_skip(skip)  # [P, B·3, 2h − 1, 2w − 1]
        dh, dw = (up.shape[2] - H) // 2, (up.shape[3] - W) // 2
        return out + up[:, :, dh : dh + H, dw : dw + W].reshape(P, BC, H, W)


# ---------------------------------------------------------------------------------------------------------- networks


class StructureSynthesizer(nn.Module):
    """G_S: ``local [P, B·Dl, h, w]``, ``coords [P, B·3, h, w]``, global latent ``[B, Dg]`` → ``[P, B·Dl, h − 2m,
    w − 2m]``; each layer sees ``[features, centre-cropped coordinates]``."""

    def __init__(self, cfg: InfinityGANConfig) -> None:
        super().__init__()
        D, Dg = cfg.local_latent_dim, cfg.mapping.z_dim
        self.layers = nn.ModuleList(
            StyledLayer(D + 3, D, cfg.structure_kernel, Dg, up=False, noise=False) for _ in range(cfg.structure_layers)
        )
        self.shrink = cfg.structure_kernel - 1

    def forward(
        self, local: torch.Tensor, coords: torch.Tensor, global_latent: torch.Tensor | Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """``global_latent [B, Dg]``, or per layer one sample's per-cell latents ``[P, Dg, h_i, w_i]`` (fusion)."""
        P, _, h, w = local.shape
        per_layer = not isinstance(global_latent, torch.Tensor)
        B = 1 if per_layer else global_latent.shape[0]
        x = local
        for i, layer in enumerate(self.layers):
            c = i * self.shrink // 2
            crop = coords[:, :, c : h - c, c : w - c]  # [P, B·3, h_i, w_i]
            x = torch.cat([x.view(P, B, -1, h - 2 * c, w - 2 * c), crop.view(P, B, 3, h - 2 * c, w - 2 * c)], dim=2)
            x = layer(x.view(P, -1, h - 2 * c, w - 2 * c), global_latent[i] if per_layer else global_latent)
        return x


class TextureSynthesizer(nn.Module):
    """G_T: structure features ``[P, B·Dl, n, n']``, styles ``[B, num_styles, w_dim]``, noise per conv →
    RGB ``[P, B·C, 16n − 75, …]`` (for four blocks)."""

    def __init__(self, cfg: InfinityGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        in_ch, w_dim = cfg.local_latent_dim, cfg.mapping.w_dim
        self.layers = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        for out_ch in cfg.ts_channels:
            self.layers.append(StyledLayer(in_ch, out_ch, 3, w_dim, up=True, noise=True))
            self.layers.append(StyledLayer(out_ch, out_ch, 3, w_dim, up=False, noise=True))
            self.to_rgbs.append(ToRGB(out_ch, cfg.img_channels, w_dim))
            in_ch = out_ch

    def rgb_style_index(self, block: int) -> int:
        """The style of block ``block``'s ToRGB: ``2·block + 3``, the last one ``2·blocks`` (3, 5, 7, 8)."""
        return min(2 * block + 3, 2 * self.cfg.num_blocks)

    def forward(
        self,
        x: torch.Tensor,
        styles: torch.Tensor | None,
        noises: Sequence[torch.Tensor],
        fused: tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """``styles [B, num_styles, w_dim]``; or ``fused``: per-pixel styles of one sample for every conv's input
        and every ToRGB's input (``[P, w_dim, H, W]`` each)."""
        skip = None
        for j, rgb in enumerate(self.to_rgbs):
            for i in (2 * j, 2 * j + 1):
                x = self.layers[i](x, fused[0][i] if fused else styles[:, i], noises[i])
            skip = rgb(x, fused[1][j] if fused else styles[:, self.rgb_style_index(j)], skip)
        return skip


# ---------------------------------------------------------------------------------------------------------- mapping


def _global_then_styles(z: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """The ws of InfinityGAN: the raw global latent ``z [B, Dg]`` first, then ``styles [B, num_styles, Dg]``
    → ``[B, 1 + num_styles, Dg]``."""
    return torch.cat([z.to(styles.dtype).unsqueeze(1), styles], dim=1)


class InfinityGANMapping(nn.Module):
    """``z [B, Dg] → ws [B, 1 + num_styles, Dg]``: the raw global latent, then the shared mapping's styles."""

    def __init__(self, cfg: InfinityGANConfig) -> None:
        super().__init__()
        self.styles = MappingNetwork(cfg.mapping, num_ws=cfg.num_styles)
        self.num_ws = 1 + cfg.num_styles
        self.z_dim, self.w_dim, self.num_classes = cfg.mapping.z_dim, cfg.mapping.w_dim, cfg.mapping.num_classes

    @property
    def w_avg(self) -> torch.Tensor:
        """The styles' running mean ``[C or 1, w_dim]``."""
        return self.styles.w_avg

    def set_class_embeddings(self, table: torch.Tensor) -> None:
        self.styles.set_class_embeddings(table)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """Truncation (not in the authors' code) applies to the styles only; ``truncation_cutoff`` counts
        styles."""
        styles = self.styles(
            z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas
        )
        return _global_then_styles(z, styles)

    def interpolate_classes(
        self,
        z: torch.Tensor,
        a: int,
        b: int,
        t: float,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """The shared mapping's class interpolation for the styles, after the raw global latent."""
        styles = self.styles.interpolate_classes(z, a, b, t, truncation_psi, truncation_cutoff)
        return _global_then_styles(z, styles)
