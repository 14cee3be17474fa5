"""Adaptive discriminator augmentation (ADA; Karras et al., "Training Generative Adversarial Networks with
Limited Data", NeurIPS 2020), as StyleGAN2-ADA and StyleGAN3 train with it.

The discriminator sees real and generated images through the same random, differentiable transformations,
each applied to a sample with probability ``p`` (times the transform's multiplier). The default ``bgc``
pipeline, in the order applied:

- blitting: x-flip; rotation by a multiple of 90°; integer translation up to ``xint_max`` of the size;
- geometric: isotropic scaling ``2^N(0, scale_std)``; rotation ``U(−π, π)·rotate_max`` split into a pre- and a
  post-rotation around anisotropic scaling ``2^N(0, aniso_std)``, so that either happens with probability p;
  fractional translation ``N(0, xfrac_std)`` of the size. The composed inverse transform is executed once: the
  image is reflect-padded, upsampled 2× with the ``sym6`` wavelet low-pass filter, resampled bilinearly
  (``grid_sample``) and downsampled 2× with the same filter;
- colour (a 4×4 affine map of RGB): brightness ``+N(0, brightness_std)``; contrast ``×2^N(0, contrast_std)``;
  luma flip (a Householder reflection about the luma axis ``(1, 1, 1)/√3``); hue rotation about that axis by
  ``U(−π, π)·hue_max``; saturation ``×2^N(0, saturation_std)`` away from that axis.

The random draws follow NVIDIA's ``AugmentPipe`` call for call (``torch.rand``/``torch.randn`` of the same
shapes in the same order on the images' device), so with the same RNG state the output is theirs to float
rounding; the 2× up- and downsampling run polyphase (strided transposed / strided convolutions, no products with
inserted zeros or discarded samples). Every step is differentiable with respect to the images, to any order (R1
runs through it).

The adaptive part: the signs of D's logits on the real images are accumulated; every ``interval`` steps
``p ← max(p + sign(E[sign D(real)] − target) · batch·interval / (kimg·1000), 0)``. ``p``, the accumulated sums
and the count are buffers, so a snapshot of this module resumes exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from polyinr.errors import PolyinrError

# Orthogonal low-pass filter of the geometric transforms: Symlet-6 wavelet decomposition coefficients.
SYM6 = (
    0.015404109327027373,
    0.0034907120842174702,
    -0.11799011114819057,
    -0.048311742585633,
    0.4910559419267466,
    0.787641141030194,
    0.3379294217276218,
    -0.07263752278646252,
    -0.021060292512300564,
    0.04472490177066578,
    0.0017677118642428036,
    -0.007800708325034148,
)


@dataclass(frozen=True)
class AugmentConfig:
    """Probability multipliers (0 = never; ×p per sample) and ranges of the transforms. Defaults: ``bgc``."""

    xflip: float = 1.0  # x-flip
    rotate90: float = 1.0  # rotation by k·90°, k uniform in 0…3
    xint: float = 1.0  # integer translation
    xint_max: float = 0.125  # its range, as a fraction of the image size
    scale: float = 1.0  # isotropic scaling
    rotate: float = 1.0  # arbitrary rotation
    aniso: float = 1.0  # anisotropic scaling
    xfrac: float = 1.0  # fractional translation
    scale_std: float = 0.2  # log2 standard deviation of isotropic scaling
    rotate_max: float = 1.0  # range of arbitrary rotation, 1 = full circle
    aniso_std: float = 0.2  # log2 standard deviation of anisotropic scaling
    xfrac_std: float = 0.125  # standard deviation of fractional translation, fraction of the image size
    brightness: float = 1.0  # additive brightness
    contrast: float = 1.0  # multiplicative contrast
    lumaflip: float = 1.0  # luma flip
    hue: float = 1.0  # hue rotation
    saturation: float = 1.0  # saturation
    brightness_std: float = 0.2  # standard deviation of brightness, in [-1, 1] image units
    contrast_std: float = 0.5  # log2 standard deviation of contrast
    hue_max: float = 1.0  # range of hue rotation, 1 = full circle
    saturation_std: float = 1.0  # log2 standard deviation of saturation


PIPELINES: dict[str, AugmentConfig] = {
    "bgc": AugmentConfig(),
    "bg": AugmentConfig(brightness=0, contrast=0, lumaflip=0, hue=0, saturation=0),
    "c": AugmentConfig(xflip=0, rotate90=0, xint=0, scale=0, rotate=0, aniso=0, xfrac=0),
}


# ------------------------------------------------------------------ batched homogeneous matrices [B, N, N]


def _matrix(rows: list[list], ref: torch.Tensor) -> torch.Tensor:
    """Stack entries (tensors shaped like ``ref`` or numbers) into ``[*ref.shape, len(rows), len(rows[0])]``."""
    elems = [e if isinstance(e, torch.Tensor) else torch.full_like(ref, e) for row in rows for e in row]
    return torch.stack(elems, dim=-1).reshape(*ref.shape, len(rows), -1)


def _translate2d(tx: torch.Tensor, ty: torch.Tensor | float) -> torch.Tensor:
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], tx)


def _scale2d(sx: torch.Tensor, sy: torch.Tensor | float) -> torch.Tensor:
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], sx)


def _rotate2d(theta: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], theta)


def _translate3d(t: torch.Tensor) -> torch.Tensor:
    return _matrix([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]], t)


def _scale3d(s: torch.Tensor) -> torch.Tensor:
    return _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], s)


def _rotate3d(v: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rotation by ``theta [B]`` about the unit axis ``v [4]`` (homogeneous, last entry 0)."""
    vx, vy, vz = v[0], v[1], v[2]
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    return _matrix(
        [
            [vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
            [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
            [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
            [0, 0, 0, 1],
        ],
        theta,
    )


def _constant(rows: list, device: torch.device) -> torch.Tensor:
    """A float32 constant (numbers computed in Python's double precision, then rounded once)."""
    return torch.tensor(rows, dtype=torch.float32, device=device)


def _diag(sx: float, sy: float, device: torch.device) -> torch.Tensor:
    return _constant([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], device)


def _shift(tx: float, ty: float, device: torch.device) -> torch.Tensor:
    return _constant([[1, 0, tx], [0, 1, ty], [0, 0, 1]], device)


# ------------------------------------------------------------------ separable 2× FIR resampling (polyphase)


def _upsample2x(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """NVIDIA's ``upsample2d(x, f, up=2)`` (zero insertion, pad ``(K+1)//2`` / ``(K−2)//2``, convolve, gain 4)
    as two strided transposed convolutions, so the inserted zeros are never multiplied:
    ``[B, C, H, W] → [B, C, 2H, 2W]``, ``taps [K]``."""
    C, K = x.shape[1], taps.numel()
    f = (taps * 2).to(x.dtype)  # gain 2 per axis
    crop = K - 1 - (K + 1) // 2
    x = F.conv_transpose2d(x, f.view(1, 1, 1, K).expand(C, 1, 1, K), stride=(1, 2), padding=(0, crop), groups=C)
    return F.conv_transpose2d(x, f.view(1, 1, K, 1).expand(C, 1, K, 1), stride=(2, 1), padding=(crop, 0), groups=C)


def _downsample2x(x: torch.Tensor, taps: torch.Tensor, crop: int) -> torch.Tensor:
    """NVIDIA's ``downsample2d(x, f, down=2, padding=-crop − (K−2)//2 … , flip_filter=True)`` as two strided
    correlations after cropping ``crop`` pixels on every side: ``[B, C, L, L] → [B, C, (L−2·crop−K)//2+1, …]``."""
    C, K = x.shape[1], taps.numel()
    f = taps.to(x.dtype)
    x = x[:, :, crop : x.shape[2] - crop, crop : x.shape[3] - crop]
    x = F.conv2d(x, f.view(1, 1, 1, K).expand(C, 1, 1, K), stride=(1, 2), groups=C)
    return F.conv2d(x, f.view(1, 1, K, 1).expand(C, 1, K, 1), stride=(2, 1), groups=C)


# ------------------------------------------------------------------ the pipeline


class AdaptiveAugment(nn.Module):
    """``images [B, 3, H, W] → [B, 3, H, W]`` augmented with probability ``p``; ADA adjusts ``p``.

    ``target`` None keeps ``p`` fixed at its initial value (StyleGAN's ``--aug fixed``).
    """

    def __init__(
        self,
        cfg: AugmentConfig | None = None,
        p: float = 0.0,  # initial augmentation probability
        target: float | None = 0.6,  # r_t target of E[sign D(real)]; None = p stays fixed
        interval: int = 4,  # adjust p every this many steps
        kimg: float = 500.0,  # p can go from 0 to 1 in this many thousand images
    ) -> None:
        super().__init__()
        self.cfg = cfg or AugmentConfig()
        if not p >= 0 or interval < 1 or not kimg > 0 or (target is not None and not -1 <= target <= 1):
            raise PolyinrError("augmentation needs p ≥ 0, interval ≥ 1, kimg > 0 and a target in [-1, 1]")
        self.target, self.interval, self.kimg = target, interval, kimg
        self.register_buffer("p", torch.tensor(float(p)))
        # Signs of D(real) accumulated since the last adjustment: [sum of signs, number of logits], over all
        # processes (float64: exact for integers up to 2^53).
        self.register_buffer("real_signs", torch.zeros(2, dtype=torch.float64))
        self._pending = torch.zeros(2, dtype=torch.float64)  # this process's share of the current step
        taps = torch.tensor(SYM6)  # float32, normalised to unit DC gain in float32 as the reference does
        self.register_buffer("geom_taps", taps / taps.sum(), persistent=False)

    # ---------------------------------------------------------------- adaptation

    @torch.no_grad()
    def observe_real(self, logits: torch.Tensor) -> None:
        """Count the signs of D's logits on real images (any shape)."""
        signs = logits.detach().sign().to(torch.float64)
        self._pending += torch.stack([signs.sum().cpu(), torch.tensor(float(signs.numel()), dtype=torch.float64)])

    @torch.no_grad()
    def end_step(self, step: int, batch_size: int, all_reduce: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """After training step ``step`` (1, 2, …) of ``batch_size`` images: add this step's signs from every
        process (``all_reduce`` sums a tensor over processes in place) and, every ``interval`` steps, move
        ``p`` toward the target."""
        pending = all_reduce(self._pending.to(self.real_signs.device, copy=True))
        self._pending.zero_()
        self.real_signs += pending
        if self.target is None or step % self.interval or self.real_signs[1] == 0:
            return
        rt = float(self.real_signs[0] / self.real_signs[1])
        adjust = math.copysign(1.0, rt - self.target) if rt != self.target else 0.0
        adjust *= batch_size * self.interval / (self.kimg * 1000)
        self.p.copy_((self.p + adjust).clamp(min=0))
        self.real_signs.zero_()

    def rt(self) -> float | None:
        """E[sign D(real)] since the last adjustment (None before any real logits)."""
        return None if self.real_signs[1] == 0 else float(self.real_signs[0] / self.real_signs[1])

    # ---------------------------------------------------------------- augmentation

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise PolyinrError(f"augmentation takes RGB images [B, 3, H, W], got {tuple(images.shape)}")
        images = self._geometric(images)
        return self._colour(images)

    def _coin(self, shape: list[int], multiplier: float, device: torch.device) -> torch.Tensor:
        """Per-sample Bernoulli(multiplier·p) of ``shape``."""
        return torch.rand(shape, device=device) < multiplier * self.p

    def _geometric(self, images: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        B, C, H, W = images.shape
        dev = images.device
        ones = torch.ones(B, device=dev)
        G_inv = torch.eye(3, device=dev)  # inverse homogeneous transform: G_inv @ pixel_out = pixel_in
        identity = True

        if cfg.xflip > 0:
            i = torch.floor(torch.rand([B], device=dev) * 2)
            i = torch.where(self._coin([B], cfg.xflip, dev), i, torch.zeros_like(i))
            G_inv, identity = G_inv @ _scale2d(1 / (1 - 2 * i), ones), False
        if cfg.rotate90 > 0:
            i = torch.floor(torch.rand([B], device=dev) * 4)
            i = torch.where(self._coin([B], cfg.rotate90, dev), i, torch.zeros_like(i))
            G_inv, identity = G_inv @ _rotate2d(math.pi / 2 * i), False
        if cfg.xint > 0:
            t = (torch.rand([B, 2], device=dev) * 2 - 1) * cfg.xint_max
            t = torch.where(self._coin([B, 1], cfg.xint, dev), t, torch.zeros_like(t))
            G_inv, identity = G_inv @ _translate2d(-torch.round(t[:, 0] * W), -torch.round(t[:, 1] * H)), False
        if cfg.scale > 0:
            s = torch.exp2(torch.randn([B], device=dev) * cfg.scale_std)
            s = torch.where(self._coin([B], cfg.scale, dev), s, torch.ones_like(s))
            G_inv, identity = G_inv @ _scale2d(1 / s, 1 / s), False
        p_rot = 1 - torch.sqrt((1 - cfg.rotate * self.p).clamp(0, 1))  # P(pre or post) = rotate·p
        if cfg.rotate > 0:
            theta = (torch.rand([B], device=dev) * 2 - 1) * math.pi * cfg.rotate_max
            theta = torch.where(torch.rand([B], device=dev) < p_rot, theta, torch.zeros_like(theta))
            G_inv, identity = G_inv @ _rotate2d(theta), False  # before anisotropic scaling
        if cfg.aniso > 0:
            s = torch.exp2(torch.randn([B], device=dev) * cfg.aniso_std)
            s = torch.where(self._coin([B], cfg.aniso, dev), s, torch.ones_like(s))
            G_inv, identity = G_inv @ _scale2d(1 / s, 1 / (1 / s)), False  # rounded as the reference
        if cfg.rotate > 0:
            theta = (torch.rand([B], device=dev) * 2 - 1) * math.pi * cfg.rotate_max
            theta = torch.where(torch.rand([B], device=dev) < p_rot, theta, torch.zeros_like(theta))
            G_inv, identity = G_inv @ _rotate2d(theta), False  # after anisotropic scaling
        if cfg.xfrac > 0:
            t = torch.randn([B, 2], device=dev) * cfg.xfrac_std
            t = torch.where(self._coin([B, 1], cfg.xfrac, dev), t, torch.zeros_like(t))
            G_inv, identity = G_inv @ _translate2d(-t[:, 0] * W, -t[:, 1] * H), False
        if identity:
            return images

        # Pad (reflect) enough that the transformed corners stay inside, plus the filter's support.
        cx, cy = (W - 1) / 2, (H - 1) / 2
        corners = _constant([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], dev)  # [4, xyz]
        corners = G_inv @ corners.t()  # [B, xyz, 4]
        taps = self.geom_taps
        pad = taps.shape[0] // 4
        margin = corners[:, :2, :].permute(1, 0, 2).flatten(1)  # [xy, B·4]
        margin = torch.cat([-margin, margin]).max(dim=1).values  # [x0, y0, x1, y1]
        margin = margin + _constant([pad * 2 - cx, pad * 2 - cy] * 2, dev)
        margin = margin.max(_constant([0, 0] * 2, dev)).min(_constant([W - 1, H - 1] * 2, dev))
        mx0, my0, mx1, my1 = (int(m) for m in margin.ceil().to(torch.int32))
        images = F.pad(images, [mx0, mx1, my0, my1], mode="reflect")
        G_inv = _shift((mx0 - mx1) / 2, (my0 - my1) / 2, dev) @ G_inv

        # Upsample 2× (the transform in upsampled pixel units), resample, downsample and crop.
        images = _upsample2x(images, taps)
        G_inv = _diag(2, 2, dev) @ G_inv @ _diag(1 / 2, 1 / 2, dev)
        G_inv = _shift(-0.5, -0.5, dev) @ G_inv @ _shift(0.5, 0.5, dev)
        shape = [B, C, (H + pad * 2) * 2, (W + pad * 2) * 2]
        G_inv = _diag(2 / images.shape[3], 2 / images.shape[2], dev) @ G_inv @ _diag(shape[3] / 2, shape[2] / 2, dev)
        grid = F.affine_grid(G_inv[:, :2, :], shape, align_corners=False)
        images = F.grid_sample(
            images, grid.to(images.dtype), mode="bilinear", padding_mode="zeros", align_corners=False
        )
        # NVIDIA's downsample2d(padding=-2·pad, flip_filter=True): crop 2·pad − (K−1)//2 per side, correlate.
        return _downsample2x(images, taps, pad * 2 - (taps.numel() - 1) // 2)

    def _colour(self, images: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        B, C, H, W = images.shape
        dev = images.device
        I_4 = torch.eye(4, device=dev)
        M = I_4  # homogeneous colour transform: M @ colour_in = colour_out
        identity = True
        if cfg.brightness > 0:
            b = torch.randn([B], device=dev) * cfg.brightness_std
            b = torch.where(self._coin([B], cfg.brightness, dev), b, torch.zeros_like(b))
            M, identity = _translate3d(b) @ M, False
        if cfg.contrast > 0:
            c = torch.exp2(torch.randn([B], device=dev) * cfg.contrast_std)
            c = torch.where(self._coin([B], cfg.contrast, dev), c, torch.ones_like(c))
            M, identity = _scale3d(c) @ M, False
        v = _constant([1 / math.sqrt(3)] * 3 + [0.0], dev)  # luma axis
        vv = torch.outer(v, v)
        if cfg.lumaflip > 0:
            i = torch.floor(torch.rand([B, 1, 1], device=dev) * 2)
            i = torch.where(self._coin([B, 1, 1], cfg.lumaflip, dev), i, torch.zeros_like(i))
            M, identity = (I_4 - 2 * vv * i) @ M, False  # Householder reflection
        if cfg.hue > 0:
            theta = (torch.rand([B], device=dev) * 2 - 1) * math.pi * cfg.hue_max
            theta = torch.where(self._coin([B], cfg.hue, dev), theta, torch.zeros_like(theta))
            M, identity = _rotate3d(v, theta) @ M, False
        if cfg.saturation > 0:
            s = torch.exp2(torch.randn([B, 1, 1], device=dev) * cfg.saturation_std)
            s = torch.where(self._coin([B, 1, 1], cfg.saturation, dev), s, torch.ones_like(s))
            M, identity = (vv + (I_4 - vv) * s) @ M, False
        if identity:
            return images
        M = M.to(images.dtype)
        out = M[:, :3, :3] @ images.reshape(B, C, H * W) + M[:, :3, 3:]  # [B, 3, H·W]
        return out.reshape(B, C, H, W)

    def extra_repr(self) -> str:
        target = "fixed" if self.target is None else f"target={self.target}"
        return f"p={float(self.p):.4f}, {target}, interval={self.interval}, kimg={self.kimg}"
