"""StyleGAN3, the alias-free generator (Karras et al., "Alias-Free Generative Adversarial Networks", 2021).

Every feature map is a band-limited continuous signal sampled on a grid with a 10-pixel margin. The synthesis
starts from Fourier features whose frequencies and phases are rotated and shifted by a transform (learned from
``w_0``, composed with the user's transform), so moving or rotating the output is a change of the input's
transform. Each of the ``num_layers`` layers is a modulated convolution followed by a *filtered* leaky ReLU:

    x ← conv(x; w·s, demodulated) + b;  x ← ↑up (Kaiser sinc, f_c = in cutoff);  x ← clamp(lrelu(x)·√2, ±256);
    x ← ↓down (Kaiser sinc or radial jinc, f_c = out cutoff)

with cutoffs growing geometrically from 2 to ``res/2``, stopbands from ``2^2.1`` to ``res/2·2^0.3``, sampling
rates the next power of two above twice the stopband, and the last two layers critically sampled at ``res``
(:func:`design_schedule`). Config T uses 3×3 convolutions; config R 1×1 convolutions, radially symmetric down
filters and twice the channels. The output is ``0.25 ×`` the ToRGB layer, without tanh.

This module computes what NVIDIA's ``training/networks_stylegan3.py`` computes (parameter names included, so
their pickles map one to one), but fast on CPU: the filters run as separable 1-D passes, upsampling is a
strided transposed convolution (polyphase: no multiplications by inserted zeros), downsampling a strided
convolution (no samples computed only to be thrown away), every feature map is channels-last, and a layer's
modulation scales the input and output of one shared-weight convolution rather than building per-sample
weights. The maths is theirs: outputs agree to float rounding. Two choices differ from their code and do not
change any image: styles are pre-normalised per sample (theirs over the whole batch; demodulation cancels the
scale either way), and the lrelu gain √2 is folded into the upsampling filter.

Grids: StyleGAN3 renders its native frame; a :class:`~polyinr.grid.Grid` translated or rotated with
:meth:`~polyinr.grid.Grid.translated` / :meth:`~polyinr.grid.Grid.rotated` becomes the input's user transform
(:func:`transform_from_grid`), so the equivariance metrics and ``--translate/--rotate`` work; every other grid
is refused in one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from polyinr.grid import IDENTITY, Grid
from polyinr.models.filters import upsample_1d
from polyinr.models.generator import FRAME, Generator, GridRefused, describe_grid, is_rigid
from polyinr.models.layers import LRELU_GAIN, LRELU_SLOPE, EqualizedLinear
from polyinr.models.mapping import LatentSizes, MappingConfig, MappingNetwork
from polyinr.models.registry import register
from polyinr.models.training_hooks import TrainableGenerator


@dataclass(frozen=True)
class StyleGAN3Config(LatentSizes):
    mapping: MappingConfig = field(default_factory=lambda: MappingConfig(z_dim=512, w_dim=512, lr_multiplier=0.01))
    img_resolution: int = 256  # output side in pixels (a power of two); filled from the dataset when training
    img_channels: int = 3  # output channels
    channel_base: int = 32768  # channels of a layer = min(channel_base / 2 / cutoff, channel_max)
    channel_max: int = 512  # most channels of any layer
    num_layers: int = 14  # modulated layers, excluding the Fourier input and ToRGB; num_ws = num_layers + 2
    num_critical: int = 2  # last layers sampled critically (cutoff = sampling rate / 2 = res / 2)
    first_cutoff: float = 2.0  # f_c of the input and layer 0, cycles per image
    first_stopband: float = 2**2.1  # minimum stopband f_t of layer 0
    last_stopband_rel: float = 2**0.3  # minimum stopband of the last layer, relative to its cutoff res / 2
    margin_size: int = 10  # pixels computed beyond the image on every side, until the critical layers
    output_scale: float = 0.25  # the image is this times ToRGB's output
    conv_kernel: int = 3  # modulated convolution size: 3 (config T) or 1 (config R); ToRGB is always 1
    filter_size: int = 6  # low-pass taps per factor of up/down-sampling
    lrelu_upsampling: int = 2  # the leaky ReLU runs at this times the higher of a layer's sampling rates
    use_radial_filters: bool = False  # radially symmetric jinc down filters on non-critical layers (config R)
    conv_clamp: float = 256.0  # every layer's output is clamped to ±this
    magnitude_ema_beta: float = 0.999  # decay of each layer's input-magnitude average (1 = frozen)

    @property
    def num_ws(self) -> int:
        return self.num_layers + 2


# ---------------------------------------------------------------------------- the layer schedule


@dataclass(frozen=True)
class LayerSpec:
    """Everything one synthesis layer is built from: sizes in pixels, sampling rates and frequencies in cycles
    per image (the image spans one unit), half-widths of the transition bands."""

    index: int  # position in the synthesis (0 = first layer after the input)
    in_channels: int
    out_channels: int
    in_size: int  # side of the input feature map, margins included
    out_size: int
    in_sampling_rate: int
    out_sampling_rate: int
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    is_torgb: bool = False  # the final linear 1×1 layer
    is_critically_sampled: bool = False  # cutoff = sampling rate / 2: no radial filter
    conv_kernel: int = 3  # ignored (1) for ToRGB
    filter_size: int = 6
    lrelu_upsampling: int = 2  # ignored (1) for ToRGB
    use_radial_filters: bool = False  # ignored for critically sampled layers

    @property
    def name(self) -> str:
        """NVIDIA's attribute name, e.g. ``L0_36_512``."""
        return f"L{self.index}_{self.out_size}_{self.out_channels}"

    @property
    def kernel(self) -> int:
        return 1 if self.is_torgb else self.conv_kernel

    @property
    def tmp_sampling_rate(self) -> int:
        """Sampling rate of the leaky ReLU."""
        return max(self.in_sampling_rate, self.out_sampling_rate) * (1 if self.is_torgb else self.lrelu_upsampling)

    @property
    def up_factor(self) -> int:
        return self.tmp_sampling_rate // self.in_sampling_rate

    @property
    def down_factor(self) -> int:
        return self.tmp_sampling_rate // self.out_sampling_rate

    @property
    def up_taps(self) -> int:
        return self.filter_size * self.up_factor if self.up_factor > 1 and not self.is_torgb else 1

    @property
    def down_taps(self) -> int:
        return self.filter_size * self.down_factor if self.down_factor > 1 and not self.is_torgb else 1

    @property
    def down_radial(self) -> bool:
        return self.use_radial_filters and not self.is_critically_sampled

    @property
    def padding(self) -> tuple[int, int]:
        """``(low, high)`` padding of the upsampled signal so the output lands on ``out_size`` samples whose
        centres match the input's (the symmetric interpretation of the paper's Appendix C.3)."""
        total = (self.out_size - 1) * self.down_factor + 1  # wanted before downsampling
        total -= (self.in_size + self.kernel - 1) * self.up_factor  # the convolution's output, upsampled
        total += self.up_taps + self.down_taps - 2  # what the two filters take away
        low = (total + self.up_factor) // 2
        return low, total - low


def chained_layers(
    start: int,
    channels: np.ndarray,
    sizes: np.ndarray,
    sampling_rates: np.ndarray,
    cutoffs: np.ndarray,
    half_widths: np.ndarray,
    num_critical: int,
    **layer_kwargs: int | bool,
) -> list[LayerSpec]:
    """One :class:`LayerSpec` per entry of the per-layer arrays (``[L + 1]`` each, ToRGB last), numbered from
    ``start``: layer ``i`` reads what layer ``i − 1`` writes (the first reads its own input); the last
    ``num_critical`` before ToRGB and ToRGB are critically sampled."""
    last = len(cutoffs) - 1
    specs = []
    for i in range(last + 1):
        p = max(i - 1, 0)
        specs.append(
            LayerSpec(
                index=start + i,
                in_channels=int(channels[p]),
                out_channels=int(channels[i]),
                in_size=int(sizes[p]),
                out_size=int(sizes[i]),
                in_sampling_rate=int(sampling_rates[p]),
                out_sampling_rate=int(sampling_rates[i]),
                in_cutoff=float(cutoffs[p]),
                out_cutoff=float(cutoffs[i]),
                in_half_width=float(half_widths[p]),
                out_half_width=float(half_widths[i]),
                is_torgb=i == last,
                is_critically_sampled=i >= last - num_critical,
                **layer_kwargs,
            )
        )
    return specs


def design_schedule(
    img_resolution: int,
    img_channels: int = 3,
    num_layers: int = 14,
    num_critical: int = 2,
    first_cutoff: float = 2.0,
    first_stopband: float = 2**2.1,
    last_stopband_rel: float = 2**0.3,
    margin_size: int = 10,
    channel_base: int = 32768,
    channel_max: int = 512,
    **layer_kwargs: int | bool,
) -> list[LayerSpec]:
    """The ``num_layers + 1`` layers (ToRGB last) of a StyleGAN3 synthesis, NVIDIA's ``SynthesisNetwork`` maths.

    ``layer_kwargs`` (``conv_kernel``, ``filter_size``, ``lrelu_upsampling``, ``use_radial_filters``) go to
    every :class:`LayerSpec`. Layer ``i`` reads what layer ``i − 1`` writes (layer 0 reads the input).
    """
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    return chained_layers(0, channels, sizes, sampling_rates, cutoffs, half_widths, num_critical, **layer_kwargs)


def layer_schedule(cfg: StyleGAN3Config) -> list[LayerSpec]:
    """The layers of ``cfg``'s synthesis (:func:`design_schedule` with its settings)."""
    return design_schedule(
        cfg.img_resolution,
        cfg.img_channels,
        cfg.num_layers,
        cfg.num_critical,
        cfg.first_cutoff,
        cfg.first_stopband,
        cfg.last_stopband_rel,
        cfg.margin_size,
        cfg.channel_base,
        cfg.channel_max,
        conv_kernel=cfg.conv_kernel,
        filter_size=cfg.filter_size,
        lrelu_upsampling=cfg.lrelu_upsampling,
        use_radial_filters=cfg.use_radial_filters,
    )


def lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False) -> torch.Tensor | None:
    """A Kaiser-windowed low-pass filter, NVIDIA's ``design_lowpass_filter``; None for one tap (identity).

    Separable: ``scipy.signal.firwin`` taps ``[numtaps]``, applied along each axis. Radial: a jinc times the
    outer product of Kaiser windows, ``[numtaps, numtaps]``, summing to 1.
    """
    if numtaps == 1:
        return None
    import scipy.signal  # here, not at the top: importing scipy.signal takes seconds, and most commands never need it
    import scipy.special

    if not radial:
        return torch.as_tensor(
            scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs), dtype=torch.float32
        )
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    w = np.kaiser(numtaps, beta)
    f *= np.outer(w, w)
    f /= np.sum(f)
    return torch.as_tensor(f, dtype=torch.float32)


# ---------------------------------------------------------------------------- grids


def transform_from_grid(grid: Grid | None, img_resolution: int) -> torch.Tensor:
    """The input's user transform ``[3, 3]`` (float64, acting on ``(x, y, 1)``) that renders ``grid``.

    StyleGAN3 places output pixel ``j`` at ``(j + 0.5) / R − 0.5`` (x = column, y = row, the image spanning one
    unit); a grid's pixel ``(r, c)`` of the frame sits at ``(r, c) / (R − 1)``. A grid's affine ``A p + t``
    says where pixel ``p`` samples the plane, StyleGAN3's matrix ``M`` where output point ``q`` samples it, so
    ``M`` is the grid's affine in StyleGAN3's coordinates. Only the frame with a rigid motion is accepted.
    """
    R = img_resolution
    if grid is None:
        return torch.eye(3, dtype=torch.float64)
    if replace(grid, affine=IDENTITY) != Grid.frame(R) or not is_rigid(grid.affine):
        raise GridRefused(
            f"StyleGAN3 renders only its {R}x{R} frame, translated or rotated; not a {describe_grid(grid)}"
        )
    a, b, t_row, c, d, t_col = grid.affine
    scale, offset = (R - 1) / R, 0.5 / R - 0.5  # frame units → StyleGAN3 units, and the frame's origin there
    lin = torch.tensor([[d, c], [b, a]], dtype=torch.float64)  # (row, col) → (x, y): swap both sides
    shift = (
        scale * torch.tensor([t_col, t_row], dtype=torch.float64)
        + offset
        - lin @ torch.full((2,), offset, dtype=torch.float64)
    )
    m = torch.eye(3, dtype=torch.float64)
    m[:2, :2], m[:2, 2] = lin, shift
    return m


def grid_from_transform(matrix: torch.Tensor | np.ndarray, img_resolution: int) -> Grid:
    """The frame grid that :func:`transform_from_grid` turns into ``matrix`` (a StyleGAN3 user transform
    ``[3, 3]`` on ``(x, y, 1)``, e.g. the inverse of NVIDIA's ``gen_images.py`` ``make_transform``)."""
    R = img_resolution
    m = torch.as_tensor(matrix, dtype=torch.float64)
    lin, shift = m[:2, :2], m[:2, 2]
    scale, offset = (R - 1) / R, 0.5 / R - 0.5
    t_col, t_row = ((shift - offset + lin @ torch.full((2,), offset, dtype=torch.float64)) / scale).tolist()
    (d, c), (b, a) = lin.tolist()
    return Grid.frame(R).transformed((a, b, t_row, c, d, t_col))


# ---------------------------------------------------------------------------- fast filtered leaky ReLU


def _downsample(x: torch.Tensor, f: torch.Tensor, down: int) -> torch.Tensor:
    """Convolve ``x [B, C, H, W]`` with ``f`` (valid part) keeping every ``down``-th sample from the first.

    ``f [K]`` filters columns then rows; ``f [K, K]`` is one 2-D (radial) filter.
    """
    C = x.shape[1]
    if f.ndim == 2:
        return F.conv2d(x, f.flip([0, 1])[None, None].expand(C, 1, *f.shape), stride=down, groups=C)
    K = f.numel()
    f = f.flip(0)
    x = F.conv2d(x, f.view(1, 1, 1, K).expand(C, 1, 1, K), stride=(1, down), groups=C)
    return F.conv2d(x, f.view(1, 1, K, 1).expand(C, 1, K, 1), stride=(down, 1), groups=C)


def _crop_or_pad(x: torch.Tensor, dim: int, start: int, stop: int) -> torch.Tensor:
    """Samples ``[start, stop)`` of ``x`` along ``dim``, zeros where that range leaves the tensor."""
    pads = [0, 0, 0, 0]
    pads[(3 - dim) * 2 : (3 - dim) * 2 + 2] = [-start, stop - x.shape[dim]]
    return F.pad(x, pads)


def filtered_lrelu(
    x: torch.Tensor,
    up_filter: torch.Tensor | None,
    down_filter: torch.Tensor | None,
    up: int,
    down: int,
    padding: tuple[int, int],
    gain: float,
    slope: float,
    clamp: float | None,
) -> torch.Tensor:
    """Upsample (``up_filter``, gain ``up²``), pad by ``padding`` on both axes, ``clamp(lrelu(·)·gain)``,
    downsample (``down_filter``): NVIDIA's ``filtered_lrelu`` without its zero insertion and waste.

    ``x [B, C, H, W]`` (bias already added) → ``[B, C, H', W']``, channels-last. A one-tap (None) filter needs
    a factor of 1.
    """
    low, high = padding
    K = 1 if up_filter is None else up_filter.numel()
    # The padded signal is samples [K − 1 − low, L·up + high) of the full upsampled one; StyleGAN3's schedules
    # (even filter sizes) cut the same number from both ends, which the transposed convolution does itself.
    crop, crop_end = K - 1 - low, K - up - high
    if up_filter is not None and crop == crop_end >= 0:
        fold = gain if slope != 1 else 1.0  # lrelu(g·x) = g·lrelu(x) for g > 0
        x = upsample_1d(x, up_filter * up, up, crop, dim=3)
        x = upsample_1d(x, up_filter * (up * fold), up, crop, dim=2)
        gain = gain / fold
    else:
        if up_filter is not None:
            x = upsample_1d(upsample_1d(x, up_filter * up, up, 0, dim=3), up_filter * up, up, 0, dim=2)
        full_h, full_w = x.shape[2:]
        x = _crop_or_pad(x, 2, crop, full_h - crop_end)
        x = _crop_or_pad(x, 3, crop, full_w - crop_end).contiguous(memory_format=torch.channels_last)
    # x is a fresh tensor here, so the activation runs in place, in an order autograd accepts:
    # clamp(lrelu(x)·g, ±c) = lrelu(clamp(g·x, −c/slope, c)) for g > 0
    if gain != 1:
        x = x.mul_(gain)
    if clamp is not None:
        x = x.clamp_(-clamp / slope, clamp)
    if slope != 1:
        x = F.leaky_relu_(x, slope)
    if down_filter is not None:
        x = _downsample(x, down_filter, down)
    return x


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    bias: torch.Tensor,
    demodulate: bool,
    input_gain: torch.Tensor,
) -> torch.Tensor:
    """NVIDIA's ``modulated_conv2d`` plus bias, as one shared-weight convolution: scale the input channels by
    the styles, convolve (``padding = k − 1``, the full output), scale the output channels by the
    demodulation coefficients. ``x [B, I, H, W]``, ``weight [O, I, k, k]``, ``styles [B, I]`` →
    ``[B, O, H + k − 1, W + k − 1]``."""
    k = weight.shape[-1]
    if demodulate:
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean(dim=1, keepdim=True).rsqrt()
        dcoefs = (styles.square() @ weight.square().sum([2, 3]).t() + 1e-8).rsqrt()  # [B, O]
    scale = (styles * input_gain)[:, :, None, None]  # [B, I, 1, 1]
    x = F.conv2d(x * scale.to(x.dtype), weight.to(x.dtype), padding=k - 1)
    if demodulate:
        return torch.addcmul(bias.to(x.dtype)[None, :, None, None], x, dcoefs.to(x.dtype)[:, :, None, None])
    return x + bias.to(x.dtype)[None, :, None, None]


# ---------------------------------------------------------------------------- blocks


class SynthesisInput(nn.Module):
    """Fourier features ``[B, C, size, size]`` at ``sampling_rate``, band-limited to ``bandwidth``, placed by
    the transform from ``w_0`` composed with the user transform."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: int, bandwidth: float) -> None:
        super().__init__()
        self.channels, self.size = channels, size
        self.sampling_rate, self.bandwidth = sampling_rate, bandwidth
        freqs = torch.randn(channels, 2)  # drawn once from a disc-like distribution, then fixed
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs /= radii * radii.square().exp().pow(0.25)
        freqs *= bandwidth
        self.weight = nn.Parameter(torch.randn(channels, channels))  # the learned C×C mixing
        self.affine = EqualizedLinear(w_dim, 4)  # (r_c, r_s, t_x, t_y), starting at the identity
        with torch.no_grad():
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("freqs", freqs)  # [C, 2] cycles per image in (x, y)
        self.register_buffer("phases", torch.rand(channels) - 0.5)  # [C] cycles

    def forward(self, w: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
        """``w [B, w_dim]``, user transform ``[3, 3]`` → ``[B, C, size, size]`` (channels-last)."""
        B = w.shape[0]
        t = self.affine(w)  # [B, 4]
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        m_r = torch.eye(3, device=w.device).repeat(B, 1, 1)  # inverse rotation of the image
        m_r[:, 0, 0], m_r[:, 0, 1], m_r[:, 1, 0], m_r[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        m_t = torch.eye(3, device=w.device).repeat(B, 1, 1)  # inverse translation
        m_t[:, 0, 2], m_t[:, 1, 2] = -t[:, 2], -t[:, 3]
        transforms = m_r @ m_t @ transform.to(w.device, torch.float32)  # [B, 3, 3]
        phases = self.phases + (self.freqs @ transforms[:, :2, 2:]).squeeze(2)  # [B, C]
        freqs = self.freqs @ transforms[:, :2, :2]  # [B, C, 2]
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        theta = torch.eye(2, 3, device=w.device)
        theta[0, 0] = theta[1, 1] = 0.5 * self.size / self.sampling_rate
        grid = F.affine_grid(theta[None], [1, 1, self.size, self.size], align_corners=False)  # [1, H, W, 2] (x, y)
        x = torch.einsum("hwk,bck->bhwc", grid[0], freqs)  # [B, H, W, C]: one matrix product, not B·H·W tiny ones
        x = torch.sin((x + phases[:, None, None]) * (2 * math.pi)) * amplitudes[:, None, None]
        x = x @ (self.weight / math.sqrt(self.channels)).t()  # [B, H, W, C]
        return x.permute(0, 3, 1, 2)  # [B, C, H, W], channels-last in memory

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, size={self.size}, sampling_rate={self.sampling_rate}, "
            f"bandwidth={self.bandwidth:g}"
        )


class SynthesisLayer(nn.Module):
    """Modulated convolution + filtered leaky ReLU (linear for ToRGB), built from a :class:`LayerSpec`."""

    def __init__(self, spec: LayerSpec, w_dim: int, conv_clamp: float, magnitude_ema_beta: float) -> None:
        super().__init__()
        self.spec = spec
        self.conv_clamp, self.magnitude_ema_beta = conv_clamp, magnitude_ema_beta
        k = spec.kernel
        self.affine = EqualizedLinear(w_dim, spec.in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(spec.out_channels, spec.in_channels, k, k))
        self.bias = nn.Parameter(torch.zeros(spec.out_channels))
        self.register_buffer("magnitude_ema", torch.ones([]))  # running mean of the input's squares
        tmp = spec.tmp_sampling_rate
        up = lowpass_filter(spec.up_taps, spec.in_cutoff, spec.in_half_width * 2, tmp)
        down = lowpass_filter(spec.down_taps, spec.out_cutoff, spec.out_half_width * 2, tmp, spec.down_radial)
        self.register_buffer("up_filter", up, persistent=False)  # [up_taps] or None; derived from the spec
        self.register_buffer("down_filter", down, persistent=False)  # [down_taps] or [down_taps]², or None

    def forward(self, x: torch.Tensor, w: torch.Tensor, update_emas: bool = False) -> torch.Tensor:
        """``x [B, in_channels, in_size, in_size]``, ``w [B, w_dim]`` → ``[B, out_channels, out_size, out_size]``."""
        spec = self.spec
        if update_emas:
            magnitude = x.detach().to(torch.float32).square().mean()
            self.magnitude_ema.copy_(magnitude.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        styles = self.affine(w)  # [B, in_channels]
        if spec.is_torgb:
            styles = styles * (1 / math.sqrt(spec.in_channels * spec.kernel**2))
        x = modulated_conv2d(
            x, self.weight, styles, self.bias, demodulate=not spec.is_torgb, input_gain=self.magnitude_ema.rsqrt()
        )
        gain, slope = (1.0, 1.0) if spec.is_torgb else (LRELU_GAIN, LRELU_SLOPE)
        return filtered_lrelu(
            x,
            self.up_filter,
            self.down_filter,
            spec.up_factor,
            spec.down_factor,
            spec.padding,
            gain,
            slope,
            self.conv_clamp,
        )

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"{s.in_channels}->{s.out_channels}, size {s.in_size}->{s.out_size}, "
            f"sr {s.in_sampling_rate}->{s.out_sampling_rate}, up {s.up_factor}, down {s.down_factor}"
        )


class StyleGAN3Synthesis(nn.Module):
    """``ws [B, num_ws, w_dim]`` → images ``[B, C, R, R]``: the Fourier input, then one layer per spec."""

    def __init__(
        self,
        specs: list[LayerSpec],
        w_dim: int,
        img_resolution: int,
        output_scale: float = 0.25,
        conv_clamp: float = 256.0,
        magnitude_ema_beta: float = 0.999,
    ) -> None:
        super().__init__()
        first = specs[0]
        self.img_resolution, self.output_scale = img_resolution, output_scale
        self.num_ws = len(specs) + 1
        self.input = SynthesisInput(w_dim, first.in_channels, first.in_size, first.in_sampling_rate, first.in_cutoff)
        self.layer_names = [spec.name for spec in specs]
        for spec in specs:
            self.add_module(spec.name, SynthesisLayer(spec, w_dim, conv_clamp, magnitude_ema_beta))

    def layers(self) -> list[SynthesisLayer]:
        return [getattr(self, name) for name in self.layer_names]

    def forward(self, ws: torch.Tensor, grid: Grid | None = None, update_emas: bool = False) -> torch.Tensor:
        """``ws [B, num_ws, w_dim]`` on the native frame, or ``grid`` = the frame translated / rotated."""
        transform = transform_from_grid(grid, self.img_resolution)
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0], transform)
        for layer, w in zip(self.layers(), ws[1:], strict=True):
            x = layer(x, w, update_emas=update_emas)
        return (x * self.output_scale).contiguous()  # [B, C, R, R]


# ---------------------------------------------------------------------------- the generators


class StyleGAN3Generator(TrainableGenerator, Generator):
    """Mapping (2 layers, lr multiplier 0.01, ``num_ws = num_layers + 2``) + alias-free synthesis."""

    grid_support = FRAME

    def __init__(self, cfg: StyleGAN3Config) -> None:
        super().__init__(cfg)
        self.mapping = MappingNetwork(cfg.mapping, cfg.num_ws)
        self.synthesis = StyleGAN3Synthesis(
            layer_schedule(cfg), cfg.w_dim, cfg.img_resolution, cfg.output_scale, cfg.conv_clamp, cfg.magnitude_ema_beta
        )

    def synthesize(self, ws: torch.Tensor, grid: Grid | None = None, *, update_emas: bool = False) -> torch.Tensor:
        """As the contract's; ``update_emas`` updates each layer's input-magnitude average."""
        return self.synthesis(ws, self.check_grid(grid), update_emas=update_emas)

    def style_mixing_range(self) -> range:
        return range(self.num_ws)


def _paper(resolution: int, channel_base: int, channel_max: int) -> dict:
    return dict(
        img_resolution=resolution,
        channel_base=channel_base,
        channel_max=channel_max,
        mapping=dict(z_dim=512, w_dim=512),
    )


# Small enough to train on two CPU cores at 32²: 4 layers of at most 32 channels (NVIDIA's margins and filters).
_CPU = dict(
    img_resolution=32, channel_base=1024, channel_max=32, num_layers=4, mapping=dict(z_dim=64, w_dim=64, embed_dim=32)
)


@register(
    "stylegan3-t",
    StyleGAN3Config,
    presets={
        "paper-256": _paper(256, 32768, 512),
        "paper-512": _paper(512, 32768, 512),
        "paper-1024": _paper(1024, 32768, 512),
        "cpu": _CPU,
    },
)
class StyleGAN3T(StyleGAN3Generator):
    """StyleGAN3-T: translation equivariant (3×3 convolutions, separable filters)."""


@dataclass(frozen=True)
class StyleGAN3RConfig(StyleGAN3Config):
    channel_base: int = 65536  # NVIDIA's train.py doubles G's channels for config R
    channel_max: int = 1024
    conv_kernel: int = 1
    use_radial_filters: bool = True


@register(
    "stylegan3-r",
    StyleGAN3RConfig,
    presets={
        "paper-256": _paper(256, 65536, 1024),
        "paper-512": _paper(512, 65536, 1024),
        "paper-1024": _paper(1024, 65536, 1024),
        "cpu": _CPU,
    },
)
class StyleGAN3R(StyleGAN3Generator):
    """StyleGAN3-R: translation and rotation equivariant (1×1 convolutions, radial down filters)."""
