"""Each part of training gets only the settings it uses, as EDM2 passes ``dataset_kwargs``, ``network_kwargs``
and ``loss_kwargs``.

:class:`~polyinr.training.options.TrainingOptions` is the one flat set of options the command line resolves and a
run directory keeps (``training_options.json``); :meth:`~polyinr.training.options.TrainingOptions.split` cuts it
into these parts near the top of the loop, and each builder takes its part: the data its :class:`DataSettings`,
the generator its :class:`GeneratorSettings`, the loss its :class:`LossSettings`, and so on. Every option lands in
exactly one part, under its own name, so an option reads the same from the command line to the code that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from polyinr.training.plateau import PlateauRule
from polyinr.training.schedule import parse_schedule


@dataclass(frozen=True)
class DataSettings:
    """What the run trains on, and how it is loaded."""

    data: str  # image folder, dataset zip or builtin:NAME; {res} in it: one dataset per stage
    cond: bool  # class-conditional on the dataset's labels
    mirror: bool  # add x-flipped copies of the images
    workers: int  # DataLoader worker processes (0 = load in the main process)


@dataclass(frozen=True)
class ScheduleSettings:
    """How long the run trains, at which resolutions: a schedule of stages, else one stage."""

    schedule: str | None  # '32:2000,64:1000'; None = kimg at the data's resolution
    kimg: float  # duration when no schedule is given
    resolution: int | None  # training resolution when no schedule is given; None = the data's
    stage_plateau: PlateauRule | None  # end each stage but the last at a plateau of its snapshots' first metric

    def stages(self, data_resolution: int) -> list[tuple[int, float]]:
        """The (resolution, kimg) stages this run trains."""
        if self.schedule is not None:
            return parse_schedule(self.schedule)
        return [(self.resolution or data_resolution, self.kimg)]

    def first_resolution(self) -> int | None:
        """The first stage's resolution, when the settings name it (None: the data's)."""
        return parse_schedule(self.schedule)[0][0] if self.schedule is not None else self.resolution


@dataclass(frozen=True)
class ClassTableSettings:
    """Where G's and D's class tables start from."""

    class_embeddings: str | None  # safetensors table to start G's and D's class tables from
    pretrained_classes: bool  # a conditional run needs `class_embeddings` (no random class tables)
    recipe: str  # the recipe that asks for pretrained class tables (named when none are given)


@dataclass(frozen=True)
class GeneratorSettings:
    """The registered generator, its preset and the changes to it."""

    model: str
    preset: str
    model_overrides: dict[str, Any] = field(default_factory=dict)  # generator config fields over the preset
    learn_grid: bool = False  # learn the native frame's input coordinates with G


@dataclass(frozen=True)
class DiscriminatorSettings:
    disc: str  # registered discriminator
    disc_options: dict[str, Any] = field(default_factory=dict)  # fields of its config


@dataclass(frozen=True)
class LossSettings:
    loss: str  # registered loss
    loss_options: dict[str, Any] = field(default_factory=dict)  # fields of its config


@dataclass(frozen=True)
class AugmentSettings:
    """StyleGAN2-ADA's augmentation of D's inputs."""

    aug: str  # 'noaug', 'ada' or 'fixed'
    aug_p: float  # probability at the start ('ada') or throughout ('fixed')
    ada_target: float  # ADA's target for E[sign D(real)]
    ada_kimg: float  # ADA's speed: p can move by 1 in this many kimg
    augpipe: str  # transforms: bgc, bg or c


@dataclass(frozen=True)
class OptimizerSettings:
    """Adam's nominal learning rates and the lazy-regularisation intervals they are scaled for."""

    glr: float
    dlr: float
    g_reg_interval: int | None  # None = the loss's own regularisation phases
    d_reg_interval: int | None


@dataclass(frozen=True)
class EmaSettings:
    ema_kimg: float  # G EMA half-life in kimg (resolved from the batch when the options leave it to it)
    ema_rampup: float | None  # StyleGAN's EMA ramp-up; None = off


@dataclass(frozen=True)
class DeviceSettings:
    device: str  # cpu, cuda, cuda:N or auto
    bf16: bool  # bf16 autocast of G and D (CUDA)
    tf32: bool  # TF32 matmuls and convolutions (CUDA)
    compile: bool  # torch.compile G's synthesis and D (CUDA)


@dataclass(frozen=True)
class RunSettings:
    """The run itself: where it goes, its seed, its batch, its ticks, snapshots and metrics."""

    outdir: str
    desc: str | None
    seed: int  # everything random derives from it
    batch: int  # total batch over all processes and micro-batches
    batch_gpu: int | None  # micro-batch per process; None = batch / processes
    tick_kimg: float
    snap_ticks: int
    keep_snapshots: int
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class TrainingSettings:
    """The parts of a run's options, one per builder."""

    data: DataSettings
    schedule: ScheduleSettings
    classes: ClassTableSettings
    generator: GeneratorSettings
    disc: DiscriminatorSettings
    loss: LossSettings
    augment: AugmentSettings
    optimizer: OptimizerSettings
    ema: EmaSettings
    device: DeviceSettings
    run: RunSettings
