"""A re-implementation of NVIDIA's StyleGAN2 generator as their code runs it without CUDA, for the importer tests.

It follows ``training/networks_stylegan2.py`` (the ``stylegan3`` repository; StyleGAN2-ADA's
``training/networks.py`` computes the same) with the pure-PyTorch reference ops of ``torch_utils/ops``: the
*fused* modulated convolution (per-sample weights, one grouped convolution), ``conv2d_resample``'s upsampling
(grouped transposed convolution, then ``upfirdn2d`` with padding 1 and gain 4), ``upsample2d`` of the skip image
(zero insertion, padding 2 / 1, the 4×4 filter), ``bias_act``. Module and parameter names, constructor arguments
and persistent-class pickling are theirs; the ops shared with StyleGAN3 come from ``stylegan3_reference``. The
module name under which the classes pickle is chosen per test: ``training.networks_stylegan2`` (StyleGAN3's
``--cfg=stylegan2``) or ``training.networks`` (StyleGAN2-ADA).
"""

from __future__ import annotations

import contextlib

import numpy as np
import stylegan3_reference as nv3
import torch
import torch.nn.functional as F
from foreign_modules import installed, name_classes
from torch import nn

PersistentModule = nv3.PersistentModule


def setup_filter(taps) -> torch.Tensor:
    """``upfirdn2d.setup_filter``: the outer product of a 1-D filter with itself, normalised to sum 1."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = f.ger(f)
    return f / f.sum()


def conv2d_resample(x, w, f=None, up=1, padding=0, groups=1):
    """``conv2d_resample`` for ``down = 1`` and ``flip_weight = (up == 1)``, as the synthesis layers call it."""
    if up == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    out_channels, in_per_group, kh, kw = w.shape
    w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
    w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
    fw = f.shape[-1]
    p0 = padding + (fw + up - 1) // 2 - (kw - 1)
    p1 = padding + (fw - up) // 2 - (kw - up)
    x = F.conv_transpose2d(x, w, stride=up, groups=groups)
    return nv3.upfirdn2d(x, f, padding=(p0, p1, p0, p1), gain=up**2)


def upsample2d(x, f, up=2):
    fw = f.shape[-1]
    p = ((fw + up - 1) // 2, (fw - up) // 2)
    return nv3.upfirdn2d(x, f, up=up, padding=(p[0], p[1], p[0], p[1]), gain=up**2)


def modulated_conv2d(x, weight, styles, noise=None, up=1, padding=0, resample_filter=None, demodulate=True):
    """The fused form (``fused_modconv=True``, their inference default)."""
    batch_size = x.shape[0]
    _, in_channels, kh, kw = weight.shape
    w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [NOIkk]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [NO]
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(x, w, f=resample_filter, up=up, padding=padding, groups=batch_size)
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x.add_(noise)
    return x


class FullyConnectedLayer(nv3.FullyConnectedLayer):
    def __init__(self, in_features, out_features, bias=True, activation="linear", lr_multiplier=1.0, bias_init=0.0):
        super().__init__(
            in_features,
            out_features,
            activation=activation,
            bias=bias,
            lr_multiplier=lr_multiplier,
            bias_init=bias_init,
        )
        self._init_kwargs = dict(bias=bias, activation=activation, lr_multiplier=lr_multiplier, bias_init=bias_init)


class MappingNetwork(nv3.MappingNetwork):
    """Their StyleGAN2 mapping computes what StyleGAN3's does; it defaults to 8 layers."""

    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=8, lr_multiplier=0.01, w_avg_beta=0.998):
        super().__init__(
            z_dim, c_dim, w_dim, num_ws, num_layers=num_layers, lr_multiplier=lr_multiplier, w_avg_beta=w_avg_beta
        )


class SynthesisLayer(PersistentModule):
    def __init__(
        self,
        in_channels,
        out_channels,
        w_dim,
        resolution,
        kernel_size=3,
        up=1,
        use_noise=True,
        activation="lrelu",
        resample_filter=(1, 3, 3, 1),
        conv_clamp=None,
        channels_last=False,
    ):
        super().__init__(
            in_channels,
            out_channels,
            w_dim=w_dim,
            resolution=resolution,
            kernel_size=kernel_size,
            up=up,
            use_noise=use_noise,
            activation=activation,
            resample_filter=list(resample_filter),
            conv_clamp=conv_clamp,
            channels_last=channels_last,
        )
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = float(np.sqrt(2))
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x, w, noise_mode="random", gain=1):
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution]) * self.noise_strength
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(
            x, self.weight, styles, noise=noise, up=self.up, padding=self.padding, resample_filter=self.resample_filter
        )
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return nv3.bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class ToRGBLayer(PersistentModule):
    def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None, channels_last=False):
        super().__init__(
            in_channels,
            out_channels,
            w_dim,
            kernel_size=kernel_size,
            conv_clamp=conv_clamp,
            channels_last=channels_last,
        )
        self.in_channels, self.out_channels, self.w_dim, self.conv_clamp = in_channels, out_channels, w_dim, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size**2))

    def forward(self, x, w):
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return nv3.bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(PersistentModule):
    def __init__(
        self,
        in_channels,
        out_channels,
        w_dim,
        resolution,
        img_channels,
        is_last,
        architecture="skip",
        resample_filter=(1, 3, 3, 1),
        conv_clamp=256,
        use_fp16=False,
        fp16_channels_last=False,
        **layer_kwargs,
    ):
        super().__init__(
            in_channels,
            out_channels,
            w_dim=w_dim,
            resolution=resolution,
            img_channels=img_channels,
            is_last=is_last,
            architecture=architecture,
            resample_filter=list(resample_filter),
            conv_clamp=conv_clamp,
            use_fp16=use_fp16,
            fp16_channels_last=fp16_channels_last,
            **layer_kwargs,
        )
        self.in_channels, self.w_dim, self.resolution = in_channels, w_dim, resolution
        self.img_channels, self.is_last, self.architecture, self.use_fp16 = (
            img_channels,
            is_last,
            architecture,
            use_fp16,
        )
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim=w_dim,
                resolution=resolution,
                up=2,
                resample_filter=resample_filter,
                conv_clamp=conv_clamp,
                **layer_kwargs,
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp, **layer_kwargs
        )
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1

    def forward(self, x, img, ws, **layer_kwargs):
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x, next(w_iter), **layer_kwargs)
        else:
            x = self.conv0(x, next(w_iter), **layer_kwargs)
            x = self.conv1(x, next(w_iter), **layer_kwargs)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter))
            img = img.add_(y) if img is not None else y
        return x, img


class SynthesisNetwork(PersistentModule):
    def __init__(
        self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512, num_fp16_res=4, **block_kwargs
    ):
        super().__init__(
            w_dim=w_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            channel_base=channel_base,
            channel_max=channel_max,
            num_fp16_res=num_fp16_res,
            **block_kwargs,
        )
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels_dict = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels_dict[res // 2] if res > 4 else 0
            is_last = res == img_resolution
            block = SynthesisBlock(
                in_channels,
                channels_dict[res],
                w_dim=w_dim,
                resolution=res,
                img_channels=img_channels,
                is_last=is_last,
                use_fp16=res >= fp16_resolution,
                **block_kwargs,
            )
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def forward(self, ws, **block_kwargs):
        ws = ws.to(torch.float32)
        block_ws, w_idx = [], 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws.append(ws.narrow(1, w_idx, block.num_conv + block.num_torgb))
            w_idx += block.num_conv
        x = img = None
        for res, cur_ws in zip(self.block_resolutions, block_ws):
            x, img = getattr(self, f"b{res}")(x, img, cur_ws, **block_kwargs)
        return img


class Generator(PersistentModule):
    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs=None, **synthesis_kwargs):
        mapping_kwargs = mapping_kwargs or {}
        super().__init__(
            z_dim=z_dim,
            c_dim=c_dim,
            w_dim=w_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            mapping_kwargs=mapping_kwargs,
            **synthesis_kwargs,
        )
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **synthesis_kwargs
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)


_CLASSES = dict(
    Generator=Generator,
    MappingNetwork=MappingNetwork,
    SynthesisNetwork=SynthesisNetwork,
    SynthesisBlock=SynthesisBlock,
    SynthesisLayer=SynthesisLayer,
    ToRGBLayer=ToRGBLayer,
    FullyConnectedLayer=FullyConnectedLayer,
)
STYLEGAN3_REPO, STYLEGAN2_ADA = "training.networks_stylegan2", "training.networks"


@contextlib.contextmanager
def nvidia_modules(module: str = STYLEGAN3_REPO):
    """NVIDIA's module names in ``sys.modules``, the classes named under ``module``, only while a pickle is
    written."""
    table = {
        "training": {},
        module: _CLASSES,
        "torch_utils": {},
        "torch_utils.persistence": dict(_reconstruct_persistent_obj=nv3._reconstruct_persistent_obj),
    }
    name_classes(table)
    with installed(table):
        yield
