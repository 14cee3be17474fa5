"""GAN losses, organised as StyleGAN3's phases so the loop never branches on the model or the recipe.

The loop walks the phases of :meth:`GANLoss.phases` (``Gmain``/``Greg``/``Gboth``, ``Dmain``/``Dreg``/``Dboth``)
and calls :meth:`GANLoss.accumulate_gradients`; a loss that regularises lazily declares the interval, and the
loop scales that network's learning rate and β2 for it (:func:`adam_settings`, StyleGAN2's lazy
regularisation). A training option may ask for that scaling without a regularisation phase: the StyleGAN-XL /
Poly-INR code keeps StyleGAN's intervals (G 4, D 16) with its hinge loss, which has none.

Adversarial terms are averaged per sample and per logit *group* (one group per feature network of a projected
discriminator, :meth:`~polyinr.discriminators.base.Discriminator.split_logits`) and summed over the groups, as
the authors' ``loss.py`` does, so every feature network weighs the same whatever its number of logits.

Losses are registered by name with a config dataclass of their settings (:func:`register_loss`), as the
generators and discriminators are; a setting the chosen loss does not have is refused, never dropped.

Every loss sees D through :meth:`GANLoss.run_D`, as StyleGAN3 does: reals larger than what a patch-trained
generator renders (its training grid) are cut to one random patch per sample; the images (real or fake) are
blurred by a Gaussian whose sigma fades from ``blur_sigma`` to 0 over ``blur_fade_kimg`` (0 = no blur) counted
from the first image of each resolution stage (every stage starts with a fresh D, as the authors' next run), then
augmented by an optional :class:`~polyinr.discriminators.ada.AdaptiveAugment` (ADA), which also counts the signs
of the real logits; :meth:`GANLoss.end_step` lets it adjust its probability after each step, and
:meth:`GANLoss.state_modules` names its state for snapshots.

- :class:`NonSaturatingLoss` (``nonsaturating``): StyleGAN2's logistic loss ``softplus(−D(G(z)))`` /
  ``softplus(D(fake)) + softplus(−D(real))`` with lazy R1 ``γ/2 · ‖∇D(real)‖²`` every 16 D steps (StyleGAN2/3;
  config R also blurs D's inputs), and StyleGAN2's path length regularisation every 4 G steps and style mixing
  when asked for.
- :class:`ProjectedHingeLoss` (``hinge``): StyleGAN-XL's recipe: hinge loss, no R1, blurred D inputs, optional
  classifier guidance in super-resolution stages (every stage after the first) and optional path-length
  regularisation in the first stage, weighted as in StyleGAN-XL.

Settings that apply only in some resolution stages say so through :meth:`GANLoss.stage_settings`, which the dry
run prints stage by stage.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from polyinr.discriminators.ada import AdaptiveAugment
from polyinr.errors import PolyinrError, UnusedSetting
from polyinr.registry import Registry
from polyinr.training import distributed
from polyinr.training.path_length import PL_BATCH_SHRINK, PathLengthPenalty
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


def adam_settings(lr: float, reg_interval: int | None) -> tuple[float, tuple[float, float]]:
    """Adam's ``(lr, betas)`` from the nominal ``lr`` and betas (0, 0.99), scaled for lazy regularisation every
    ``reg_interval`` steps (None: unscaled): ``lr · i/(i+1)`` and ``β2^(i/(i+1))`` (StyleGAN2's training loop)."""
    ratio = 1.0 if reg_interval is None else reg_interval / (reg_interval + 1)
    return lr * ratio, (0.0, 0.99**ratio)


def group_mean(logits: torch.Tensor, D: nn.Module, fn) -> torch.Tensor:
    """``Σ_groups mean(fn(group))`` over the discriminator's logit groups (one per feature network)."""
    split = getattr(D, "split_logits", None)
    groups = split(logits) if split is not None else [logits]
    return sum(fn(g).mean() for g in groups)


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


def random_crops(images: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """One uniformly random ``h × w`` crop per sample of ``images [B, C, H, W]`` → ``[B, C, h, w]``; positions
    from torch's global generator (the loop seeds it per step, so a resumed run cuts the same crops)."""
    B, _, H, W = images.shape
    top = torch.randint(0, H - h + 1, (B,)).tolist()
    left = torch.randint(0, W - w + 1, (B,)).tolist()
    return torch.stack([images[i, :, t : t + h, l : l + w] for i, (t, l) in enumerate(zip(top, left))])


LOSSES: Registry[type[GANLoss]] = Registry("loss", "losses")  # name → loss class, filled by @register_loss


def mode_seeking_loss(features: torch.Tensor, latents: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The mode-seeking diversity loss over pairs ``(2i, 2i + 1)`` of a batch: ``1 / (d(x) / d(z) + eps)``.

    ``d`` is the mean absolute difference within each pair (``features [B, …]``: images, or InfinityGAN's
    structure features; ``latents [B, …]``: the latents that differ within a pair). A true distance ratio: the
    InfinityGAN authors' released angular form divides two *similarities* (inverted) and gives NaNs; this one is
    finite even on identical inputs (``eps`` in both denominators) and falls as the images of different latents
    move apart.
    """
    B = (len(features) // 2) * 2
    x_dist = (features[0:B:2] - features[1:B:2]).abs().mean()
    z_dist = (latents[0:B:2] - latents[1:B:2]).abs().mean()
    return 1 / (x_dist / (z_dist + eps) + eps)


def register_loss(name: str, config_cls: type) -> Callable[[type[GANLoss]], type[GANLoss]]:
    """Class decorator: register a :class:`GANLoss` subclass as ``name`` with its settings' dataclass."""

    def decorate(cls: type[GANLoss]) -> type[GANLoss]:
        cls.loss_name, cls.config_cls = name, config_cls
        return LOSSES.add(name, cls)

    return decorate


get_loss = LOSSES.lookup  # the loss class of a name; an unknown name is a one-line error


def loss_settings(name: str) -> list[str]:
    """The settings (config fields) of the loss ``name``."""
    return [f.name for f in dataclasses.fields(get_loss(name).config_cls)]


def resolve_loss_config(name: str, **settings: Any) -> Any:
    """The config of loss ``name`` from its defaults and ``settings``; a setting it lacks is refused."""
    known = loss_settings(name)
    for key in settings:
        if key not in known:
            raise UnusedSetting(key, f"the {name} loss", known)
    return get_loss(name).config_cls(**settings)


def create_loss(
    name: str,
    G: nn.Module,
    D: nn.Module,
    device: torch.device,
    augment: AdaptiveAugment | None = None,
    **settings: Any,
) -> GANLoss:
    """The loss ``name`` over ``G`` and ``D`` with ``settings`` (fields of its config), augmenting D's inputs
    with ``augment`` (None: no augmentation)."""
    return get_loss(name).from_config(G, D, resolve_loss_config(name, **settings), device, augment)


class GANLoss:
    """Base: holds G and D, renders fakes on the stage's grid, blurs and augments D's inputs, names its phases."""

    loss_name: str
    config_cls: type
    style_mixing: float = 0.0  # probability that a fake's ws from a random cut on come from another z; 0 = never

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        blur_sigma: float = 0.0,  # pixels, at the start of each stage; 0 = no blur
        blur_fade_kimg: float = 0.0,  # kimg over which the blur fades to 0
        augment: AdaptiveAugment | None = None,  # ADA on D's inputs; None = none
    ) -> None:
        self.G, self.D = G, D
        self.blur_sigma = blur_sigma
        self.blur_fade_kimg = blur_fade_kimg
        self.augment = augment
        self.stage_index, self.stage_start_nimg = 0, 0

    @classmethod
    def from_config(
        cls, G: nn.Module, D: nn.Module, cfg: Any, device: torch.device, augment: AdaptiveAugment | None = None
    ) -> GANLoss:
        """The loss of a run over ``G`` and ``D`` with its config ``cfg``, its state on ``device``."""
        return cls(G, D, cfg, augment=augment, device=device)

    @classmethod
    def reg_interval(cls, cfg: Any, network: str) -> int | None:
        """The interval of ``network``'s ('G' or 'D') lazy regularisation phase under ``cfg``; None = none."""
        return None

    @classmethod
    def stage_settings(cls, cfg: Any, stage_index: int) -> dict[str, float]:
        """The settings of ``cfg`` that differ by resolution stage, as they apply in stage ``stage_index`` (0 =
        the first); none by default."""
        return {}

    def begin_stage(self, index: int, start_nimg: int) -> None:
        """A resolution stage starts (index 0 = the first) at ``start_nimg`` images shown."""
        self.stage_index, self.stage_start_nimg = index, start_nimg

    def use_networks(self, G: nn.Module, D: nn.Module) -> None:
        """A new stage's G (grown, or the same) and fresh D; the loss's own state (ADA's probability, the path
        lengths' running mean, a guidance classifier) carries on."""
        self.G, self.D = G, D

    def state_modules(self) -> dict[str, nn.Module]:
        """Modules whose state a snapshot keeps beside G and D (the augmentation's probability)."""
        return {} if self.augment is None else {"augment": self.augment}

    def end_step(self, step: int, batch_size: int) -> None:
        """After training step ``step`` (counted from 1) of ``batch_size`` images: let ADA adjust ``p``."""
        if self.augment is not None:
            self.augment.end_step(step, batch_size, distributed.all_reduce_sum)
            report("Progress/augment", float(self.augment.p))

    def phases(self) -> list[PhaseSpec]:
        return phases_for("G", None) + phases_for("D", None)

    def run_G(
        self, z: torch.Tensor, c: torch.Tensor | None, resolution: int, update_emas: bool = False
    ) -> torch.Tensor:
        """Fakes ``[B, 3, R, R]`` on the training grid of ``resolution``."""
        return self.render(self.run_mapping(z, c, update_emas), resolution, update_emas)

    def run_mapping(self, z: torch.Tensor, c: torch.Tensor | None, update_emas: bool = False) -> torch.Tensor:
        """``ws [B, num_ws, w_dim]`` of the fakes, styles mixed as StyleGAN2's ``run_G`` mixes them: with
        probability :attr:`style_mixing`, the ws from a cut drawn in the generator's mixing range on come from
        another latent (a model without a mixing range is never mixed)."""
        ws = self.G.mapping(z, c, update_emas=update_emas)
        cuts = self.G.style_mixing_range()
        if self.style_mixing > 0 and cuts is not None and torch.rand([]) < self.style_mixing:
            cutoff = int(torch.randint(cuts.start, cuts.stop, []))
            ws[:, cutoff:] = self.G.mapping(torch.randn_like(z), c, update_emas=False)[:, cutoff:]
        return ws

    def render(self, ws: torch.Tensor, resolution: int, update_emas: bool = False) -> torch.Tensor:
        """``ws [B, num_ws, w_dim]`` → fakes ``[B, 3, R, R]`` on the training grid of ``resolution``."""
        return self.G.synthesize(ws, self.G.training_grid(resolution), update_emas=update_emas)

    def real_patches(self, images: torch.Tensor) -> torch.Tensor:
        """Reals ``[B, 3, F, F]`` as D sees them: for a patch-trained generator (its training grid at ``F`` is
        smaller than the images), one uniformly random crop of the patch's size per sample; else unchanged."""
        h, w = self.G.training_grid(images.shape[-1]).shape
        if h < images.shape[-2] or w < images.shape[-1]:
            return random_crops(images, h, w)
        return images

    def run_D(self, images: torch.Tensor, c: torch.Tensor | None, cur_nimg: int, real: bool = False) -> torch.Tensor:
        """D's logits for ``images [B, 3, R, R]``, blurred and augmented; ``real``: reals, cut to the generator's
        patch if it trains on patches (:meth:`real_patches`), and their signs counted for ADA."""
        if real:
            images = self.real_patches(images)
        sigma = blur_sigma(cur_nimg - self.stage_start_nimg, self.blur_sigma, self.blur_fade_kimg)
        images = gaussian_blur(images, sigma)
        if self.augment is not None:
            images = self.augment(images)
        logits = self.D(images, c)
        if real:
            report("Loss/signs/real", logits.sign())
            if self.augment is not None:
                self.augment.observe_real(logits)
        return logits

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


@dataclass(frozen=True)
class NonSaturatingConfig:
    gamma: float | None = 1.0  # R1 weight γ on the reals; 0 = no R1 (no Dreg phase); None = 2·(R/256)², D sees R²
    blur_sigma: float = 0.0  # initial sigma in pixels of the D-input blur (StyleGAN3-R: 10); 0 = no blur
    blur_fade_kimg: float = 0.0  # kimg over which the blur fades to 0 (StyleGAN3-R: batch·200/32)
    diversity_weight: float = 0.0  # mode-seeking loss (MSGAN) on pairs of images of one class; 0 = off
    pl_weight: float = 0.0  # path length weight, every 4 G steps on half the batch (StyleGAN2: 2); 0 = off
    style_mixing: float = 0.0  # probability of mixing each batch's styles at a random cut (StyleGAN2: 0.9); 0 = off

    def __post_init__(self) -> None:
        if self.gamma is not None and self.gamma < 0:
            raise PolyinrError(f"the R1 weight gamma must be ≥ 0, got {self.gamma}")
        if min(self.blur_sigma, self.blur_fade_kimg, self.diversity_weight, self.pl_weight) < 0:
            raise PolyinrError("the blur sigma, its fade length, the diversity and path length weights must be ≥ 0")
        if not 0 <= self.style_mixing <= 1:
            raise PolyinrError(f"the style mixing probability must be in [0, 1], got {self.style_mixing}")


@dataclass(frozen=True)
class HingeConfig:
    blur_sigma: float = 0.0  # initial sigma in pixels of the D-input blur; 0 = no blur
    blur_fade_kimg: float = 300.0  # kimg over which the blur fades to 0
    cls_weight: float = 0.0  # StyleGAN-XL's cls_weight (same strength), super-resolution stages only; 0 = off
    pl_weight: float = 0.0  # StyleGAN-XL's path-length weight (same strength), first stage only; 0 = off
    pl_start_kimg: float = 1000.0  # images shown (kimg) before path length starts (their code: 1 M images)

    def __post_init__(self) -> None:
        if min(self.blur_sigma, self.blur_fade_kimg, self.cls_weight, self.pl_weight, self.pl_start_kimg) < 0:
            raise PolyinrError(
                "the blur sigma, its fade length, the guidance and path-length weights and the "
                "path length's start must be ≥ 0"
            )


@register_loss("nonsaturating", NonSaturatingConfig)
class NonSaturatingLoss(GANLoss):
    """StyleGAN2's logistic loss with lazy R1 on the reals (``gamma`` = 0 disables R1; None scales it with the
    side R of D's input (the stage's resolution; a patch-trained generator's patch) as NVIDIA's recommended
    StyleGAN3 settings do: ``2·(R/256)²``)."""

    R1_INTERVAL = 16
    PL_INTERVAL = 4  # NVIDIA's G_reg_interval for --cfg=stylegan2

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        cfg: NonSaturatingConfig | None = None,  # None: the defaults
        augment: AdaptiveAugment | None = None,
        device: torch.device | str = "cpu",  # of the path lengths' running mean
    ) -> None:
        cfg = cfg or NonSaturatingConfig()
        super().__init__(G, D, cfg.blur_sigma, cfg.blur_fade_kimg, augment)
        self.cfg = cfg
        self.path_length = PathLengthPenalty().to(device) if cfg.pl_weight > 0 else None
        self.style_mixing = cfg.style_mixing

    @classmethod
    def reg_interval(cls, cfg: NonSaturatingConfig, network: str) -> int | None:
        if network == "G":
            return cls.PL_INTERVAL if cfg.pl_weight > 0 else None
        return cls.R1_INTERVAL if cfg.gamma != 0 else None

    def phases(self) -> list[PhaseSpec]:
        return phases_for("G", self.reg_interval(self.cfg, "G")) + phases_for("D", self.reg_interval(self.cfg, "D"))

    def state_modules(self) -> dict[str, nn.Module]:
        """ADA's probability and the path lengths' running mean."""
        path_length = {} if self.path_length is None else {"path_length": self.path_length}
        return {**super().state_modules(), **path_length}

    def gamma_at(self, resolution: int) -> float:
        """R1's weight at a stage of ``resolution``² images."""
        return 2.0 * (resolution / 256) ** 2 if self.cfg.gamma is None else self.cfg.gamma

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        resolution = real_img.shape[-1]
        if phase in ("Gmain", "Gboth"):
            if self.cfg.diversity_weight > 0 and gen_c is not None:
                gen_c = gen_c.clone()
                gen_c[1::2] = gen_c[0::2][: len(gen_c) // 2]  # each pair (2i, 2i + 1) draws one class
            fake = self.run_G(gen_z, gen_c, resolution)
            logits = self.run_D(fake, gen_c, cur_nimg)
            loss = group_mean(logits, self.D, lambda x: F.softplus(-x))
            report("Loss/G/loss", loss)
            if self.cfg.diversity_weight > 0:
                diversity = mode_seeking_loss(fake.flatten(1), gen_z)
                report("Loss/G/diversity", diversity)
                loss = loss + self.cfg.diversity_weight * diversity
            loss.mul(gain).backward()
        if phase in ("Greg", "Gboth") and self.path_length is not None:
            batch = max(1, len(gen_z) // PL_BATCH_SHRINK)
            ws = self.run_mapping(gen_z[:batch], None if gen_c is None else gen_c[:batch])
            penalty = self.path_length(self.render(ws, resolution), ws)  # [batch]
            report("Loss/pl_penalty", penalty)
            report("Loss/G/reg", penalty * self.cfg.pl_weight)
            (penalty * self.cfg.pl_weight).mean().mul(gain).backward()
        if phase in ("Dmain", "Dboth"):
            fake = self.run_G(gen_z, gen_c, resolution, update_emas=True).detach()
            fake_logits = self.run_D(fake, gen_c, cur_nimg)
            real_logits = self.run_D(real_img, real_c, cur_nimg, real=True)
            loss = group_mean(fake_logits, self.D, F.softplus) + group_mean(
                real_logits, self.D, lambda x: F.softplus(-x)
            )
            report("Loss/scores/fake", fake_logits)
            report("Loss/scores/real", real_logits)
            report("Loss/D/loss", loss)
            loss.mul(gain).backward()
        if phase in ("Dreg", "Dboth") and self.cfg.gamma != 0:
            real = real_img.detach().requires_grad_(True)
            logits = self.run_D(real, real_c, cur_nimg, real=True)
            (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
            penalty = grad.square().sum(dim=[1, 2, 3])  # [B]
            side = self.G.training_grid(resolution).shape[0]  # of D's input: the patch for a patch-trained G
            loss = penalty.mean() * (self.gamma_at(side) / 2)
            report("Loss/r1_penalty", penalty)
            report("Loss/D/reg", loss)
            loss.mul(gain).backward()


@register_loss("hinge", HingeConfig)
class ProjectedHingeLoss(GANLoss):
    """StyleGAN-XL: hinge loss, blurred discriminator inputs, no R1; classifier guidance in super-resolution
    stages and path-length regularisation in the first (stem) stage, as their ``train.py`` sets them per stage.

    Strengths: the authors' adversarial term sums the per-sample means over the micro-batch (their ``logits +=
    tensor`` extends a list sample by sample), while their guidance and path-length terms are batch means, so
    their ``cls_weight`` and ``pl_weight`` weigh those terms ``1/batch_gpu`` as much against the adversarial
    term as the same numbers in a per-sample-mean loss. Ours averages over samples, so it applies ``weight /
    batch_gpu`` (the micro-batch's size): the same relative strength as their run with the same micro-batch.

    Guidance (:meth:`stage_settings`) applies in every stage after the first; its classifier is built when the
    first such stage begins, so a stem run never loads it. Path length applies in the first stage from
    ``pl_start_kimg`` images shown, in the ``Greg`` phase every 4 G steps, on half of each micro-batch, and, as
    their loss, without the phase interval as a factor (their ``loss_Gpl.mean().backward()`` ignores ``gain``).
    """

    PL_INTERVAL = 4  # their G_reg_interval

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        cfg: HingeConfig | None = None,  # None: the defaults
        augment: AdaptiveAugment | None = None,
        device: torch.device | str = "cpu",  # of the path lengths' running mean
        classifier: nn.Module | None = None,  # frozen classifier for guidance; None = off or not built yet
        build_classifier: Callable[[], nn.Module] | None = None,  # builds the classifier when guidance starts
    ) -> None:
        cfg = cfg or HingeConfig()
        super().__init__(G, D, cfg.blur_sigma, cfg.blur_fade_kimg, augment)
        self.cfg = cfg
        self.classifier = classifier
        self.build_classifier = build_classifier
        self.path_length = PathLengthPenalty().to(device) if cfg.pl_weight > 0 else None

    @classmethod
    def from_config(
        cls, G: nn.Module, D: nn.Module, cfg: HingeConfig, device: torch.device, augment: AdaptiveAugment | None = None
    ) -> ProjectedHingeLoss:
        """The loss of a run: with guidance, its classifier is built on ``device`` when the first
        super-resolution stage begins."""
        build_classifier = None
        if cfg.cls_weight > 0:
            from polyinr.training import guidance

            build_classifier = functools.partial(guidance.build_guidance_classifier, device)
        return cls(G, D, cfg, augment=augment, device=device, build_classifier=build_classifier)

    @classmethod
    def reg_interval(cls, cfg: HingeConfig, network: str) -> int | None:
        return cls.PL_INTERVAL if network == "G" and cfg.pl_weight > 0 else None

    @classmethod
    def stage_settings(cls, cfg: HingeConfig, stage_index: int) -> dict[str, float]:
        """Guidance after the first stage, path length in the first (their stem and super-resolution runs)."""
        if stage_index > 0:
            return {"cls_weight": cfg.cls_weight, "pl_weight": 0.0}
        start = {"pl_start_kimg": cfg.pl_start_kimg} if cfg.pl_weight > 0 else {}
        return {"cls_weight": 0.0, "pl_weight": cfg.pl_weight, **start}

    def phases(self) -> list[PhaseSpec]:
        return phases_for("G", self.PL_INTERVAL if self.path_length is not None else None) + phases_for("D", None)

    def begin_stage(self, index: int, start_nimg: int) -> None:
        super().begin_stage(index, start_nimg)
        if index > 0 and self.classifier is None and self.build_classifier is not None:
            self.classifier = self.build_classifier()

    def state_modules(self) -> dict[str, nn.Module]:
        extra = {} if self.path_length is None else {"path_length": self.path_length}
        return {**super().state_modules(), **extra}

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        resolution = real_img.shape[-1]
        if phase in ("Gmain", "Gboth"):
            fake = self.run_G(gen_z, gen_c, resolution)
            loss = group_mean(self.run_D(fake, gen_c, cur_nimg), self.D, torch.neg)
            report("Loss/G/loss", loss)
            if self.classifier is not None and gen_c is not None and self.stage_index > 0:
                guidance = F.cross_entropy(self.classifier(fake), gen_c)
                report("Loss/G/guidance", guidance)
                loss = loss + (self.cfg.cls_weight / len(gen_z)) * guidance
            loss.mul(gain).backward()
        pl_on = self.path_length is not None and self.stage_index == 0 and cur_nimg >= self.cfg.pl_start_kimg * 1000
        if phase in ("Greg", "Gboth") and pl_on:
            half = max(1, len(gen_z) // PL_BATCH_SHRINK)
            ws = self.run_mapping(gen_z[:half], None if gen_c is None else gen_c[:half])
            penalty = self.path_length(self.render(ws, resolution), ws)  # [half]
            report("Loss/pl_penalty", penalty)
            loss = penalty.mean() * (self.cfg.pl_weight / len(gen_z))
            report("Loss/G/reg", loss)
            loss.mul(gain / self.PL_INTERVAL).backward()
        if phase in ("Dmain", "Dboth"):
            fake = self.run_G(gen_z, gen_c, resolution, update_emas=True).detach()
            fake_logits = self.run_D(fake, gen_c, cur_nimg)
            real_logits = self.run_D(real_img, real_c, cur_nimg, real=True)
            loss = group_mean(fake_logits, self.D, lambda x: F.relu(1 + x)) + group_mean(
                real_logits, self.D, lambda x: F.relu(1 - x)
            )
            report("Loss/scores/fake", fake_logits)
            report("Loss/scores/real", real_logits)
            report("Loss/D/loss", loss)
            loss.mul(gain).backward()


# ---------------------------------------------------------------------------------------------- InfinityGAN


@dataclass(frozen=True)
class InfinityGANLossConfig:
    gamma: float = 10.0  # R1 weight on the real patches, applied lazily every 16 D steps
    pl_weight: float = 2.0  # path length regularisation weight, every 4 G steps; 0 = off
    coord_weight: float = 1.0  # vertical-position loss (L1; D on real and fake, G on fake); 0 = off
    diversity_weight: float = 1.0  # mode-seeking diversity loss on the structure; 0 = off
    mixing: float = 0.9  # probability of style mixing
    upsample: float = 197 / 128  # resize-then-crop: reals are upsampled by this before a patch is cut

    def __post_init__(self) -> None:
        if (
            min(self.gamma, self.pl_weight, self.coord_weight, self.diversity_weight, self.mixing) < 0
            or self.mixing > 1
            or self.upsample < 1
        ):
            raise PolyinrError("InfinityGAN loss weights must be ≥ 0, mixing in [0, 1] and upsample ≥ 1")


@register_loss("infinitygan", InfinityGANLossConfig)
class InfinityGANLoss(GANLoss):
    """The InfinityGAN authors' losses (``train.py``, ``models/losses.py``) on patches cut from the reals.

    It cuts its own patches (:meth:`crop_reals`, with their vertical positions) and calls D directly, not through
    :meth:`GANLoss.run_D` (whose generic crop would cut them twice).

    Reals ``[B, 3, F, F]`` (the data's resolution) are upsampled by ``upsample`` (128 → 197 in the paper), a
    random patch of the generator's size is cut and flipped at random; its label is its vertical position in
    ``[-1, 1]``. Fakes are the generator's patches at random positions of its coordinate space
    (:meth:`~polyinr.models.generator.Generator.training_fakes`), in pairs sharing the global latent and coordinates.
    Non-saturating loss, lazy R1 (every 16), path length (every 4, half batch), the vertical-position L1 through
    the discriminator's auxiliary output, the mode-seeking diversity loss, style mixing.
    """

    R1_INTERVAL, PL_INTERVAL, PL_DECAY, PL_SHRINK = 16, 4, 0.01, 2

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        cfg: InfinityGANLossConfig | None = None,  # None: the defaults
        augment: AdaptiveAugment | None = None,  # kept for snapshots; this loss calls D directly, unaugmented
        device: torch.device | str = "cpu",  # unused: its running mean follows the path lengths' device
    ) -> None:
        cfg = cfg or InfinityGANLossConfig()
        super().__init__(G, D, augment=augment)
        if getattr(getattr(D, "cfg", None), "aux_outputs", 0) < 1:
            raise PolyinrError(
                "the infinitygan loss needs a discriminator with a position output "
                "(the residual discriminator with aux_outputs = 1)"
            )
        self.cfg = cfg
        self.pl_mean = torch.zeros([])

    def phases(self) -> list[PhaseSpec]:
        return phases_for("G", self.PL_INTERVAL if self.cfg.pl_weight > 0 else None) + phases_for(
            "D", self.R1_INTERVAL if self.cfg.gamma > 0 else None
        )

    def crop_reals(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Random patches ``[B, 3, R, R]`` of the upsampled reals, randomly flipped, and their vertical
        positions ``[B]`` in ``[-1, 1]``."""
        B, _, F_, _ = images.shape
        R = self.G.img_resolution
        full = max(R, round(F_ * self.cfg.upsample))
        if full != F_:
            images = F.interpolate(images, size=full, mode="bilinear", align_corners=False)
        top = torch.randint(0, full - R + 1, (B,))
        left = torch.randint(0, full - R + 1, (B,))
        patches = torch.stack([images[i, :, t : t + R, l : l + R] for i, (t, l) in enumerate(zip(top, left))])
        flip = torch.rand(B) < 0.5
        patches = torch.where(flip.view(B, 1, 1, 1).to(patches.device), patches.flip(3), patches)
        labels = top.float() / max(full - R, 1) * 2 - 1
        return patches, labels.to(images.device)

    def make_fakes(
        self, z: torch.Tensor, c: torch.Tensor | None, update_emas: bool = False, ws_grad: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Paired fakes: images ``[B, 3, R, R]``, their positions ``[B]``, ``ws``, the structure features and
        the local latents."""
        G = self.G
        z = z.clone()
        z[1::2] = z[0::2][: len(z) // 2]  # pairs share the global latent (the authors' setup_paired_inputs)
        ws = G.mapping(z, c, update_emas=update_emas)
        cutoffs = G.style_mixing_range()
        if self.cfg.mixing > 0 and cutoffs is not None and torch.rand([]) < self.cfg.mixing:
            z2 = torch.randn_like(z)
            z2[1::2] = z2[0::2][: len(z) // 2]
            cutoff = int(torch.randint(cutoffs.start, cutoffs.stop, []))
            ws = torch.cat([ws[:, :cutoff], G.mapping(z2, c, update_emas=False)[:, cutoff:]], dim=1)
        if ws_grad:
            ws = ws.detach().requires_grad_(True)
        fakes = G.training_fakes(ws, paired=True)
        return fakes.images, fakes.positions, ws, fakes.structure, fakes.local

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        cfg = self.cfg
        if phase in ("Gmain", "Gboth"):
            fake, positions, _, structure, local = self.make_fakes(gen_z, gen_c)
            logits, predicted = self.D(fake, gen_c, aux=True)
            loss = F.softplus(-logits).mean()
            report("Loss/G/loss", loss)
            if cfg.coord_weight > 0:
                coord = (predicted[:, 0] - positions).abs().mean()
                report("Loss/G/coord", coord)
                loss = loss + cfg.coord_weight * coord
            if cfg.diversity_weight > 0:
                diversity = mode_seeking_loss(structure, local)
                report("Loss/G/diversity", diversity)
                loss = loss + cfg.diversity_weight * diversity
            loss.mul(gain).backward()
        if phase in ("Greg", "Gboth") and cfg.pl_weight > 0:
            batch = max(2, len(gen_z) // self.PL_SHRINK)
            fake, _, ws, _, _ = self.make_fakes(gen_z[:batch], None if gen_c is None else gen_c[:batch], ws_grad=True)
            noise = torch.randn_like(fake) / math.sqrt(fake.shape[2] * fake.shape[3])
            (grad,) = torch.autograd.grad((fake * noise).sum(), ws, create_graph=True)
            lengths = grad[:, 1:].square().sum(dim=2).mean(dim=1).sqrt()  # [B] over the styles (not z_g)
            self.pl_mean = self.pl_mean.to(lengths.device).lerp(lengths.mean().detach(), self.PL_DECAY)
            penalty = (lengths - self.pl_mean).square()
            report("Loss/pl_penalty", penalty)
            (fake[:, 0, 0, 0] * 0 + penalty * cfg.pl_weight).mean().mul(gain).backward()
        if phase in ("Dmain", "Dboth"):
            with torch.no_grad():
                fake, fake_pos, _, _, _ = self.make_fakes(gen_z, gen_c, update_emas=True)
            real, real_pos = self.crop_reals(real_img)
            fake_logits, fake_pred = self.D(fake, gen_c, aux=True)
            real_logits, real_pred = self.D(real, real_c, aux=True)
            loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
            report("Loss/scores/fake", fake_logits)
            report("Loss/scores/real", real_logits)
            report("Loss/D/loss", loss)
            if cfg.coord_weight > 0:
                coord = (fake_pred[:, 0] - fake_pos).abs().mean() + (real_pred[:, 0] - real_pos).abs().mean()
                report("Loss/D/coord", coord)
                loss = loss + cfg.coord_weight * coord
            loss.mul(gain).backward()
        if phase in ("Dreg", "Dboth") and cfg.gamma > 0:
            real = self.crop_reals(real_img)[0].detach().requires_grad_(True)
            logits = self.D(real, real_c)
            (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
            penalty = grad.square().sum(dim=[1, 2, 3])
            loss = penalty.mean() * (cfg.gamma / 2)
            report("Loss/r1_penalty", penalty)
            report("Loss/D/reg", loss)
            loss.mul(gain).backward()
