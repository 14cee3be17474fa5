"""Building what a run needs from its options: data, discriminator, loss. Kept out of the loop's body."""

from __future__ import annotations

import torch

from polyinr.device import resolve_device
from polyinr.training.losses import GANLoss, NonSaturatingLoss, ProjectedHingeLoss
from polyinr.training.options import TrainingOptions
from polyinr.training.schedule import Stage

__all__ = ["build_discriminator", "build_loss", "open_training_data", "resolve_device"]


def open_training_data(options: TrainingOptions):
    """The dataset at its own resolution (stages re-read it at theirs)."""
    from polyinr.data.datasets import open_dataset

    return open_dataset(options.data, resolution=options.resolution, cond=options.cond, mirror=options.mirror)


def build_discriminator(
    options: TrainingOptions, stage: Stage, num_classes: int, class_table: torch.Tensor | None, device: torch.device
) -> torch.nn.Module:
    """A fresh discriminator for the stage's resolution, seeded by (seed, stage)."""
    from polyinr.discriminators import create_discriminator

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed * 1000 + 17 + stage.index)
        width = {"embed_dim": class_table.shape[1]} if class_table is not None and num_classes else {}
        D = create_discriminator(options.disc, stage.resolution, num_classes, **{**options.disc_options, **width})
    if class_table is not None and num_classes:
        D.set_class_embeddings(class_table)
    D = D.to(device).train()
    if device.type == "cuda":
        D = D.to(memory_format=torch.channels_last)  # the convolutional parts run faster in NHWC on GPUs
    if options.compile:
        D.compile()
    return D


def build_loss(options: TrainingOptions, G: torch.nn.Module, D: torch.nn.Module, device: torch.device) -> GANLoss:
    if options.loss == "nonsaturating":
        return NonSaturatingLoss(G, D, r1_gamma=options.gamma)
    classifier = None
    if options.cls_weight > 0:
        from polyinr.training.guidance import build_guidance_classifier

        classifier = build_guidance_classifier(device)
    return ProjectedHingeLoss(G, D, blur_init_sigma=options.blur_sigma, blur_fade_kimg=options.blur_fade_kimg,
                              classifier=classifier, cls_weight=options.cls_weight)  # fmt: skip
