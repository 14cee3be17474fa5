"""Building what a run needs from its options: data, generator config, discriminator, loss. Kept out of the
loop's body, and shared with the command line's dry run so that it shows exactly what a run builds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from polyinr.data.class_embeddings import load_class_embeddings
from polyinr.discriminators.ada import PIPELINES, AdaptiveAugment
from polyinr.errors import PolyinrError
from polyinr.training.losses import GANLoss, adam_settings, create_loss, get_loss, resolve_loss_config
from polyinr.training.options import TrainingOptions
from polyinr.training.schedule import Stage, build_stages, parse_schedule

__all__ = [
    "ClassTableMissing",
    "build_discriminator",
    "build_loss",
    "check_stages",
    "generator_settings",
    "load_class_table",
    "open_run_data",
    "open_training_data",
    "optimizer_settings",
    "resolved_run",
    "stage_data",
]


class ClassTableMissing(PolyinrError):
    """The recipe starts class tables from pretrained embeddings, and none were given."""


STAGE_TEMPLATE = "{res}"  # in --data: one dataset per stage, e.g. imagenet{res}.zip (the authors' layout)


def open_training_data(options: TrainingOptions, resolution: int | None = None):
    """The dataset, at ``resolution`` (None: ``--resolution``, else the data's own). With ``{res}`` in
    ``--data``, the file of that resolution's stage."""
    from polyinr.data.datasets import open_dataset

    resolution = resolution or options.resolution
    source = options.data
    if STAGE_TEMPLATE in source:
        if resolution is None:
            raise PolyinrError(f"the data {source!r} names one dataset per stage ({STAGE_TEMPLATE}): a schedule or a "
                               f"training resolution is needed")  # fmt: skip
        source = source.replace(STAGE_TEMPLATE, str(resolution))
    return open_dataset(source, resolution=resolution, cond=options.cond, mirror=options.mirror)


def open_run_data(options: TrainingOptions):
    """``(dataset, stages, num_classes)``: the data of the first stage, the run's stages, and the number of
    classes the run is conditioned on (0 = unconditional)."""
    first_resolution = parse_schedule(options.schedule)[0][0] if options.schedule else None
    dataset = open_training_data(options, first_resolution)
    stages = build_stages(options.stages(dataset.resolution))
    return dataset, stages, dataset.num_classes if options.cond else 0


def load_class_table(options: TrainingOptions, num_classes: int) -> torch.Tensor | None:
    """The pretrained class table ``[num_classes, E]`` that G's mapping and D start from (None: learned)."""
    if options.class_embeddings is None:
        if options.pretrained_classes and num_classes:
            raise ClassTableMissing(
                f"the {options.recipe} recipe starts G's and D's class tables from pretrained class embeddings "
                f"({num_classes} classes) and none were given: compute them from the data, or take the table of "
                f"a converted authors' checkpoint"
            )
        return None
    table = load_class_embeddings(options.class_embeddings)
    if table.shape[0] != num_classes:
        raise PolyinrError(f"the class embedding table has {table.shape[0]} classes, the conditional dataset "
                           f"{num_classes}")  # fmt: skip
    return table


def check_stages(options: TrainingOptions, dataset, stages: list[Stage]) -> None:
    """Before anything trains: every stage's data exists, none would train on upsampled images, classifier
    guidance, when asked for, applies somewhere, and the generator of every stage accepts its training grid (a
    patch-trained model refuses images smaller than its patch: the grid contract's
    :class:`~polyinr.models.generator.GridRefused`)."""
    if options.loss_options.get("cls_weight", 0) > 0 and len(stages) < 2:
        raise PolyinrError("classifier guidance applies in super-resolution stages (after the first, as in "
                           "StyleGAN-XL), but this run has one stage")  # fmt: skip
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
                f"dataset per stage with {STAGE_TEMPLATE} in the data path (e.g. imagenet{STAGE_TEMPLATE}.zip), "
                f"or a schedule that stops at {limit}"
            )
    _check_training_grids(options, stages, dataset.num_classes if options.cond else 0)


def _check_training_grids(options: TrainingOptions, stages: list[Stage], num_classes: int) -> None:
    """Each stage's generator accepts the stage's training grid; built on the meta device (no weights made)."""
    for stage in stages:
        _stage_generator(options, num_classes, stages, None, stage).training_grid(stage.resolution)


def stage_data(options: TrainingOptions, dataset, stage: Stage):
    """The data of ``stage``: its own file with ``{res}`` in ``--data``, else ``dataset`` re-read at its size."""
    if STAGE_TEMPLATE in options.data:
        return open_training_data(options, stage.resolution)
    return dataset.with_resolution(stage.resolution)


def build_discriminator(
    options: TrainingOptions, stage: Stage, num_classes: int, class_table: torch.Tensor | None, device: torch.device,
    G: torch.nn.Module,
) -> torch.nn.Module:  # fmt: skip
    """A fresh discriminator for what ``G`` renders at the stage's resolution (its training grid: the frame at
    that resolution, or a patch-trained model's patch), seeded by (seed, stage)."""
    from polyinr.discriminators import create_discriminator

    resolution = G.training_grid(stage.resolution).shape[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed * 1000 + 17 + stage.index)
        D = create_discriminator(options.disc, resolution, num_classes,
                                 **_disc_settings(options, num_classes, class_table))  # fmt: skip
    if class_table is not None and num_classes:
        D.set_class_embeddings(class_table)
    D = D.to(device).train()
    if device.type == "cuda":
        D = D.to(memory_format=torch.channels_last)  # the convolutional parts run faster in NHWC on GPUs
    if options.compile:
        D.compile()
    return D


def generator_settings(
    options: TrainingOptions, num_classes: int, stages: list[Stage], class_table: torch.Tensor | None,
    stage: Stage | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The overrides of the generator's preset for ``stage`` of this run (None: the last): the data's classes,
    the generator's settings for the stage (by default the last stage's resolution; grown models: the
    network of that stage; a learned input grid: the stage's resolution), the pretrained class table's width,
    then the explicit ``model_overrides``."""
    from polyinr.models.registry import get_entry

    index = stages[-1].index if stage is None else stage.index
    generator_cls = get_entry(options.model).generator_cls
    sizes = generator_cls.stage_settings([s.resolution for s in stages], index)
    if options.learn_grid:  # the learned grid is the native frame's: the stage's frame is the native one
        sizes = {**sizes, **generator_cls.learned_grid_settings(), "img_resolution": stages[index].resolution}
    settings: dict[str, Any] = {"num_classes": num_classes, **sizes}
    if class_table is not None:
        settings["embed_dim"] = class_table.shape[1]
    return {**settings, **options.model_overrides}


def _disc_settings(options: TrainingOptions, num_classes: int, class_table: torch.Tensor | None) -> dict[str, Any]:
    """The discriminator's settings: the options', with the class table's width when one is given."""
    width = {"embed_dim": class_table.shape[1]} if class_table is not None and num_classes else {}
    return {**options.disc_options, **width}


def optimizer_settings(options: TrainingOptions) -> dict[str, dict[str, Any]]:
    """Adam's effective settings per network ``{'G': {lr, betas, eps, reg_interval}, 'D': …}``: the nominal
    lr scaled for the loss's lazy-regularisation interval, or the options' interval when one is set."""
    loss_cls, cfg = get_loss(options.loss), resolve_loss_config(options.loss, **options.loss_options)
    out = {}
    for net, lr, interval in (("G", options.glr, options.g_reg_interval), ("D", options.dlr, options.d_reg_interval)):
        interval = interval or loss_cls.reg_interval(cfg, net)
        effective_lr, betas = adam_settings(lr, interval)
        out[net] = {"lr": effective_lr, "betas": list(betas), "eps": 1e-8, "nominal_lr": lr, "reg_interval": interval}
    return out


# How a stage's snapshots are ranked to start the next stage: (metric, result key, lower is better).
Ranking = tuple[str, str, bool]


# A metric's name → (result key, lower is better), or None where no direction is better: the metrics layer's
# polyinr.metrics.metric_goal, passed in by the commands (training sits below the metrics).
MetricGoal = Callable[[str], tuple[str, bool] | None]


def snapshot_ranking(metrics: Sequence[str], goal: MetricGoal | None) -> Ranking | None:
    """The ranking of a run with ``metrics`` at its snapshots: by the first metric, when ``goal`` gives it a
    better direction; None (each stage starts from the last) otherwise."""
    if not metrics or goal is None:
        return None
    direction = goal(metrics[0])
    return None if direction is None else (metrics[0], *direction)


def stage_start_rule(options: TrainingOptions, goal: MetricGoal | None = None) -> str:
    """In words: which G_ema each resolution stage after the first starts from (see :func:`snapshot_ranking`)."""
    ranking = snapshot_ranking(options.metrics, goal)
    if ranking is not None:
        return (f"the G_ema of the previous stage's snapshot with the {'lowest' if ranking[2] else 'highest'} "
                f"{ranking[1]} (the first metric at snapshots)")  # fmt: skip
    if options.metrics:
        return (f"the previous stage's last G_ema ({options.metrics[0]}, the first metric at snapshots, ranks no "
                f"snapshot better than another)")  # fmt: skip
    return "the previous stage's last G_ema (no metrics at snapshots to pick its best one by)"


def check_stage_plateau(options: TrainingOptions, ranking: Ranking | None) -> None:
    """One line when the options end stages at a plateau but their first metric at snapshots ranks nothing."""
    if options.stage_plateau is not None and ranking is None:
        raise PolyinrError(f"ending stages at a plateau needs a first metric at snapshots that ranks them (FID, KID, "
                           f"IS, CAS, EQ-T, EQ-R), not {options.metrics[0]}")  # fmt: skip


def stage_end_rule(options: TrainingOptions, goal: MetricGoal | None = None) -> str:
    """In words: when each resolution stage ends (at a plateau of the metric ranking the snapshots, or by kimg)."""
    ranking = snapshot_ranking(options.metrics, goal)
    check_stage_plateau(options, ranking)
    if options.stage_plateau is None:
        return "each stage after its kimg"
    return (f"each stage but the last at the snapshot where its own snapshots' {ranking[1]} has reached a plateau "
            f"({options.stage_plateau.describe(ranking[1], ranking[2])}), at the latest after its kimg; the next "
            f"stage starts there with its own kimg")  # fmt: skip


def resolved_run(options: TrainingOptions, goal: MetricGoal | None = None) -> dict[str, Any]:
    """What a run of ``options`` builds, as plain values: the generator's config (every field, as the last stage
    trains it), the first stage's discriminator config, the loss's config, the stages (each with what its
    generator and loss settings change, and how many parameters it trains) and the stage-start rule (snapshots
    ranked by ``goal``). Opens the data (for its classes and size); builds no weights."""
    from polyinr.discriminators import get_discriminator
    from polyinr.training.recipes import get_recipe

    dataset, stages, num_classes = open_run_data(options)
    class_table = load_class_table(options, num_classes)
    final = dataclasses.asdict(_stage_generator(options, num_classes, stages, class_table, stages[-1]).cfg)
    first = _stage_generator(options, num_classes, stages, class_table, stages[0])
    disc_cls = get_discriminator(options.disc)
    disc = disc_cls.config_cls(img_resolution=first.training_grid(stages[0].resolution).shape[0],
                               num_classes=num_classes,
                               **_disc_settings(options, num_classes, class_table))  # fmt: skip
    loss_cls, loss_cfg = get_loss(options.loss), resolve_loss_config(options.loss, **options.loss_options)
    described = []
    for stage in stages:
        G = _stage_generator(options, num_classes, stages, class_table, stage)
        described.append({
            "resolution": stage.resolution,
            "kimg": (stage.end_nimg - stage.start_nimg) / 1000,
            "generator": {k: v for k, v in dataclasses.asdict(G.cfg).items() if v != final[k]},  # vs the last stage's
            "parameters": sum(p.numel() for p in G.parameters()),
            "trainable_parameters": sum(p.numel() for p in G.trainable_parameters()),
            "loss": loss_cls.stage_settings(loss_cfg, stage.index),
        })  # fmt: skip
    return {
        "generator": {"model": options.model, "preset": options.preset, "config": final},
        "discriminator": {"name": options.disc, "config": dataclasses.asdict(disc)},
        "loss": {"name": options.loss, "config": dataclasses.asdict(loss_cfg)},
        "optimizer": optimizer_settings(options),
        "stages": described,
        "stage_start": stage_start_rule(options, goal),
        "stage_end": stage_end_rule(options, goal),
        "recipe_notes": list(get_recipe(options.recipe).notes),
        "data": {"images": len(dataset), "classes": num_classes, "resolution": dataset.resolution},
    }


def _stage_generator(
    options: TrainingOptions, num_classes: int, stages: list[Stage], class_table: torch.Tensor | None, stage: Stage
):
    """The generator ``stage`` trains, on the meta device (its config and parameter shapes, no weights)."""
    from polyinr.models.registry import create

    with torch.device("meta"):
        return create(options.model, options.preset,
                      **generator_settings(options, num_classes, stages, class_table, stage))  # fmt: skip


def build_augment(options: TrainingOptions, device: torch.device) -> AdaptiveAugment | None:
    """The ADA pipeline the options ask for (None for 'noaug'; 'fixed' keeps p at ``aug_p``)."""
    if options.aug == "noaug":
        return None
    target = options.ada_target if options.aug == "ada" else None
    augment = AdaptiveAugment(PIPELINES[options.augpipe], p=options.aug_p, target=target, kimg=options.ada_kimg)
    return augment.to(device)


def build_loss(options: TrainingOptions, G: torch.nn.Module, D: torch.nn.Module, device: torch.device) -> GANLoss:
    """The run's loss over ``G`` and ``D`` (a guidance classifier is built only when its weight is > 0), with
    the run's augmentation of D's inputs."""
    return create_loss(options.loss, G, D, device, build_augment(options, device), **options.loss_options)
