"""GAN losses, organised as StyleGAN3's phases so the loop never branches on the model or the recipe.

The loop walks the phases of :meth:`GANLoss.phases` (``Gmain``/``Greg``/``Gboth``, ``Dmain``/``Dreg``/``Dboth``)
and calls :meth:`GANLoss.accumulate_gradients`; a loss that regularises lazily declares the interval, and the
loop scales that phase's learning rate and betas by ``interval / (interval + 1)`` (StyleGAN2's lazy
regularisation).

- :class:`NonSaturatingLoss`: StyleGAN2's logistic loss ``softplus(−D(G(z)))`` / ``softplus(D(fake)) +
  softplus(−D(real))`` with lazy R1 ``γ/2 · ‖∇D(real)‖²`` every 16 D steps.
- :class:`ProjectedHingeLoss`: StyleGAN-XL's recipe: hinge loss, no R1, the discriminator's inputs blurred by
  a Gaussian whose sigma fades from ``blur_init_sigma`` to 0 over ``blur_fade_kimg``, and optional classifier
  guidance ``cls_weight · CE(classifier(G(z, c)), c)`` at resolutions ≥ 32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from polyinr.training.stats import report


@dataclass(frozen=True)
class PhaseSpec:
    name: str  # 'Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg' or 'Dboth'
    network: str  # 'G' or 'D'
    interval: int  # run every `interval` steps


def phases_for(network: str, reg_interval: int | None) -> list[PhaseSpec]:
    """``[both]`` without lazy regularisation, else ``[main, reg]`` with the reg phase every ``reg_interval``."""
    if reg_interval is None:
        return [PhaseSpec(f"{network}both", network, 1)]
    return [PhaseSpec(f"{network}main", network, 1), PhaseSpec(f"{network}reg", network, reg_interval)]


def blur_sigma(cur_nimg: int, init_sigma: float, fade_kimg: float) -> float:
    """Sigma of the discriminator-input blur: ``init_sigma`` fading linearly to 0 over ``fade_kimg``."""
    if fade_kimg <= 0:
        return 0.0
    return max(1.0 - cur_nimg / (fade_kimg * 1e3), 0.0) * init_sigma


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur ``[B, C, H, W]`` with StyleGAN-XL's separable ``exp2``-Gaussian of ``sigma`` pixels (zero padding)."""
    radius = math.floor(sigma * 3)
    if radius <= 0:
        return images
    taps = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype).div(sigma).square().neg().exp2()
    taps = taps / taps.sum()
    C = images.shape[1]
    images = F.conv2d(images, taps.view(1, 1, 1, -1).repeat(C, 1, 1, 1), padding=(0, radius), groups=C)
    return F.conv2d(images, taps.view(1, 1, -1, 1).repeat(C, 1, 1, 1), padding=(radius, 0), groups=C)


class GANLoss:
    """Base: holds G and D, renders fakes on the stage's grid, and names its phases."""

    def __init__(self, G: nn.Module, D: nn.Module) -> None:
        self.G, self.D = G, D

    def phases(self) -> list[PhaseSpec]:
        return phases_for("G", None) + phases_for("D", None)

    def run_G(
        self, z: torch.Tensor, c: torch.Tensor | None, resolution: int, update_emas: bool = False
    ) -> torch.Tensor:
        """Fakes ``[B, 3, R, R]`` on the training grid of ``resolution``."""
        ws = self.G.mapping(z, c, update_emas=update_emas)
        return self.G.synthesize(ws, self.G.training_grid(resolution))

    def run_D(self, images: torch.Tensor, c: torch.Tensor | None, cur_nimg: int) -> torch.Tensor:
        return self.D(images, c)

    def accumulate_gradients(
        self,
        phase: str,
        real_img: torch.Tensor,  # [B, 3, R, R] in [-1, 1]
        real_c: torch.Tensor | None,  # [B] class indices
        gen_z: torch.Tensor,  # [B, z_dim]
        gen_c: torch.Tensor | None,  # [B]
        gain: float,  # weight of this micro-batch's mean loss (share of the batch × reg interval)
        cur_nimg: int,
    ) -> None:
        raise NotImplementedError


class NonSaturatingLoss(GANLoss):
    """StyleGAN2's logistic loss with lazy R1 on the reals (``gamma`` = 0 disables R1)."""

    def __init__(self, G: nn.Module, D: nn.Module, r1_gamma: float = 1.0, r1_interval: int = 16) -> None:
        super().__init__(G, D)
        self.r1_gamma = r1_gamma
        self.r1_interval = r1_interval

    def phases(self) -> list[PhaseSpec]:
        return phases_for("G", None) + phases_for("D", self.r1_interval if self.r1_gamma > 0 else None)

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        resolution = real_img.shape[-1]
        if phase in ("Gmain", "Gboth"):
            logits = self.run_D(self.run_G(gen_z, gen_c, resolution), gen_c, cur_nimg)
            loss = F.softplus(-logits).mean()
            report("Loss/G/loss", loss)
            loss.mul(gain).backward()
        if phase in ("Dmain", "Dboth"):
            fake = self.run_G(gen_z, gen_c, resolution, update_emas=True).detach()
            fake_logits = self.run_D(fake, gen_c, cur_nimg)
            real_logits = self.run_D(real_img, real_c, cur_nimg)
            loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
            report("Loss/scores/fake", fake_logits)
            report("Loss/scores/real", real_logits)
            report("Loss/D/loss", loss)
            loss.mul(gain).backward()
        if phase in ("Dreg", "Dboth") and self.r1_gamma > 0:
            real = real_img.detach().requires_grad_(True)
            logits = self.run_D(real, real_c, cur_nimg)
            (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
            penalty = grad.square().sum(dim=[1, 2, 3])  # [B]
            loss = penalty.mean() * (self.r1_gamma / 2)
            report("Loss/r1_penalty", penalty)
            report("Loss/D/reg", loss)
            loss.mul(gain).backward()


class ProjectedHingeLoss(GANLoss):
    """StyleGAN-XL: hinge loss, blurred discriminator inputs, optional classifier guidance; no R1."""

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        blur_init_sigma: float = 2.0,  # pixels; 0 = no blur
        blur_fade_kimg: float = 300.0,  # kimg over which the blur fades to 0
        classifier: nn.Module | None = None,  # frozen classifier for guidance; None = off
        cls_weight: float = 0.0,  # weight of the guidance term
        cls_min_resolution: int = 32,  # guidance only at resolutions ≥ this (it collapses modes below)
    ) -> None:
        super().__init__(G, D)
        self.blur_init_sigma = blur_init_sigma
        self.blur_fade_kimg = blur_fade_kimg
        self.classifier = classifier
        self.cls_weight = cls_weight
        self.cls_min_resolution = cls_min_resolution

    def run_D(self, images, c, cur_nimg):
        sigma = blur_sigma(cur_nimg, self.blur_init_sigma, self.blur_fade_kimg)
        return self.D(gaussian_blur(images, sigma), c)

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        resolution = real_img.shape[-1]
        if phase in ("Gmain", "Gboth"):
            fake = self.run_G(gen_z, gen_c, resolution)
            loss = -self.run_D(fake, gen_c, cur_nimg).mean()
            report("Loss/G/loss", loss)
            if self.classifier is not None and gen_c is not None and resolution >= self.cls_min_resolution:
                guidance = F.cross_entropy(self.classifier(fake), gen_c)
                report("Loss/G/guidance", guidance)
                loss = loss + self.cls_weight * guidance
            loss.mul(gain).backward()
        if phase in ("Dmain", "Dboth"):
            fake = self.run_G(gen_z, gen_c, resolution, update_emas=True).detach()
            fake_logits = self.run_D(fake, gen_c, cur_nimg)
            real_logits = self.run_D(real_img, real_c, cur_nimg)
            loss = F.relu(1 + fake_logits).mean() + F.relu(1 - real_logits).mean()
            report("Loss/scores/fake", fake_logits)
            report("Loss/scores/real", real_logits)
            report("Loss/D/loss", loss)
            loss.mul(gain).backward()
