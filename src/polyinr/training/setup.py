"""Building what a run needs, each part from its own settings (``training/settings.py``): data, generator
config, discriminator, loss, optimisers. Kept out of the loop's body, and shared with the command line's dry run
so that it shows exactly what a run builds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from polyinr.data.class_embeddings import load_class_embeddings
from polyinr.discriminators.ada import PIPELINES, AdaptiveAugment
from polyinr.errors import PolyinrError
from polyinr.training.losses import GANLoss, adam_settings, create_loss, get_loss, resolve_loss_config
from polyinr.training.options import TrainingOptions
from polyinr.training.plateau import PlateauRule
from polyinr.training.schedule import Stage, build_stages
from polyinr.training.settings import (
    AugmentSettings,
    ClassTableSettings,
    DataSettings,
    DiscriminatorSettings,
    GeneratorSettings,
    LossSettings,
    OptimizerSettings,
    ScheduleSettings,
)

__all__ = [
    "ClassTableMissing",
    "RunData",
    "build_discriminator",
    "build_loss",
    "check_guidance",
    "check_stage_data",
    "check_training_grids",
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


def open_training_data(data: DataSettings, resolution: int | None):
    """The dataset, at ``resolution`` (None: the data's own). With ``{res}`` in ``--data``, the file of that
    resolution's stage."""
    from polyinr.data.datasets import open_dataset

    source = data.data
    if STAGE_TEMPLATE in source:
        if resolution is None:
            raise PolyinrError(
                f"the data {source!r} names one dataset per stage ({STAGE_TEMPLATE}): a schedule or a "
                f"training resolution is needed"
            )
        source = source.replace(STAGE_TEMPLATE, str(resolution))
    return open_dataset(source, resolution=resolution, cond=data.cond, mirror=data.mirror)


@dataclass(frozen=True)
class RunData:
    """The data of a run's first stage, the run's stages (each ending by its kimg) and the number of classes the
    run is conditioned on (0 = unconditional)."""

    dataset: Any
    stages: list[Stage]
    num_classes: int


def open_run_data(data: DataSettings, schedule: ScheduleSettings) -> RunData:
    """The run's data and stages (:class:`RunData`)."""
    dataset = open_training_data(data, schedule.first_resolution())
    stages = build_stages(schedule.stages(dataset.resolution))
    return RunData(dataset, stages, dataset.num_classes if data.cond else 0)


def load_class_table(classes: ClassTableSettings, num_classes: int) -> torch.Tensor | None:
    """The pretrained class table ``[num_classes, E]`` that G's mapping and D start from (None: learned)."""
    if classes.class_embeddings is None:
        if classes.pretrained_classes and num_classes:
            raise ClassTableMissing(
                f"the {classes.recipe} recipe starts G's and D's class tables from pretrained class embeddings "
                f"({num_classes} classes) and none were given: compute them from the data, or take the table of "
                f"a converted authors' checkpoint"
            )
        return None
    table = load_class_embeddings(classes.class_embeddings)
    if table.shape[0] != num_classes:
        raise PolyinrError(
            f"the class embedding table has {table.shape[0]} classes, the conditional dataset {num_classes}"
        )
    return table


def check_guidance(loss: LossSettings, stages: list[Stage]) -> None:
    """Before anything trains: classifier guidance, when asked for, applies somewhere."""
    if loss.loss_options.get("cls_weight", 0) > 0 and len(stages) < 2:
        raise PolyinrError(
            "classifier guidance applies in super-resolution stages (after the first, as in "
            "StyleGAN-XL), but this run has one stage"
        )


def check_stage_data(data: DataSettings, dataset, stages: list[Stage]) -> None:
    """Before anything trains: every stage's data exists, and none would train on upsampled images."""
    for stage in stages:
        if STAGE_TEMPLATE in data.data:
            path = Path(data.data.replace(STAGE_TEMPLATE, str(stage.resolution)))
            if not path.exists():
                raise PolyinrError(
                    f"the {stage.resolution}x{stage.resolution} stage needs {path}, which does not exist"
                )
        elif dataset.source_resolution is not None and stage.resolution > dataset.source_resolution:
            limit = dataset.source_resolution
            raise PolyinrError(
                f"{data.data} holds images of {limit}x{limit} (or smaller), but a stage trains at "
                f"{stage.resolution}x{stage.resolution}; give larger images (they are resized per stage), one "
                f"dataset per stage with {STAGE_TEMPLATE} in the data path (e.g. imagenet{STAGE_TEMPLATE}.zip), "
                f"or a schedule that stops at {limit}"
            )


def check_training_grids(generator: GeneratorSettings, stages: list[Stage], num_classes: int) -> None:
    """Before anything trains: the generator of every stage accepts its training grid (a patch-trained model
    refuses images smaller than its patch: the grid contract's :class:`~polyinr.models.generator.GridRefused`);
    built on the meta device (no weights made)."""
    for stage in stages:
        _stage_generator(generator, num_classes, stages, None, stage).training_grid(stage.resolution)


def stage_data(data: DataSettings, dataset, stage: Stage):
    """The data of ``stage``: its own file with ``{res}`` in ``--data``, else ``dataset`` re-read at its size."""
    if STAGE_TEMPLATE in data.data:
        return open_training_data(data, stage.resolution)
    return dataset.with_resolution(stage.resolution)


def build_discriminator(
    disc: DiscriminatorSettings,
    stage: Stage,
    num_classes: int,
    class_table: torch.Tensor | None,
    device: torch.device,
    G: torch.nn.Module,
    seed: int,
    compile_network: bool = False,
) -> torch.nn.Module:
    """A fresh discriminator for what ``G`` renders at the stage's resolution (its training grid: the frame at
    that resolution, or a patch-trained model's patch), seeded by (seed, stage); ``compile_network``:
    torch.compile it."""
    from polyinr.discriminators import create_discriminator

    resolution = G.training_grid(stage.resolution).shape[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1000 + 17 + stage.index)
        D = create_discriminator(disc.disc, resolution, num_classes, **_disc_settings(disc, num_classes, class_table))
    if class_table is not None and num_classes:
        D.set_class_embeddings(class_table)
    D = D.to(device).train()
    if device.type == "cuda":
        D = D.to(memory_format=torch.channels_last)  # the convolutional parts run faster in NHWC on GPUs
    if compile_network:
        D.compile()
    return D


def generator_settings(
    generator: GeneratorSettings,
    num_classes: int,
    stages: list[Stage],
    class_table: torch.Tensor | None,
    stage: Stage | None = None,
) -> dict[str, Any]:
    """The overrides of the generator's preset for ``stage`` of this run (None: the last): the data's classes,
    the generator's settings for the stage (by default the last stage's resolution; grown models: the
    network of that stage; a learned input grid: the stage's resolution), the pretrained class table's width,
    then the explicit ``model_overrides``."""
    from polyinr.models.registry import get_entry

    index = stages[-1].index if stage is None else stage.index
    generator_cls = get_entry(generator.model).generator_cls
    sizes = generator_cls.stage_settings([s.resolution for s in stages], index)
    if generator.learn_grid:  # the learned grid is the native frame's: the stage's frame is the native one
        sizes = {**sizes, **generator_cls.learned_grid_settings(), "img_resolution": stages[index].resolution}
    settings: dict[str, Any] = {"num_classes": num_classes, **sizes}
    if class_table is not None:
        settings["embed_dim"] = class_table.shape[1]
    return {**settings, **generator.model_overrides}


def _disc_settings(disc: DiscriminatorSettings, num_classes: int, class_table: torch.Tensor | None) -> dict[str, Any]:
    """The discriminator's settings: the options', with the class table's width when one is given."""
    width = {"embed_dim": class_table.shape[1]} if class_table is not None and num_classes else {}
    return {**disc.disc_options, **width}


def optimizer_settings(optimizer: OptimizerSettings, loss: LossSettings) -> dict[str, dict[str, Any]]:
    """Adam's effective settings per network ``{'G': {lr, betas, eps, reg_interval}, 'D': …}``: the nominal
    lr scaled for the loss's lazy-regularisation interval, or the options' interval when one is set."""
    loss_cls, cfg = get_loss(loss.loss), resolve_loss_config(loss.loss, **loss.loss_options)
    out = {}
    for net, lr, interval in (
        ("G", optimizer.glr, optimizer.g_reg_interval),
        ("D", optimizer.dlr, optimizer.d_reg_interval),
    ):
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


def stage_start_rule(metrics: Sequence[str], goal: MetricGoal | None = None) -> str:
    """In words: which G_ema each resolution stage after the first starts from (see :func:`snapshot_ranking`)."""
    ranking = snapshot_ranking(metrics, goal)
    if ranking is not None:
        return (
            f"the G_ema of the previous stage's snapshot with the {'lowest' if ranking[2] else 'highest'} "
            f"{ranking[1]} (the first metric at snapshots)"
        )
    if metrics:
        return (
            f"the previous stage's last G_ema ({metrics[0]}, the first metric at snapshots, ranks no "
            f"snapshot better than another)"
        )
    return "the previous stage's last G_ema (no metrics at snapshots to pick its best one by)"


def check_stage_plateau(stage_plateau: PlateauRule | None, metrics: Sequence[str], ranking: Ranking | None) -> None:
    """One line when the run ends stages at a plateau but its first metric at snapshots ranks nothing."""
    if stage_plateau is not None and ranking is None:
        raise PolyinrError(
            f"ending stages at a plateau needs a first metric at snapshots that ranks them (FID, KID, "
            f"IS, CAS, EQ-T, EQ-R), not {metrics[0]}"
        )


def stage_end_rule(schedule: ScheduleSettings, metrics: Sequence[str], goal: MetricGoal | None = None) -> str:
    """In words: when each resolution stage ends (at a plateau of the metric ranking the snapshots, or by kimg)."""
    ranking = snapshot_ranking(metrics, goal)
    check_stage_plateau(schedule.stage_plateau, metrics, ranking)
    if schedule.stage_plateau is None:
        return "each stage after its kimg"
    return (
        f"each stage but the last at the snapshot where its own snapshots' {ranking[1]} has reached a plateau "
        f"({schedule.stage_plateau.describe(ranking[1], ranking[2])}), at the latest after its kimg; the next "
        f"stage starts there with its own kimg"
    )


def resolved_run(options: TrainingOptions, goal: MetricGoal | None = None) -> dict[str, Any]:
    """What a run of ``options`` builds, as plain values: the generator's config (every field, as the last stage
    trains it), the first stage's discriminator config, the loss's config, the stages (each with what its
    generator and loss settings change, and how many parameters it trains) and the stage-start rule (snapshots
    ranked by ``goal``). Opens the data (for its classes and size); builds no weights."""
    from polyinr.discriminators import get_discriminator
    from polyinr.training.recipes import get_recipe

    settings = options.split()
    run_data = open_run_data(settings.data, settings.schedule)
    stages, num_classes = run_data.stages, run_data.num_classes
    class_table = load_class_table(settings.classes, num_classes)
    generator = settings.generator
    final = dataclasses.asdict(_stage_generator(generator, num_classes, stages, class_table, stages[-1]).cfg)
    first = _stage_generator(generator, num_classes, stages, class_table, stages[0])
    disc_cls = get_discriminator(settings.disc.disc)
    disc = disc_cls.config_cls(
        img_resolution=first.training_grid(stages[0].resolution).shape[0],
        num_classes=num_classes,
        **_disc_settings(settings.disc, num_classes, class_table),
    )
    loss = settings.loss
    loss_cls, loss_cfg = get_loss(loss.loss), resolve_loss_config(loss.loss, **loss.loss_options)
    described = []
    for stage in stages:
        G = _stage_generator(generator, num_classes, stages, class_table, stage)
        described.append(
            {
                "resolution": stage.resolution,
                "kimg": (stage.end_nimg - stage.start_nimg) / 1000,
                "generator": {
                    k: v for k, v in dataclasses.asdict(G.cfg).items() if v != final[k]
                },  # vs the last stage's
                "parameters": sum(p.numel() for p in G.parameters()),
                "trainable_parameters": sum(p.numel() for p in G.trainable_parameters()),
                "loss": loss_cls.stage_settings(loss_cfg, stage.index),
            }
        )
    dataset = run_data.dataset
    return {
        "generator": {"model": generator.model, "preset": generator.preset, "config": final},
        "discriminator": {"name": settings.disc.disc, "config": dataclasses.asdict(disc)},
        "loss": {"name": loss.loss, "config": dataclasses.asdict(loss_cfg)},
        "optimizer": optimizer_settings(settings.optimizer, loss),
        "stages": described,
        "stage_start": stage_start_rule(settings.run.metrics, goal),
        "stage_end": stage_end_rule(settings.schedule, settings.run.metrics, goal),
        "recipe_notes": list(get_recipe(options.recipe).notes),
        "data": {"images": len(dataset), "classes": num_classes, "resolution": dataset.resolution},
    }


def _stage_generator(
    generator: GeneratorSettings,
    num_classes: int,
    stages: list[Stage],
    class_table: torch.Tensor | None,
    stage: Stage,
):
    """The generator ``stage`` trains, on the meta device (its config and parameter shapes, no weights)."""
    from polyinr.models.registry import create

    with torch.device("meta"):
        return create(
            generator.model, generator.preset, **generator_settings(generator, num_classes, stages, class_table, stage)
        )


def build_augment(augment: AugmentSettings, device: torch.device) -> AdaptiveAugment | None:
    """The ADA pipeline the settings ask for (None for 'noaug'; 'fixed' keeps p at ``aug_p``)."""
    if augment.aug == "noaug":
        return None
    target = augment.ada_target if augment.aug == "ada" else None
    pipeline = AdaptiveAugment(PIPELINES[augment.augpipe], p=augment.aug_p, target=target, kimg=augment.ada_kimg)
    return pipeline.to(device)


def build_loss(
    loss: LossSettings, augment: AugmentSettings, G: torch.nn.Module, D: torch.nn.Module, device: torch.device
) -> GANLoss:
    """The run's loss over ``G`` and ``D`` (a guidance classifier is built only when its weight is > 0), with
    the run's augmentation of D's inputs."""
    return create_loss(loss.loss, G, D, device, build_augment(augment, device), **loss.loss_options)
