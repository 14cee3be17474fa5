"""StyleGAN-XL's generator (Sauer, Schwarz, Geiger, "StyleGAN-XL: Scaling StyleGAN to Large Diverse
Datasets", SIGGRAPH 2022): StyleGAN3's alias-free synthesis, grown progressively.

Settings (the authors' ``--cfg stylegan3-t``): ``z_dim`` 64, ``w_dim`` 512, two mapping layers; a class enters
through a pretrained 320-wide embedding table (EfficientNet-lite0 class means) and ``embed_proj``, with one
``w_avg`` per class; channel base and maximum twice StyleGAN3's; each layer's magnitude EMA frozen at 1 (their
``run_G`` never updates the EMAs: "enabling emas leads to collapse with PG"), hence ``magnitude_ema_beta = 1``.

Progressive growth: a *stem* is a StyleGAN3 synthesis at ``stem_resolution``. Each growth stage multiplies the
resolution by its factor (``up_factors``): it removes the critically sampled layers (the last two and ToRGB)
and appends ``head_layers + 1`` new layers whose filter parameters continue from the last remaining layer
(:func:`head_schedule`, the authors' ``compute_superres_filterparams``): the first cutoff is that layer's
output cutoff, the first stopband its half-width plus cutoff, the first sampling rate and channel count its
own; cutoffs and stopbands then grow geometrically to the new ``res/2`` and ``res/2·2^0.3``, and the last two
layers and ToRGB are critically sampled. As in their code, the new layers take StyleGAN3's default layer
settings (3×3 convolutions, separable filters) whatever the stem's, and are numbered on from ``stem_len =
remaining layers + 1`` (so the first growth skips one index, ``L7_…`` then ``L9_…``, and later ones reuse the
numbers of the layers they cut, as in their pickles).

A training run grows the network at each stage of ``polyinr train --schedule 16:…,32:…,64:…``: the loop asks
:meth:`StyleGANXLGenerator.next_stage` for the grown network, which starts from the previous stage's EMA weights
(the authors load the stem's ``G_ema``) with fresh heads. ``train_head_only`` trains only the layers the last
stage added, and the Fourier input: the authors' ``train_head_only`` freezes the mapping and every layer their
synthesis lists by name except the new ones, and the input is not among those names.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from torch import nn

from polyinr.errors import PolyinrError
from polyinr.models.generator import FRAME, Generator
from polyinr.models.mapping import MappingConfig, MappingNetwork
from polyinr.models.registry import register
from polyinr.models.stylegan3 import (
    LayerSpec,
    StyleGAN3Config,
    StyleGAN3Generator,
    StyleGAN3Synthesis,
    chained_layers,
    layer_schedule,
)
from polyinr.models.training_hooks import TrainableGenerator

UP_FACTORS = (2, 4, 8, 16)  # resolution factors one growth stage may take (the authors' choices)
HEAD_CRITICAL = 2  # critically sampled layers at the end of each head (their function's default)


@dataclass(frozen=True)
class StyleGANXLConfig(StyleGAN3Config):
    mapping: MappingConfig = field(
        default_factory=lambda: MappingConfig(z_dim=64, w_dim=512, embed_dim=320, lr_multiplier=0.01)
    )
    img_resolution: int = 16  # output side = stem_resolution · product of up_factors; filled when training
    channel_base: int = 65536  # twice StyleGAN3-T's
    channel_max: int = 1024
    magnitude_ema_beta: float = 1.0  # frozen, as the authors' training never updates it
    stem_resolution: int = 16  # resolution of the stem synthesis (a power of two)
    up_factors: tuple[int, ...] = ()  # one per growth stage, each 2, 4, 8 or 16; () = the stem alone
    head_layers: int = 7  # each stage appends head_layers + 1 layers (the last one ToRGB)
    # Grown: train only the last stage's layers and the Fourier input (mapping and earlier layers frozen, as the
    # authors' train_head_only, which freezes the layers their synthesis lists and so leaves the input training).
    train_head_only: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "up_factors", tuple(self.up_factors))  # a list when read back from JSON
        R = self.stem_resolution
        if R < 4 or R & (R - 1):
            raise PolyinrError(f"the StyleGAN-XL stem resolution must be a power of two ≥ 4, got {R}")
        if any(f not in UP_FACTORS for f in self.up_factors):
            raise PolyinrError(f"growth factors must be among {UP_FACTORS}, got {self.up_factors}")
        if self.img_resolution != R * math.prod(self.up_factors):
            raise PolyinrError(
                f"a {R}x{R} stem grown by {list(self.up_factors)} renders "
                f"{R * math.prod(self.up_factors)} pixels, not {self.img_resolution}"
            )
        if self.head_layers <= HEAD_CRITICAL:
            raise PolyinrError(f"head_layers must be > {HEAD_CRITICAL}, got {self.head_layers}")

    @property
    def num_ws(self) -> int:
        return len(xl_schedule(self)) + 1


def head_schedule(last: LayerSpec, start: int, cfg: StyleGANXLConfig, resolution: int) -> list[LayerSpec]:
    """The ``head_layers + 1`` layers a growth stage to ``resolution`` appends after ``last`` (the last
    non-critical layer so far), numbered from ``start``; the authors' ``compute_superres_filterparams``."""
    H = cfg.head_layers
    first_cutoff = last.out_cutoff
    first_stopband = last.out_half_width + first_cutoff
    last_cutoff = resolution / 2
    last_stopband = last_cutoff * cfg.last_stopband_rel
    exponents = np.minimum(np.arange(H + 1) / (H - HEAD_CRITICAL), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, resolution))))
    sampling_rates[0] = last.out_sampling_rate
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + cfg.margin_size * 2
    sizes[-2:] = resolution
    channels = np.rint(np.minimum((cfg.channel_base / 2) / cutoffs, cfg.channel_max))
    channels[0] = last.out_channels
    channels[-1] = cfg.img_channels
    return chained_layers(start, channels, sizes, sampling_rates, cutoffs, half_widths, cfg.num_critical)


def xl_schedule(cfg: StyleGANXLConfig) -> list[LayerSpec]:
    """Every layer of the grown synthesis: the stem's, then each stage's head, critical layers cut between."""
    specs = layer_schedule(replace(cfg, img_resolution=cfg.stem_resolution, up_factors=(), train_head_only=False))
    resolution = cfg.stem_resolution
    for factor in cfg.up_factors:
        resolution *= factor
        kept = [s for s in specs if not s.is_critically_sampled]
        specs = kept + head_schedule(kept[-1], len(kept) + 1, cfg, resolution)  # the authors' stem_len
    return specs


class StyleGANXLGenerator(TrainableGenerator, Generator):
    """The shared mapping (pretrained class table, per-class ``w_avg``) + the grown alias-free synthesis."""

    grid_support = FRAME
    # StyleGAN3's synthesis and its magnitude averages, frozen by magnitude_ema_beta = 1 unless a config changes it
    synthesize = StyleGAN3Generator.synthesize

    def __init__(self, cfg: StyleGANXLConfig) -> None:
        super().__init__(cfg)
        specs = xl_schedule(cfg)
        self.mapping = MappingNetwork(cfg.mapping, len(specs) + 1)
        self.synthesis = StyleGAN3Synthesis(
            specs, cfg.w_dim, cfg.img_resolution, cfg.output_scale, cfg.conv_clamp, cfg.magnitude_ema_beta
        )
        self.head_names = [s.name for s in specs[-(cfg.head_layers + 1) :]]  # the last growth stage's layers

    def style_mixing_range(self) -> range:
        return range(self.num_ws)

    def trainable_parameters(self) -> list[nn.Parameter]:
        if not (self.cfg.train_head_only and self.cfg.up_factors):  # the stem trains whole
            return super().trainable_parameters()
        trained = [self.synthesis.input, *(getattr(self.synthesis, name) for name in self.head_names)]
        return [p for module in trained for p in module.parameters()]

    @classmethod
    def stage_settings(cls, resolutions: list[int], stage: int) -> dict[str, Any]:
        """The stem at the first stage's resolution, grown by each later stage's factor up to ``stage``."""
        factors = []
        for lower, higher in itertools.pairwise(resolutions[: stage + 1]):
            if higher % lower or higher // lower not in UP_FACTORS:
                raise PolyinrError(
                    f"StyleGAN-XL grows by a factor of {', '.join(map(str, UP_FACTORS))} per stage; "
                    f"a stage from {lower} to {higher} pixels is not one"
                )
            factors.append(higher // lower)
        return {"stem_resolution": resolutions[0], "up_factors": tuple(factors), "img_resolution": resolutions[stage]}

    def next_stage(self, resolution: int) -> StyleGANXLGenerator | None:
        """This network grown to ``resolution``: its mapping and non-critical layers carried over, new heads
        initialised from the current global RNG; None when it already renders ``resolution``."""
        cfg = self.cfg
        if resolution == cfg.img_resolution:
            return None
        if resolution % cfg.img_resolution or resolution // cfg.img_resolution not in UP_FACTORS:
            raise PolyinrError(
                f"StyleGAN-XL grows by a factor of {', '.join(map(str, UP_FACTORS))} per stage, "
                f"not from {cfg.img_resolution} to {resolution} pixels"
            )
        grown_cfg = replace(
            cfg, img_resolution=resolution, up_factors=(*cfg.up_factors, resolution // cfg.img_resolution)
        )
        grown = type(self)(grown_cfg).to(next(self.parameters()).device)
        state = grown.state_dict()
        carried = {k: v for k, v in self.state_dict().items() if k in state and state[k].shape == v.shape}
        grown.load_state_dict(carried, strict=False)
        return grown


@register(
    "stylegan-xl",
    StyleGANXLConfig,
    presets={
        # The authors' ImageNet networks: a 16² stem of 10 layers (README), heads of 7, 1000 classes.
        "imagenet": dict(
            num_layers=10,
            stem_resolution=16,
            img_resolution=16,
            head_layers=7,
            mapping=dict(z_dim=64, w_dim=512, num_classes=1000, embed_dim=320),
        ),
        # Small enough to train for minutes on two CPU cores: an 8² stem, heads of 3.
        "cpu": dict(
            num_layers=4,
            stem_resolution=8,
            img_resolution=16,
            up_factors=(2,),
            head_layers=3,
            channel_base=1024,
            channel_max=64,
            mapping=dict(z_dim=32, w_dim=64, embed_dim=32),
        ),
    },
)
class StyleGANXL(StyleGANXLGenerator):
    """StyleGAN-XL (config T): alias-free synthesis grown from a low-resolution stem."""
