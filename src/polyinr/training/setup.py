"""Building what a run needs from its options: data, discriminator, loss. Kept out of the loop's body."""

from __future__ import annotations

from pathlib import Path

import torch

from polyinr.device import resolve_device
from polyinr.discriminators.ada import PIPELINES, AdaptiveAugment
from polyinr.errors import PolyinrError
from polyinr.training.losses import GANLoss, NonSaturatingLoss, ProjectedHingeLoss
from polyinr.training.options import TrainingOptions
from polyinr.training.schedule import Stage

__all__ = ["build_discriminator", "build_loss", "check_stages", "open_training_data", "resolve_device", "stage_data"]


STAGE_TEMPLATE = "{res}"  # in --data: one dataset per stage, e.g. imagenet{res}.zip (the authors' layout)


def open_training_data(options: TrainingOptions, resolution: int | None = None):
    """The dataset, at ``resolution`` (None: ``--resolution``, else the data's own). With ``{res}`` in
    ``--data``, the file of that resolution's stage."""
    from polyinr.data.datasets import open_dataset

    resolution = resolution or options.resolution
    source = options.data
    if STAGE_TEMPLATE in source:
        if resolution is None:
            raise PolyinrError(f"--data {source!r} names one dataset per stage: give --schedule or --resolution")
        source = source.replace(STAGE_TEMPLATE, str(resolution))
    return open_dataset(source, resolution=resolution, cond=options.cond, mirror=options.mirror)


def check_stages(options: TrainingOptions, dataset, stages: list[Stage]) -> None:
    """Before anything trains: every stage's data exists and none would train on upsampled images."""
    for stage in stages:
        if STAGE_TEMPLATE in options.data:
            path = Path(options.data.replace(STAGE_TEMPLATE, str(stage.resolution)))
            if not path.exists():
                raise PolyinrError(
                    f"the {stage.resolution}x{stage.resolution} stage needs {path}, which does not exist"
                )
        elif dataset.source_resolution is not None and stage.resolution > dataset.source_resolution:
            limit = dataset.source_resolution
            raise PolyinrError(
                f"{options.data} holds images of {limit}x{limit} (or smaller), but a stage trains at "
                f"{stage.resolution}x{stage.resolution}; give larger images (they are resized per stage), one "
                f"dataset per stage with {STAGE_TEMPLATE} in --data (e.g. --data imagenet{STAGE_TEMPLATE}.zip), "
                f"or a --schedule that stops at {limit}"
            )


def stage_data(options: TrainingOptions, dataset, stage: Stage):
    """The data of ``stage``: its own file with ``{res}`` in ``--data``, else ``dataset`` re-read at its size."""
    if STAGE_TEMPLATE in options.data:
        return open_training_data(options, stage.resolution)
    return dataset.with_resolution(stage.resolution)


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


def build_augment(options: TrainingOptions, device: torch.device) -> AdaptiveAugment | None:
    """The ADA pipeline the options ask for (None for 'noaug')."""
    if options.aug == "noaug":
        return None
    target = options.ada_target if options.aug == "ada" else None
    augment = AdaptiveAugment(PIPELINES[options.augpipe], p=options.aug_p, target=target, kimg=options.ada_kimg)
    return augment.to(device)


def build_loss(options: TrainingOptions, G: torch.nn.Module, D: torch.nn.Module, device: torch.device) -> GANLoss:
    augment = build_augment(options, device)
    if options.loss == "nonsaturating":
        return NonSaturatingLoss(G, D, r1_gamma=options.gamma, blur_init_sigma=options.blur_sigma,
                                 blur_fade_kimg=options.blur_fade_kimg, augment=augment)  # fmt: skip
    classifier = None
    if options.cls_weight > 0:
        from polyinr.training.guidance import build_guidance_classifier

        classifier = build_guidance_classifier(device)
    return ProjectedHingeLoss(G, D, blur_init_sigma=options.blur_sigma, blur_fade_kimg=options.blur_fade_kimg,
                              classifier=classifier, cls_weight=options.cls_weight, augment=augment)  # fmt: skip
