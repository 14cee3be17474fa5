"""StyleGAN2 (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", 2020), as NVIDIA's
``stylegan3`` repository builds it for ``--cfg=stylegan2`` (``training/networks_stylegan2.py``, configs E–F).

The synthesis starts from a learned constant ``[C, 4, 4]`` and doubles the resolution block by block up to
``img_resolution``. Every layer is a modulated, demodulated 3×3 convolution with per-pixel noise:

    x ← conv(x · s, W) · d,  s = A(w),  d_o = (Σ_{i,k} (W_oik · s_i)² + 1e-8)^(−1/2)
    x ← clamp(lrelu(x + n · noise_strength + b, 0.2) · √2, ±conv_clamp)

where the first layer of each block after the first upsamples ×2 as NVIDIA's ``conv2d_resample`` does: a
stride-2 transposed convolution followed by the ``[1, 3, 3, 1]`` low-pass filter (gain 4). The *skip*
architecture sums every block's ToRGB (a modulated 1×1 convolution without demodulation, styles scaled by
``1/√C``) into an image that is upsampled ×2 with the same filter between blocks. Channels at resolution ``r``
are ``min(channel_base // r, channel_max)``; ``num_ws = 2·log2(R) − 2`` (each block's layers and its ToRGB
read consecutive ws, the ToRGB sharing the next block's first). Output in ``[-1, 1]`` after training, no tanh.

The maths is theirs: modulation scales the input and demodulation the output of one shared-weight
convolution (their ``fused_modconv=False`` form; the fused grouped convolution gives the same numbers to float
rounding), everything in float32 (their FP16 blocks run only on CUDA). Noise: ``noise_mode`` ``'random'`` (a
fresh map per sample, as training draws it), ``'const'`` (each layer's stored map, as ``gen_images.py`` renders)
or ``'none'``; by default random while the module trains and const in eval mode, so a seed gives one image.

Grids: their code has no input transform, so StyleGAN2 renders only its native frame; every other grid, its
translations included, is refused in one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.models.filters import upsample_1d
from polyinr.models.generator import FIXED_FRAME, Generator
from polyinr.models.layers import LRELU_GAIN, LRELU_SLOPE, EqualizedLinear
from polyinr.models.mapping import LatentSizes, MappingConfig, MappingNetwork
from polyinr.models.registry import register
from polyinr.models.training_hooks import TrainableGenerator

NOISE_MODES = ("random", "const", "none")
RESAMPLE_TAPS = (1.0, 3.0, 3.0, 1.0)  # NVIDIA's resample_filter, applied separably and normalised to sum 1


@dataclass(frozen=True)
class StyleGAN2Config(LatentSizes):
    mapping: MappingConfig = field(
        default_factory=lambda: MappingConfig(z_dim=512, w_dim=512, num_layers=8, lr_multiplier=0.01)
    )
    img_resolution: int = 256  # output side in pixels (a power of two ≥ 4); filled from the dataset when training
    img_channels: int = 3  # output channels
    channel_base: int = 32768  # channels at resolution r = min(channel_base // r, channel_max)
    channel_max: int = 512  # most channels of any block
    conv_clamp: float = 256.0  # every layer's output is clamped to ±this; 0 = no clamp (their --fp32)

    @property
    def num_ws(self) -> int:
        return 2 * int(math.log2(self.img_resolution)) - 2

    def block_resolutions(self) -> list[int]:
        """``[4, 8, …, img_resolution]``; a resolution that is not a power of two ≥ 4 is a one-line error."""
        R = self.img_resolution
        if R < 4 or R & (R - 1):
            raise PolyinrError(f"StyleGAN2 renders square images whose side is a power of two ≥ 4, not {R}")
        return [2**i for i in range(2, int(math.log2(R)) + 1)]

    def channels(self, resolution: int) -> int:
        """Feature channels of the block at ``resolution``."""
        return min(self.channel_base // resolution, self.channel_max)


# ---------------------------------------------------------------------------- resampling and modulation


def resample_taps(device: torch.device | None = None) -> torch.Tensor:
    """The 1-D low-pass filter ``[4]`` whose outer product is NVIDIA's ``setup_filter([1, 3, 3, 1])``."""
    taps = torch.tensor(RESAMPLE_TAPS, device=device)
    return taps / taps.sum()


def upsample2d(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """NVIDIA's ``upsample2d``: ``[B, C, H, W] → [B, C, 2H, 2W]``, zero insertion and the low-pass ``taps``
    (gain 2 per axis), the output aligned as theirs (padding 2 before, 1 after the zero-inserted signal)."""
    x = upsample_1d(x, taps * 2, 2, crop=1, dim=3)
    return upsample_1d(x, taps * 2, 2, crop=1, dim=2)


def lowpass_after_transposed_conv(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """The low-pass filter ``conv2d_resample`` applies after a stride-2 transposed 3×3 convolution: pad 1 zero on
    every side, ``taps`` along both axes with gain 2 each. ``[B, C, 2H + 1, 2W + 1] → [B, C, 2H, 2W]``."""
    C, K = x.shape[1], taps.numel()
    f = (taps * 2).to(x.dtype)
    x = F.conv2d(x, f.view(1, 1, 1, K).expand(C, 1, 1, K), padding=(0, 1), groups=C)
    return F.conv2d(x, f.view(1, 1, K, 1).expand(C, 1, K, 1), padding=(1, 0), groups=C)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool,
    taps: torch.Tensor | None = None,
) -> torch.Tensor:
    """NVIDIA's ``modulated_conv2d`` without noise or bias: scale the input channels by ``styles``, convolve
    with the shared ``weight`` and scale the output channels by the demodulation coefficients.

    ``x [B, I, H, W]``, ``weight [O, I, k, k]``, ``styles [B, I]`` → ``[B, O, H, W]``; with ``taps`` (their
    ``up=2``; ``k = 3``) a stride-2 transposed convolution then the low-pass ``taps`` (gain 4): ``[B, O, 2H, 2W]``.
    """
    k = weight.shape[-1]
    x = x * styles.to(x.dtype)[:, :, None, None]
    if taps is None:
        x = F.conv2d(x, weight.to(x.dtype), padding=k // 2)
    else:
        x = F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2)  # [B, O, 2H + 1, 2W + 1]
        x = lowpass_after_transposed_conv(x, taps)
    if demodulate:
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [B, O]
        x = x * dcoefs.to(x.dtype)[:, :, None, None]
    return x


# ---------------------------------------------------------------------------- layers and blocks


class SynthesisLayer(nn.Module):
    """Modulated 3×3 convolution (upsampling ×2 when ``up``), noise, bias, leaky ReLU ·√2, clamp."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool, conv_clamp: float
    ) -> None:
        super().__init__()
        self.resolution, self.up, self.conv_clamp = resolution, up, conv_clamp
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))  # [R, R] the 'const' noise
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str, taps: torch.Tensor) -> torch.Tensor:
        """``x [B, in_channels, r, r]`` (``r = resolution / 2`` when ``up``), ``w [B, w_dim]`` →
        ``[B, out_channels, resolution, resolution]``."""
        x = modulated_conv2d(x, self.weight, self.affine(w), demodulate=True, taps=taps if self.up else None)
        if noise_mode == "random":
            B, R = x.shape[0], self.resolution
            x = x + torch.randn(B, 1, R, R, device=x.device, dtype=x.dtype) * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        x = F.leaky_relu(x + self.bias.to(x.dtype)[None, :, None, None], LRELU_SLOPE) * LRELU_GAIN
        return x.clamp(-self.conv_clamp, self.conv_clamp) if self.conv_clamp else x

    def extra_repr(self) -> str:
        O, I = self.weight.shape[:2]
        return f"{I}->{O}, resolution={self.resolution}, up={self.up}"


class ToRGBLayer(nn.Module):
    """Modulated 1×1 convolution without demodulation (styles scaled by ``1/√in_channels``), bias, clamp."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int, conv_clamp: float) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``x [B, in_channels, r, r]``, ``w [B, w_dim]`` → ``[B, img_channels, r, r]``."""
        x = modulated_conv2d(x, self.weight, self.affine(w) * self.weight_gain, demodulate=False)
        x = x + self.bias.to(x.dtype)[None, :, None, None]
        return x.clamp(-self.conv_clamp, self.conv_clamp) if self.conv_clamp else x


class SynthesisBlock(nn.Module):
    """One resolution of the skip architecture: (the constant input |  an upsampling layer ``conv0``),
    ``conv1``, and a ToRGB added to the upsampled image of the blocks before."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int, conv_clamp: float
    ) -> None:
        super().__init__()
        self.resolution = resolution
        first = in_channels == 0
        self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution)) if first else None
        self.conv0 = None if first else SynthesisLayer(in_channels, out_channels, w_dim, resolution, True, conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, False, conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp)
        self.num_conv = 1 if first else 2

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str, taps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``ws [B, num_conv + 1, w_dim]``; features ``x`` and ``img`` at half this resolution (None for the
        first block) → both at this resolution."""
        w = ws.unbind(dim=1)
        if self.conv0 is None:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)  # [B, C, 4, 4]
        else:
            x = self.conv0(x, w[0], noise_mode, taps)
        x = self.conv1(x, w[self.num_conv - 1], noise_mode, taps)
        y = self.torgb(x, w[self.num_conv])
        img = y if img is None else upsample2d(img, taps) + y
        return x, img


class StyleGAN2Synthesis(nn.Module):
    """``ws [B, num_ws, w_dim]`` → images ``[B, img_channels, R, R]``: blocks ``b4``, ``b8``, … ``bR``."""

    def __init__(self, cfg: StyleGAN2Config) -> None:
        super().__init__()
        self.block_names = []
        for res in cfg.block_resolutions():
            in_channels = cfg.channels(res // 2) if res > 4 else 0
            block = SynthesisBlock(in_channels, cfg.channels(res), cfg.w_dim, res, cfg.img_channels, cfg.conv_clamp)
            self.add_module(f"b{res}", block)
            self.block_names.append(f"b{res}")
        self.num_ws = cfg.num_ws
        self.register_buffer("taps", resample_taps(), persistent=False)  # [4], fixed by the architecture

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, name) for name in self.block_names]

    def forward(self, ws: torch.Tensor, grid: Grid | None = None, noise_mode: str | None = None) -> torch.Tensor:
        """``ws [B, num_ws, w_dim]`` on the native frame (``grid``, checked by the generator, is that frame).

        ``noise_mode``: ``'random'``, ``'const'`` or ``'none'``; None = random while training, const in eval.
        """
        if noise_mode is None:
            noise_mode = "random" if self.training else "const"
        if noise_mode not in NOISE_MODES:
            raise PolyinrError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
        if ws.ndim != 3 or ws.shape[1] != self.num_ws:
            raise PolyinrError(f"StyleGAN2 synthesis takes ws [B, {self.num_ws}, w_dim], got {tuple(ws.shape)}")
        ws = ws.to(torch.float32)
        x = img = None
        start = 0
        for block in self.blocks():
            x, img = block(x, img, ws[:, start : start + block.num_conv + 1], noise_mode, self.taps)
            start += block.num_conv
        return img.contiguous()


# ---------------------------------------------------------------------------- the generator


@register(
    "stylegan2",
    StyleGAN2Config,
    presets={
        # NVIDIA's train.py --cfg=stylegan2: 512-d z and w, 8 mapping layers, channel base 32768, at most 512.
        **{
            f"paper-{R}": dict(
                img_resolution=R, channel_base=32768, channel_max=512, mapping=dict(z_dim=512, w_dim=512, num_layers=8)
            )
            for R in (256, 512, 1024)
        },
        # Minutes on two CPU cores at 32²: at most 32 channels, a 2-layer mapping.
        "cpu": dict(
            img_resolution=32,
            channel_base=1024,
            channel_max=32,
            mapping=dict(z_dim=64, w_dim=64, embed_dim=32, num_layers=2),
        ),
    },
)
class StyleGAN2Generator(TrainableGenerator, Generator):
    """The shared mapping (8 layers, lr multiplier 0.01) + StyleGAN2's skip synthesis; its native frame only."""

    grid_support = FIXED_FRAME

    def __init__(self, cfg: StyleGAN2Config) -> None:
        super().__init__(cfg)
        self.mapping = MappingNetwork(cfg.mapping, cfg.num_ws)
        self.synthesis = StyleGAN2Synthesis(cfg)

    def synthesize(
        self, ws: torch.Tensor, grid: Grid | None = None, *, update_emas: bool = False, noise_mode: str | None = None
    ) -> torch.Tensor:
        """As the contract's; ``noise_mode`` as :class:`StyleGAN2Synthesis` takes it (None: by training mode)."""
        return self.synthesis(ws, self.check_grid(grid), noise_mode=noise_mode)

    def style_mixing_range(self) -> range:
        """Mixing takes a cut ``1 ≤ k < num_ws``, as their loss draws it: ws ``k…`` come from another sample."""
        return range(1, self.num_ws)
