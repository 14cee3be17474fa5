"""A stand-in of the InfinityGAN authors' generator (``hubert0527/infinityGAN``) as it runs on the CPU, for tests.

Written from their ``models/infinitygan_generator.py``, ``models/ops.py``, the CPU fall-backs of
``models/custom_ops`` (``upfirdn2d_native``, ``fused_leaky_relu``), ``coord_handler.py``, ``latent_sampler.py``
and the test-time patch-by-patch loop (``test_managers/base_test_manager.py`` + ``infinite_generation.py``):
their module tree, so that ``state_dict()`` has their keys and shapes (the unused ``const_z`` and
``noises.noise_k`` buffers included), and their operations in their order:

- the structure synthesizer: per layer, coordinates centre-cropped to the features and concatenated after them,
  a modulated + demodulated ``k×k`` convolution without padding on the raw global latent, no noise, fused lrelu
  (bias, slope 0.2, gain √2);
- the texture synthesizer: pixel norm + ``n_mlp`` equalised linear layers (lr 0.01, fused lrelu); styles
  broadcast to ``n_latent = convs + 1`` layers, ``inject_index`` taking the first ones from slot 0; up-sampling
  convs as a grouped stride-2 transposed convolution, crop ``[1:-1]``, then ``Blur`` (``upfirdn2d`` with
  ``outer([1,2,1]) / 16 · 4``, no padding); noise ``x + w·n``; ToRGB (1×1, no demodulation, ``+ bias``) after
  the convs ``1, 3, 5, …`` with the styles ``3, 5, …`` (the last one ``n_latent − 1``), the running image
  up-sampled by a one-channel transposed convolution with the same kernel, cropped ``[1:-1]`` and centre-cropped;
- coordinates at test time: ``CoordHandler._creat_coord_grid`` over the whole latent canvas, then
  ``convert_idx_to_input_coords`` (tanh, cos π·, sin π·); in training: start points cut from their constant grid
  (wrapping around horizontally), each channel jittered by its own draw;
- :class:`InfiniteGeneration`: their patch-by-patch inference, its step sizes computed as theirs from the layers'
  ``calc_in/out_spatial_size``, the meta canvas ``test_meta_extra_pad = 3`` patches larger than the target,
  per-layer noise slices and the patch written over the canvas (later patches overwrite the overlaps), with
  their optional parallel batching of patches;
- :class:`FusedGeneration`: their spatial style fusion (the blurred nearest-centre map of the meta canvas,
  ``calibrate_spatial_shape`` back to every layer, ``ModulatedConv2d``'s per-pixel style path).

Only what inference needs is here (no losses, no inversion, no flop counts, no CUDA ops). Their channel
table (512 channels, ``256·channel_multiplier`` in the last block of the 101² model) is the ``ts_channels`` entry
of :func:`reference_config`, so that tests can run their layer sizes with a few channels.
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ------------------------------------------------------------------------------------------------ configuration


def reference_config(**train_params) -> SimpleNamespace:
    """``config`` with a ``train_params`` namespace as their YAML gives it (``configs/model/InfinityGAN.yaml``);
    ``ts_channels`` (one entry per up-sampling block) stands in for their channel table."""
    params = dict(
        global_latent_dim=512,
        local_latent_dim=256,
        n_mlp=8,
        ss_n_layers=4,
        ss_unfold_radius=3,
        ss_coord_all_layers=True,
        ss_disable_noise=True,
        ts_input_size=11,
        ts_no_zero_pad=True,
        ts_channels=(512, 512, 512, 512),
        coord_vert_sample_size=10,
        coord_hori_occupy_ratio=0.25,
        coord_vert_cut_pt=3,
        coord_num_dir=3,
    )
    params.update(train_params)
    assert params["ss_coord_all_layers"] and params["ss_disable_noise"] and params["ts_no_zero_pad"]
    assert params["coord_num_dir"] == 3, "only the paper's coordinates (tanh(x), cos(πy), sin(πy))"
    return SimpleNamespace(train_params=SimpleNamespace(**params))


# ------------------------------------------------------------------------------------------------ CPU ops


def make_kernel(k) -> torch.Tensor:
    """A 1-D list → its outer product, normalised to sum 1 (a 2-D kernel: normalised)."""
    k = torch.as_tensor(k, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """``upfirdn2d_native`` with ``up = down = 1`` (all their ``Blur`` asks for): zero pad, then each channel
    convolved on its own with the flipped kernel (a ``[B·C, 1, H, W]`` batch)."""
    _, C, H, W = x.shape
    p0, p1 = pad
    out = x.reshape(-1, H, W, 1)
    out = F.pad(out, [0, 0, p0, p1, p0, p1])
    out = out.permute(0, 3, 1, 2).reshape(-1, 1, H + p0 + p1, W + p0 + p1)
    kh, kw = kernel.shape
    out = F.conv2d(out, torch.flip(kernel, [0, 1]).view(1, 1, kh, kw))
    out = out.reshape(-1, 1, out.shape[2], out.shape[3]).permute(0, 2, 3, 1)
    return out.reshape(-1, C, out.shape[1], out.shape[2])


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor, scale: float = 2**0.5) -> torch.Tensor:
    """Their CPU path: ``leaky_relu(x + bias, 0.2) · √2``, the bias along dim 1."""
    rest = [1] * (x.ndim - bias.ndim - 1)
    return F.leaky_relu(x + bias.view(1, bias.shape[0], *rest), negative_slope=0.2) * scale


# ------------------------------------------------------------------------------------------------ ops.py


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0, lr_mul: float = 1, activation=None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim).fill_(bias_init))  # not divided by lr_mul (theirs)
        self.activation, self.lr_mul = activation, lr_mul
        self.scale = (1 / math.sqrt(in_dim)) * lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, bias=self.bias * self.lr_mul)


class Upsample(nn.Module):
    """``Upsample(no_zero_pad=True)``: one-channel stride-2 transposed conv with ``kernel · 4``, crop ``[1:-1]``."""

    def __init__(self, kernel, factor: int = 2):
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * factor**2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        out = F.conv_transpose2d(x.view(B * C, 1, H, W), self.kernel[None, None], stride=2)
        return out.view(B, C, out.shape[2], out.shape[3])[:, :, 1:-1, 1:-1]


class Blur(nn.Module):
    """``Blur``: in the up-sampling convs ``kernel=[1,2,1], pad=(0, 0), upsample_factor=2`` (``upfirdn2d`` with
    ``kernel · 4``); in style fusion an ``int`` kernel size, ``prior="mean"``, ``padding_mode="replicate"`` (a box
    mean over the replicate-padded map)."""

    def __init__(self, kernel, upsample_factor: int = 1, replicate_pad: int = 0):
        super().__init__()
        if isinstance(kernel, int):
            kernel = torch.ones(kernel, kernel, dtype=torch.float32)  # prior "mean"
        self.replicate_pad = replicate_pad
        self.register_buffer("kernel", make_kernel(kernel) * (upsample_factor**2 if upsample_factor > 1 else 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.replicate_pad:
            x = F.pad(x, (self.replicate_pad,) * 4, mode="replicate")
        return upfirdn2d(x, self.kernel, pad=(0, 0))


class ModulatedConv2d(nn.Module):
    """``ModulatedConv2d(no_zero_pad=True)`` for a style per sample ``[B, style_dim]``."""

    def __init__(
        self, in_channel, out_channel, kernel_size, style_dim, demodulate=True, upsample=False, blur_kernel=(1, 2, 1)
    ):
        super().__init__()
        self.in_channel, self.out_channel, self.kernel_size = in_channel, out_channel, kernel_size
        self.upsample, self.demodulate = upsample, demodulate
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        if upsample:
            assert kernel_size == 3 and len(blur_kernel) % 2 == 1
            self.dirty_rm_size = (len(blur_kernel) // 2, len(blur_kernel) // 2)
            self.blur = Blur(list(blur_kernel), upsample_factor=2)
        else:
            self.padding = 0
            self.dirty_rm_size = (kernel_size // 2, kernel_size // 2)
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)

    def calc_in_spatial_size(self, out_size: int) -> int:
        pads = self.dirty_rm_size[0] + self.dirty_rm_size[1]
        if self.upsample:
            v = out_size + 1 + pads
            return (v if v % 2 == 0 else v + 1) // 2
        return out_size + pads

    def calc_out_spatial_size(self, in_size: int) -> int:
        pads = self.dirty_rm_size[0] + self.dirty_rm_size[1]
        return in_size * 2 - 1 - pads if self.upsample else in_size - pads

    def calibrate_backward(self, feature: torch.Tensor) -> torch.Tensor:
        """``calibrate_spatial_shape(direction="backward", padding_mode="replicate")``: a map on this layer's
        output → on its input (the dirty border replicated back, a transposed conv undone by a bilinear resize
        with aligned corners)."""
        _, _, h, w = feature.shape
        size = (self.calc_in_spatial_size(h), self.calc_in_spatial_size(w))
        d0, d1 = self.dirty_rm_size
        if (d0, d1) != (0, 0):
            feature = F.pad(feature, (d1, d1, d0, d0), mode="replicate")
        if self.upsample:
            feature = F.interpolate(feature, size=size, mode="bilinear", align_corners=True)
        return feature

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        if style.ndim == 4:  # a style per pixel (spatial style fusion); a uniform one takes the plain path
            mean_style = style.mean([2, 3], keepdim=True)
            if ((style - mean_style) < 1e-8).all():
                style = mean_style.squeeze()
        if style.ndim != 2:
            return self._spatial(x, style)
        B, Cin, H, W = x.shape
        k, Cout = self.kernel_size, self.out_channel
        s = self.modulation(style).view(B, 1, Cin, 1, 1)
        weight = self.scale * self.weight * s  # [B, Cout, Cin, k, k]
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
            weight = weight * demod.view(B, Cout, 1, 1, 1)
        weight = weight.view(B * Cout, Cin, k, k)
        if self.upsample:
            weight = weight.view(B, Cout, Cin, k, k).transpose(1, 2).reshape(B * Cin, Cout, k, k)
            out = F.conv_transpose2d(x.view(1, B * Cin, H, W), weight, padding=0, stride=2, groups=B)
            out = out[:, :, 1:-1, 1:-1]
            out = self.blur(out.view(B, Cout, out.shape[2], out.shape[3]))
        else:
            out = F.conv2d(x.view(1, B * Cin, H, W), weight, padding=self.padding, groups=B)
            out = out.view(B, Cout, out.shape[2], out.shape[3])
        return out

    def _spatial(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Their test-time path for a style map ``[B, style_dim, h, w]`` (centre-cropped to the input):
        ``(x · s) ⊛ W``, demodulated per pixel by the input pixel's style (row by row, as theirs), the
        demodulation map bilinearly resized (aligned corners) after a transposed conv, cropped after a valid one."""
        assert style.ndim == 4, f"their code asserts BxCxHxW here, got {tuple(style.shape)}"
        style = center_crop(style, x)
        sb, sc, sh, sw = style.shape
        Cin, Cout, k = self.in_channel, self.out_channel, self.kernel_size
        style_mod = self.modulation(style.permute(0, 2, 3, 1).reshape(-1, sc))
        style_mod = style_mod.view(sb, sh, sw, Cin).permute(0, 3, 1, 2)  # [B, Cin, h, w]
        input_st = style_mod * x
        weight = self.scale * self.weight  # [1, Cout, Cin, k, k]
        demod = None
        if self.demodulate:
            demod = torch.zeros(sb, Cout, sh, sw)
            energy = weight.pow(2).sum([3, 4]).unsqueeze(-1)  # [1, Cout, Cin, 1]
            for i in range(sh):  # one row of pixels at a time
                s2 = style_mod[:, :, i, :].view(sb, 1, Cin, sw).pow(2)
                demod[:, :, i, :] = torch.rsqrt((energy * s2).sum(2) + 1e-8)
        weight = weight.view(Cout, Cin, k, k)
        if self.upsample:
            out = F.conv_transpose2d(input_st, weight.transpose(0, 1).contiguous(), padding=0, stride=2)
            out = out[:, :, 1:-1, 1:-1]
            if demod is not None:
                out = out * F.interpolate(demod, size=out.shape[2:], mode="bilinear", align_corners=True)
            return self.blur(out).contiguous()
        out = F.conv2d(input_st, weight, padding=self.padding)
        if demod is not None and self.padding == 0:
            d0, d1 = self.dirty_rm_size
            out = out * demod[:, :, d0:-d0, d1:-d1]
        return out.contiguous()


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = image.new_empty(image.shape[0], 1, image.shape[2], image.shape[3]).normal_()
        return image + self.weight * noise


class FusedLeakyReLU(nn.Module):
    def __init__(self, channel: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class ConstantInput(nn.Module):
    def __init__(self, channel: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))


class StyledConv(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, style_dim, upsample=False, disable_noise=False):
        super().__init__()
        self.upsample = upsample
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim, upsample=upsample)
        self.noise = None if disable_noise else NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style)
        if self.noise is not None:
            out = self.noise(out, noise=noise)
        return self.activate(out)


def center_crop(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``_select_center`` / ``align_spatial_size``: the centre of ``source`` the size of ``target``."""
    dh, dw = (source.shape[2] - target.shape[2]) // 2, (source.shape[3] - target.shape[3]) // 2
    return source[:, :, dh : dh + target.shape[2], dw : dw + target.shape[3]]


class ToRGB(nn.Module):
    def __init__(self, in_channel: int, style_dim: int, blur_kernel=(1, 2, 1)):
        super().__init__()
        self.upsample = Upsample(list(blur_kernel))
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if style.ndim == 4:
            style = center_crop(style, x)
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + center_crop(self.upsample(skip), out)
        return out


# ------------------------------------------------------------------------------------------------ coord_handler.py


class CoordHandler(nn.Module):
    """``sample_coord_grid``: its test-time branch, and its training branch with the random draws given."""

    def __init__(self, config):
        super().__init__()
        tp = config.train_params
        self.tp = tp
        ss_unfold_size = tp.ss_n_layers * tp.ss_unfold_radius
        self.ss_spatial_size = tp.ts_input_size + 2 * ss_unfold_size
        self.const_grid_size_y = round(self.ss_spatial_size / tp.coord_hori_occupy_ratio)

    def creat_coord_grid(self, height: int, width: int) -> torch.Tensor:
        """``_creat_coord_grid`` (``coord_init = (0, 0)``): ``[3, height, width]`` indices before tanh / cos /
        sin, vertically centred on the grid."""
        tp = self.tp
        x = torch.arange(height).type(torch.float32) + 0
        y = torch.arange(width).type(torch.float32) + 0
        x = x / (tp.ts_input_size + tp.coord_vert_sample_size - 1)
        y = y / (self.const_grid_size_y - 1)
        x = x - (x[-1] - 1) / 2
        x, y = x * 2 - 1, y * 2 - 1
        x = x * tp.coord_vert_cut_pt
        x_tiled = x.view(-1, 1).repeat(1, width)
        y_tiled = y.view(1, -1).repeat(height, 1)
        return torch.cat([x_tiled[None], y_tiled[None], y_tiled[None]], 0)

    @staticmethod
    def convert_idx_to_input_coords(mesh: torch.Tensor) -> torch.Tensor:
        mesh[:, 0] = torch.tanh(mesh[:, 0])
        mesh[:, 1] = torch.cos(mesh[:, 1] * np.pi)
        mesh[:, 2] = torch.sin(mesh[:, 2] * np.pi)
        return mesh

    def sample_training_coords(self, x_st: np.ndarray, y_st: np.ndarray, rand: torch.Tensor) -> torch.Tensor:
        """The training branch of ``sample_coord_grid`` for a patch of ``ss_spatial_size`` cells: the start
        points of ``sample_xy_st_index`` and the draws ``rand [3, B]`` of ``add_rnd_perturb`` (its
        ``torch.rand(B)`` for each channel) given. ``_safe_select`` cuts each patch from the constant grid of
        ``ss_spatial_size + V`` rows and ``const_grid_size_y`` columns, wrapping around horizontally."""
        tp, size = self.tp, self.ss_spatial_size
        const_grid = self.creat_coord_grid(size + tp.coord_vert_sample_size, self.const_grid_size_y)
        grids = []
        for xx, yy in zip(x_st, y_st):
            if yy > self.const_grid_size_y - size:  # past the grid's end: continue from its first column
                wrapped = yy + size - self.const_grid_size_y
                grid = torch.cat([const_grid[:, xx : xx + size, yy:], const_grid[:, xx : xx + size, :wrapped]], 2)
            else:
                grid = const_grid[:, xx : xx + size, yy : yy + size]
            grids.append(grid)
        mesh = torch.stack(grids).contiguous().clone()
        perturb_range = (
            abs(const_grid[0, 0, 0].item() - const_grid[0, 1, 0].item()) / 2,
            abs(const_grid[1, 0, 0].item() - const_grid[1, 0, 1].item()) / 2,
            abs(const_grid[2, 0, 0].item() - const_grid[2, 0, 1].item()) / 2,
        )
        for dim, r in enumerate(perturb_range):
            mesh[:, dim, :, :] += ((rand[dim] * r * 2) - r)[:, None, None]
        return self.convert_idx_to_input_coords(mesh)

    def sample_coord_grid(self, spatial_latent: torch.Tensor) -> torch.Tensor:
        """``[B, 3, h, w]`` coordinates of a latent canvas ``[B, C, h, w]`` at test time."""
        B, _, h, w = spatial_latent.shape
        grid = self.creat_coord_grid(h, w).unsqueeze(0).repeat(B, 1, 1, 1)
        return self.convert_idx_to_input_coords(grid).to(spatial_latent.device)


# ------------------------------------------------------------------------------------------------ the generator


def create_fusion_styles(fusion_map: torch.Tensor, styles: list, config) -> torch.Tensor:
    """``Σ_i map[:, i] · styles[i]``: ``[B, N, H, W]`` weights and ``N`` styles ``[B, C]`` → ``[B, C, H, W]``."""
    bs, _, h, w = fusion_map.shape
    fused = torch.zeros(bs, config.train_params.global_latent_dim, h, w)
    for i in range(len(styles)):
        fused += fusion_map[:, i : i + 1] * styles[i].unsqueeze(2).unsqueeze(3)
    return fused


class ConditionalBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        tp = config.train_params
        self.conv = StyledConv(
            tp.local_latent_dim + tp.coord_num_dir,
            tp.local_latent_dim,
            tp.ss_unfold_radius * 2 + 1,
            tp.global_latent_dim,
            disable_noise=True,
        )

    def forward(self, x: torch.Tensor, cond: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([x, coords], 1), cond)


class ImplicitFunction(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.conv_stack = nn.Sequential(*[ConditionalBlock(config) for _ in range(config.train_params.ss_n_layers)])

    def forward(self, global_latent, local_latent, coords):
        h = local_latent
        for conv in self.conv_stack:
            coords = center_crop(coords, h)
            h = conv(h, global_latent, coords)
        return h


class StructureSynthesizer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.coord_handler = CoordHandler(config)
        self.implicit_model = ImplicitFunction(config)

    def forward(self, global_latent, local_latent, override_coords=None, style_fusion_map=None):
        """``global_latent [B, Dg]``, or with ``style_fusion_map [B, N, h, w]`` one per style centre."""
        coords = self.coord_handler.sample_coord_grid(local_latent) if override_coords is None else override_coords
        if style_fusion_map is not None:
            global_latent = create_fusion_styles(style_fusion_map, global_latent, self.config)
        return self.implicit_model(global_latent, local_latent, coords)


class TextureSynthesizer(nn.Module):
    def __init__(self, config):
        super().__init__()
        tp = config.train_params
        self.config = config
        self.global_latent_dim, self.local_latent_dim = tp.global_latent_dim, tp.local_latent_dim
        self.mapping = nn.Sequential(
            PixelNorm(),
            *[
                EqualLinear(tp.global_latent_dim, tp.global_latent_dim, lr_mul=0.01, activation="fused_lrelu")
                for _ in range(tp.n_mlp)
            ],
        )
        # Their table for a 101² patch: (512, up), (512, -), …, (256·cm, up), (256·cm, -); ToRGB after each block.
        self.convs_specs = [dict(out_ch=c, upsample=up) for c in tp.ts_channels for up in (True, False)]
        n = len(self.convs_specs)
        self.to_rgbs_specs = [dict(src=i, tgt=min(i + 2, n)) for i in range(1, n, 2)]
        self.const_z = ConstantInput(self.local_latent_dim)
        self.num_layers = n
        self.n_latent = n + 1
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i in range(n):
            res = (i + 5) // 2
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, 2**res, 2**res))
        in_ch = self.local_latent_dim
        for spec in self.convs_specs:
            self.convs.append(StyledConv(in_ch, spec["out_ch"], 3, self.global_latent_dim, upsample=spec["upsample"]))
            in_ch = spec["out_ch"]
        for spec in self.to_rgbs_specs:
            self.to_rgbs.append(ToRGB(self.convs_specs[spec["src"]]["out_ch"], self.global_latent_dim))

    def calc_in_spatial_size(self, out_size, return_list=False):
        sizes = []
        for conv in self.convs[::-1]:
            out_size = conv.conv.calc_in_spatial_size(out_size)
            sizes.append(out_size)
        return sizes[::-1] if return_list else sizes[-1]

    def calc_out_spatial_size(self, in_size, return_list=False):
        sizes = []
        for conv in self.convs:
            in_size = conv.conv.calc_out_spatial_size(in_size)
            sizes.append(in_size)
        return sizes if return_list else sizes[-1]

    def forward(
        self, global_latent, structure_latent, noises=None, inject_index=None, styles=None, style_fusion_map=None
    ):
        """``styles`` (with ``style_fusion_map``: one map per conv input, its centres' styles ``[B, D]``) replace
        the mapping of ``global_latent``."""
        if noises is None:
            noises = [None] * self.num_layers
        if styles is not None:
            conv_styles = [create_fusion_styles(m, styles, self.config) for m in style_fusion_map]
            rgb_styles = [
                create_fusion_styles(style_fusion_map[sp["src"]], styles, self.config) for sp in self.to_rgbs_specs
            ]
        elif global_latent.ndim == 3:
            styles = [self.mapping(global_latent[:, i]) for i in range(global_latent.shape[1])]
            if inject_index is None:  # at test time (training draws one)
                inject_index = self.n_latent
            if inject_index == self.n_latent:
                styles = styles[0].unsqueeze(1).repeat(1, inject_index, 1)
            else:
                styles = torch.cat(
                    [
                        styles[0].unsqueeze(1).repeat(1, inject_index, 1),
                        styles[1].unsqueeze(1).repeat(1, self.n_latent - inject_index, 1),
                    ],
                    1,
                )
        else:
            styles = self.mapping(global_latent).unsqueeze(1).repeat(1, self.n_latent, 1)
        to_rgb_idx, skip, h = 0, None, structure_latent
        for i, (conv, noise) in enumerate(zip(self.convs, noises)):
            h = conv(h, conv_styles[i] if style_fusion_map is not None else styles[:, i], noise=noise)
            spec = self.to_rgbs_specs[to_rgb_idx]
            if i == spec["src"]:
                style = rgb_styles[to_rgb_idx] if style_fusion_map is not None else styles[:, spec["tgt"]]
                skip = self.to_rgbs[to_rgb_idx](h, style, skip=skip)
                to_rgb_idx += 1
        return skip


class InfinityGanGenerator(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.structure_synthesizer = StructureSynthesizer(config)
        self.texture_synthesizer = TextureSynthesizer(config)

    def calc_in_spatial_size(self, out_size, return_list=False):
        sizes = self.texture_synthesizer.calc_in_spatial_size(out_size, return_list=return_list)
        return [int(np.ceil(v)) for v in sizes] if return_list else int(np.ceil(sizes))

    def calc_out_spatial_size(self, in_size, return_list=False):
        sizes = self.texture_synthesizer.calc_out_spatial_size(in_size, return_list=return_list)
        return [int(np.ceil(v)) for v in sizes] if return_list else int(np.ceil(sizes))

    def calibrate_backward(self, feature: torch.Tensor) -> tuple[list, list]:
        """``calibrate_spatial_shape(direction="backward")``: an image-space map → the maps on the input of every
        SS layer and every texture conv, each list in forward order."""
        ts = []
        for conv in self.texture_synthesizer.convs[::-1]:
            feature = conv.conv.calibrate_backward(feature)
            ts.append(feature)
        ss = []
        for block in self.structure_synthesizer.implicit_model.conv_stack[::-1]:
            feature = block.conv.conv.calibrate_backward(feature)
            ss.append(feature)
        return ss[::-1], ts[::-1]

    def forward(
        self,
        global_latent,
        local_latent,
        noises=None,
        override_coords=None,
        inject_index=None,
        styles=None,
        style_fusion_map_ss=None,
        style_fusion_map_ts=None,
    ):
        """``global_latent [B, 2, Dg]``, ``local_latent [B, Dl, h, w]`` (the SS margins included), one noise
        ``[B, 1, H_k, W_k]`` per texture conv → the image (their ``output["gen"]``). Style fusion: a list of
        global latents ``[B, Dg]`` and of ``styles [B, D]``, one per centre, and the fusion maps."""
        structure = self.structure_synthesizer(
            global_latent if isinstance(global_latent, list) else global_latent[:, 0],
            local_latent,
            override_coords=override_coords,
            style_fusion_map=style_fusion_map_ss,
        )
        return self.texture_synthesizer(
            global_latent,
            structure,
            noises=noises,
            inject_index=inject_index,
            styles=styles,
            style_fusion_map=style_fusion_map_ts,
        )


# ------------------------------------------------------------------------------------------------ latent_sampler.py


def sample_global_latent(config, batch_size: int) -> torch.Tensor:
    """``LatentSampler.sample_global_latent(mixing=False)``: ``[B, 2, Dg]`` with the same latent in both slots."""
    dim = config.train_params.global_latent_dim
    latent_1 = torch.randn(batch_size, dim)
    torch.randn(batch_size, dim)  # their latent_2, drawn and unused without mixing
    return torch.stack([latent_1, latent_1], 1)


def sample_local_latent(config, batch_size: int, specific_shape: tuple[int, int]) -> torch.Tensor:
    """``sample_local_latent(specific_shape=…)``: the shape plus the SS margins on every side."""
    tp = config.train_params
    u = tp.ss_n_layers * tp.ss_unfold_radius
    return torch.randn(batch_size, tp.local_latent_dim, specific_shape[0] + 2 * u, specific_shape[1] + 2 * u)


# ------------------------------------------------------------------------------------------------ test_managers


TEST_META_EXTRA_PAD = 3  # test_managers/global_config.py


class InfiniteGeneration:
    """``InfiniteGenerationManager`` for a target ``height × width``: its step sizes, meta canvas, variables and
    patch loop (``parallel_batch_size`` > 1: their parallel batching of patches)."""

    def __init__(self, g_ema: InfinityGanGenerator, height: int, width: int, parallel_batch_size: int = 1):
        self.g_ema, self.config = g_ema, g_ema.config
        tp = self.config.train_params
        ts = tp.ts_input_size
        self.ss_unfold_size = tp.ss_n_layers * tp.ss_unfold_radius
        self.parallel_batch_size = parallel_batch_size
        # base_test_manager: sizes of one and of a doubled input, and the steps that follow from them.
        self.outfeat_sizes_list = np.array(g_ema.calc_out_spatial_size(ts, return_list=True), dtype=np.int64)
        doubled = np.array(g_ema.calc_out_spatial_size(ts * 2, return_list=True), dtype=np.int64)
        outfeat_disps = doubled - self.outfeat_sizes_list
        assert (outfeat_disps % ts == 0).all()
        pixelspace_disp_unit = outfeat_disps[-1] // ts
        self.pixelspace_step_size = (self.outfeat_sizes_list[-1] // pixelspace_disp_unit) * pixelspace_disp_unit
        self.latentspace_step_size = self.pixelspace_step_size // pixelspace_disp_unit
        self.outfeat_step_sizes = self.latentspace_step_size * (outfeat_disps // ts)
        # infinite_generation: _init_starting_points and the noise sizes.
        self.target_height, self.target_width = height, width
        self.num_steps_h = (
            math.ceil((height - self.outfeat_sizes_list[-1]) / self.pixelspace_step_size) + TEST_META_EXTRA_PAD
        )
        self.num_steps_w = (
            math.ceil((width - self.outfeat_sizes_list[-1]) / self.pixelspace_step_size) + TEST_META_EXTRA_PAD
        )
        self.start_pts_mesh_z = self._start_pts(self.latentspace_step_size) + self.ss_unfold_size
        self.start_pts_mesh_outfeats = [self._start_pts(s) for s in self.outfeat_step_sizes]
        self.meta_height = int(self.pixelspace_step_size * (self.num_steps_h - 1) + self.outfeat_sizes_list[-1])
        self.meta_width = int(self.pixelspace_step_size * (self.num_steps_w - 1) + self.outfeat_sizes_list[-1])
        self.noise_heights = self.outfeat_step_sizes * (self.num_steps_h - 1) + self.outfeat_sizes_list
        self.noise_widths = self.outfeat_step_sizes * (self.num_steps_w - 1) + self.outfeat_sizes_list

    def _start_pts(self, step: int) -> np.ndarray:
        """``_create_start_pts_mesh``: ``[num_steps_h, num_steps_w, 2]`` start points."""
        xs = np.arange(self.num_steps_h) * step
        ys = np.arange(self.num_steps_w) * step
        return np.stack(
            [
                np.repeat(xs.reshape(-1, 1), self.num_steps_w, axis=1),
                np.repeat(ys.reshape(1, -1), self.num_steps_h, axis=0),
            ],
            2,
        ).astype(np.int64)

    def create_vars(self, batch_size: int = 1) -> SimpleNamespace:
        """``create_vars``: the global latent, the whole canvas of local latents (SS margins included, on the
        CPU), its coordinates and the noise of every texture layer over the whole canvas."""
        shape = (self.g_ema.calc_in_spatial_size(self.meta_height), self.g_ema.calc_in_spatial_size(self.meta_width))
        global_latent = sample_global_latent(self.config, batch_size)
        local_latent = sample_local_latent(self.config, batch_size, shape)
        meta_coords = self.g_ema.structure_synthesizer.coord_handler.sample_coord_grid(local_latent)
        noises = [torch.randn(batch_size, 1, int(h), int(w)) for h, w in zip(self.noise_heights, self.noise_widths)]
        meta_img = torch.empty(batch_size, 3, self.meta_height, self.meta_width)
        return SimpleNamespace(
            meta_img=meta_img,
            global_latent=global_latent,
            local_latent=local_latent,
            meta_coords=meta_coords,
            noises=noises,
        )

    @torch.no_grad()
    def generate(self, v: SimpleNamespace) -> torch.Tensor:
        """Every patch in their order; each writes its whole output into ``v.meta_img`` → ``v.meta_img``."""
        ts, u = self.config.train_params.ts_input_size, self.ss_unfold_size
        stack = []
        for ix, iy in itertools.product(range(self.num_steps_h), range(self.num_steps_w)):
            zx_st, zy_st = (int(t) for t in self.start_pts_mesh_z[ix, iy])
            x_st = [int(m[ix, iy, 0]) for m in self.start_pts_mesh_outfeats]
            y_st = [int(m[ix, iy, 1]) for m in self.start_pts_mesh_outfeats]
            sizes = [int(s) for s in self.outfeat_sizes_list]
            noises = [n[:, :, a : a + s, b : b + s] for n, a, b, s in zip(v.noises, x_st, y_st, sizes)]
            zx0, zy0, zx1, zy1 = zx_st - u, zy_st - u, zx_st + ts + u, zy_st + ts + u
            kwargs = dict(
                global_latent=v.global_latent,
                local_latent=v.local_latent[:, :, zx0:zx1, zy0:zy1],
                override_coords=v.meta_coords[:, :, zx0:zx1, zy0:zy1],
                noises=noises,
            )
            index = (x_st[-1], x_st[-1] + sizes[-1], y_st[-1], y_st[-1] + sizes[-1])
            stack.append((kwargs, index))
            if len(stack) == self.parallel_batch_size:
                self._run(v, stack)
                stack = []
        if stack:
            self._run(v, stack)
        return v.meta_img

    def _run(self, v: SimpleNamespace, stack: list) -> None:
        """``maybe_parallel_inference``: the queued patches' inputs concatenated along the batch, one call."""
        args = [k for k, _ in stack]
        kwargs = {
            key: [torch.cat([a[key][i] for a in args]) for i in range(len(args[0][key]))]
            if isinstance(args[0][key], list)
            else torch.cat([a[key] for a in args]).contiguous()
            for key in args[0]
        }
        patch = self.g_ema(**kwargs)
        B = v.meta_img.shape[0]
        for i, (_, (x0, x1, y0, y1)) in enumerate(stack):
            v.meta_img[:, :, x0:x1, y0:y1] = patch[i * B : (i + 1) * B]


class FusedGeneration(InfiniteGeneration):
    """``FusedGenerationManager``: spatial style fusion over the meta canvas of a ``height × width`` target.

    ``style_centers`` are fractions of the target (their ``config.task.style_centers``), ``blur_kernel`` the side
    of their box blur (``blur_type: mean``). The nearest-centre map of the meta canvas (their integer index grid
    minus the centre, stored back into the integer grid) is box-blurred with replicate padding and calibrated
    back to every layer's input; each patch slices the maps of its layers.
    """

    def __init__(self, g_ema: InfinityGanGenerator, height: int, width: int, style_centers, blur_kernel: int):
        super().__init__(g_ema, height, width)
        ts = self.config.train_params.ts_input_size
        self.infeat_sizes_list = np.array(g_ema.calc_in_spatial_size(int(self.outfeat_sizes_list[-1]), True))
        doubled = np.array(g_ema.calc_in_spatial_size(g_ema.calc_out_spatial_size(2 * ts), True))
        self.infeat_step_sizes = self.latentspace_step_size * ((doubled - self.infeat_sizes_list) // ts)
        self.start_pts_mesh_infeats = [self._start_pts(s) for s in self.infeat_step_sizes]
        pad_h, pad_w = (self.meta_height - height) // 2, (self.meta_width - width) // 2
        self.meta_style_center_indices = [[c[0] * height + pad_h, c[1] * width + pad_w] for c in style_centers]
        self.blur = Blur(blur_kernel, replicate_pad=blur_kernel // 2)
        self.meta_fusion_map_ss, self.meta_fusion_map_ts = self._create_fusion_map(self.meta_style_center_indices)

    def _create_fusion_map(self, centers) -> tuple[torch.Tensor, list]:
        n, H, W = len(centers), self.meta_height, self.meta_width
        x_idx = torch.arange(H).reshape(H, 1).repeat(1, W)
        y_idx = torch.arange(W).reshape(1, W).repeat(H, 1)
        dist = torch.stack([x_idx, y_idx]).unsqueeze(0).repeat(n, 1, 1, 1)  # int64 [N, 2, H, W]
        for i, c in enumerate(centers):
            dist[i, 0] = dist[i, 0] - c[0]  # float differences written into the integer grid (truncated)
            dist[i, 1] = dist[i, 1] - c[1]
        nearest = dist.pow(2).sum(1).topk(1, largest=False, dim=0).indices[0]  # [H, W]
        fusion = torch.zeros(n, H * W)
        fusion.scatter_(0, nearest.view(1, H * W), 1)
        fusion = self.blur(fusion.reshape(1, n, H, W))
        ss, ts = self.g_ema.calibrate_backward(fusion)
        return ss[0], [*ts, fusion]

    def create_fused_vars(self, styles: list, global_latents: list, batch_size: int = 1) -> SimpleNamespace:
        """``create_vars`` with the centres' global latents ``[B, 2, Dg]`` and styles ``[B, D]`` given (their
        ``get_style`` on ``[B, 2, Dg]`` pixel-normalises across the two slots; see the test)."""
        v = self.create_vars(batch_size)
        v.global_latent, v.styles = global_latents, styles
        return v

    @torch.no_grad()
    def generate(self, v: SimpleNamespace) -> torch.Tensor:
        ts, u = self.config.train_params.ts_input_size, self.ss_unfold_size
        B = v.meta_img.shape[0]
        for ix, iy in itertools.product(range(self.num_steps_h), range(self.num_steps_w)):
            zx_st, zy_st = (int(t) for t in self.start_pts_mesh_z[ix, iy])
            zx0, zy0, zx1, zy1 = zx_st - u, zy_st - u, zx_st + ts + u, zy_st + ts + u
            x_st = [int(m[ix, iy, 0]) for m in self.start_pts_mesh_outfeats]
            y_st = [int(m[ix, iy, 1]) for m in self.start_pts_mesh_outfeats]
            sizes = [int(s) for s in self.outfeat_sizes_list]
            noises = [n[:, :, a : a + s, b : b + s] for n, a, b, s in zip(v.noises, x_st, y_st, sizes)]
            maps_ts = []
            for m, mesh, size in zip(self.meta_fusion_map_ts, self.start_pts_mesh_infeats, self.infeat_sizes_list):
                a, b, size = int(mesh[ix, iy, 0]), int(mesh[ix, iy, 1]), int(size)
                maps_ts.append(m[:, :, a : a + size, b : b + size].repeat(B, 1, 1, 1))
            img = (x_st[-1], y_st[-1], sizes[-1])
            maps_ts.append(self.meta_fusion_map_ts[-1][:, :, img[0] : img[0] + img[2], img[1] : img[1] + img[2]])
            patch = self.g_ema(
                global_latent=[g[:, 0] for g in v.global_latent],
                local_latent=v.local_latent[:, :, zx0:zx1, zy0:zy1],
                styles=v.styles,
                override_coords=v.meta_coords[:, :, zx0:zx1, zy0:zy1],
                noises=noises,
                style_fusion_map_ss=self.meta_fusion_map_ss[:, :, zx0:zx1, zy0:zy1].repeat(B, 1, 1, 1),
                style_fusion_map_ts=maps_ts,
            )
            v.meta_img[:, :, img[0] : img[0] + img[2], img[1] : img[1] + img[2]] = patch
        return v.meta_img
