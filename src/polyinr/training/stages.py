"""A resolution stage's networks: built for the first stage, and rebuilt at every stage switch.

Each resolution stage starts as the authors' next super-resolution run does: G continues from the previous
stage's best (or last) G_ema (on a denser grid, or a grown model: the network grown from it) with fresh Adam
moments, a fresh discriminator for the new resolution, and the loss carrying on (its augmentation probability,
path-length mean and guidance classifier) with the blur and the EMA ramp-up restarting.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from polyinr.models.registry import create as create_generator
from polyinr.training import distributed
from polyinr.training.losses import GANLoss
from polyinr.training.schedule import Stage
from polyinr.training.seeds import derived_seed
from polyinr.training.settings import (
    AugmentSettings,
    DiscriminatorSettings,
    GeneratorSettings,
    LossSettings,
    OptimizerSettings,
)
from polyinr.training.setup import build_discriminator, build_loss, generator_settings, optimizer_settings


@dataclass(frozen=True)
class NetworkBuilder:
    """What building a stage's networks takes: their settings and the run's facts."""

    generator: GeneratorSettings
    disc: DiscriminatorSettings
    loss: LossSettings
    augment: AugmentSettings
    optimizer: OptimizerSettings
    seed: int
    device: torch.device
    compile: bool  # torch.compile G's synthesis and D
    stages: list[Stage]  # the run's stages (their resolutions size each stage's networks)
    num_classes: int
    class_table: torch.Tensor | None  # the pretrained class table G and D start from (None: learned)

    def adam(self) -> dict[str, dict[str, Any]]:
        """Adam's effective settings per network (:func:`~polyinr.training.setup.optimizer_settings`)."""
        return optimizer_settings(self.optimizer, self.loss)

    def discriminator(self, stage: Stage, G: nn.Module) -> nn.Module:
        return build_discriminator(
            self.disc, stage, self.num_classes, self.class_table, self.device, G, self.seed, self.compile
        )


@dataclass(frozen=True)
class StageNetworks:
    """What one stage trains: G, its EMA copy, D, the loss over them, and per network ('G', 'D') the parameters
    that take gradients and their optimiser."""

    G: nn.Module
    G_ema: nn.Module
    D: nn.Module
    loss: GANLoss
    trainable: dict[str, list[nn.Parameter]]
    optimizers: dict[str, torch.optim.Adam]

    def modules(self) -> dict[str, nn.Module]:
        """The modules a snapshot keeps: G, D, G_ema and the loss's state."""
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema, **self.loss.state_modules()}


def first_stage_networks(builder: NetworkBuilder, stage: Stage) -> StageNetworks:
    """The networks of ``stage`` (the first, or the one a resumed run is in), G seeded by the run's seed."""
    torch.manual_seed(builder.seed)
    G = create_generator(
        builder.generator.model,
        builder.generator.preset,
        **generator_settings(builder.generator, builder.num_classes, builder.stages, builder.class_table, stage),
    )
    if builder.class_table is not None:
        G.mapping.set_class_embeddings(builder.class_table)
    G, G_ema = training_copies(G, builder.device, builder.compile)
    D = builder.discriminator(stage, G)
    loss = build_loss(builder.loss, builder.augment, G, D, builder.device)
    trainable = {
        "G": [p for p in G.parameters() if p.requires_grad],  # those G.trainable_parameters() names
        "D": [p for p in D.parameters() if p.requires_grad],
    }
    adam = builder.adam()
    optimizers = {net: _adam(trainable[net], adam[net]) for net in "GD"}
    loss.begin_stage(stage.index, stage.start_nimg)
    return StageNetworks(G, G_ema, D, loss, trainable, optimizers)


def next_stage_networks(previous: StageNetworks, builder: NetworkBuilder, stage: Stage) -> StageNetworks:
    """The networks of ``stage``, which starts now: G from ``previous.G_ema`` (grown into a new network when
    the model grows, seeded by (seed, stage)), a fresh D, fresh optimisers, the same loss on the new networks.
    Every process holds the same weights after it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(builder.seed, stage.index, 4))  # the new layers' initial weights
        grown = previous.G_ema.next_stage(stage.resolution)
    if grown is not None:
        G, G_ema = training_copies(grown, builder.device, builder.compile)
        trainable_G = [p for p in G.parameters() if p.requires_grad]
        distributed.broadcast_module(G)
        distributed.broadcast_module(G_ema)
    else:
        G, G_ema, trainable_G = previous.G, previous.G_ema, previous.trainable["G"]
        _start_from_ema(G, G_ema)
    D = builder.discriminator(stage, G)
    loss = previous.loss
    loss.use_networks(G, D)  # the loss (and its guidance classifier, if any) carries on
    loss.begin_stage(stage.index, stage.start_nimg)
    trainable = {"G": trainable_G, "D": [p for p in D.parameters() if p.requires_grad]}
    adam = builder.adam()
    optimizers = {net: _adam(trainable[net], adam[net]) for net in "GD"}
    distributed.broadcast_module(D)
    return StageNetworks(G, G_ema, D, loss, trainable, optimizers)


def training_copies(G: nn.Module, device: torch.device, compile_synthesis: bool) -> tuple[nn.Module, nn.Module]:
    """``(G, G_ema)`` on ``device``: G in training mode with only its trainable parameters taking gradients,
    G_ema a frozen copy in eval mode."""
    G = G.to(device).train().requires_grad_(False)
    for p in G.trainable_parameters():
        p.requires_grad_(True)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    if compile_synthesis:
        G.synthesis.compile()  # in place: parameter names (and so snapshots) are unchanged
    return G, G_ema


def _adam(params: list[nn.Parameter], settings: dict[str, Any]) -> torch.optim.Adam:
    """Adam with the effective settings of :func:`~polyinr.training.setup.optimizer_settings`."""
    return torch.optim.Adam(params, lr=settings["lr"], betas=tuple(settings["betas"]), eps=settings["eps"])


@torch.no_grad()
def _start_from_ema(G: nn.Module, G_ema: nn.Module) -> None:
    """G's weights and buffers ← G_ema's, in place (the parameters the optimisers hold stay the same objects)."""
    for p, p_ema in zip(G.parameters(), G_ema.parameters(), strict=True):
        p.copy_(p_ema)
    for b, b_ema in zip(G.buffers(), G_ema.buffers(), strict=True):
        b.copy_(b_ema)
