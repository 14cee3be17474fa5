"""Each part of training gets only the settings it uses, as EDM2 passes ``dataset_kwargs``, ``network_kwargs``
and ``loss_kwargs``.

Every training option is declared once, here, in the part of training that uses it, with its default.
:class:`~polyinr.training.options.TrainingOptions` is the union of these parts: the one flat set of options the
command line resolves and a run directory keeps (``training_options.json``).
:meth:`~polyinr.training.options.TrainingOptions.split` cuts it back into the parts near the top of the loop, and
each builder takes its own: the data its :class:`DataSettings`, the generator its :class:`GeneratorSettings`, the
loss its :class:`LossSettings`, and so on. An option reads the same from the command line to the code that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from polyinr.training.plateau import PlateauRule
from polyinr.training.schedule import parse_schedule


@dataclass(frozen=True)
class DataSettings:
    """What the run trains on, and how it is loaded."""

    data: str = "builtin:digits"  # image folder, dataset zip or builtin:NAME; {res} in it: one dataset per stage
    cond: bool = False  # class-conditional on the dataset's labels
    mirror: bool = False  # add x-flipped copies of the images
    workers: int = 2  # DataLoader worker processes (0 = load in the main process)


@dataclass(frozen=True)
class ScheduleSettings:
    """How long the run trains, at which resolutions: a schedule of (resolution, kimg) stages, else one stage."""

    schedule: str | None = None  # '32:2000,64:1000'; None = kimg at the data's resolution
    kimg: float = 200.0  # duration when no schedule is given
    resolution: int | None = None  # training resolution when no schedule is given; None = the data's
    # End each stage of a schedule but the last once the first metric at snapshots (one that ranks them) of its
    # own snapshots has reached a plateau by this rule; its kimg stays the most it trains, and the next stage starts
    # there with its own length. None = every stage ends after its kimg.
    stage_plateau: PlateauRule | None = None

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

    recipe: str = "cpu"  # registered training recipe (training/recipes.py), named when it asks for pretrained tables
    class_embeddings: str | None = None  # safetensors table to start G's and D's class tables from
    pretrained_classes: bool = False  # a conditional run needs `class_embeddings` (no random class tables)


@dataclass(frozen=True)
class GeneratorSettings:
    """The registered generator, its preset and the changes to it."""

    model: str = "poly-inr"  # registered generator
    preset: str = "cpu"  # the generator's preset (its size), paired with the recipe
    model_overrides: dict[str, Any] = field(default_factory=dict)  # generator config fields over the preset
    # Learn the native frame's input coordinates with G (the Poly-INR authors' gridt), restarting from the uniform
    # grid at every stage's resolution; models without an input grid refuse it, and a recipe's applies to the
    # models that have one.
    learn_grid: bool = False


@dataclass(frozen=True)
class DiscriminatorSettings:
    disc: str = "residual"  # registered discriminator
    disc_options: dict[str, Any] = field(default_factory=dict)  # settings of `disc` (fields of its config)


@dataclass(frozen=True)
class LossSettings:
    loss: str = "nonsaturating"  # registered loss (training/losses.py)
    loss_options: dict[str, Any] = field(default_factory=dict)  # settings of `loss` (fields of its config)


@dataclass(frozen=True)
class AugmentSettings:
    """StyleGAN2-ADA's augmentation of D's inputs, with any loss."""

    aug: str = "noaug"  # 'noaug', 'ada' or 'fixed'
    aug_p: float = 0.0  # augmentation probability at the start ('ada') or throughout ('fixed')
    ada_target: float = 0.6  # ADA's target for E[sign D(real)]
    ada_kimg: float = 500.0  # ADA's speed: p can move by 1 in this many kimg
    augpipe: str = "bgc"  # transforms: bgc (blit, geometric, colour), bg or c


@dataclass(frozen=True)
class OptimizerSettings:
    """Adam's nominal learning rates and the lazy-regularisation intervals they are scaled for."""

    glr: float = 0.0025  # generator learning rate (nominal: before any lazy-regularisation scaling)
    dlr: float = 0.0025  # discriminator learning rate (nominal)
    # Lazy-regularisation intervals Adam's lr and β2 are scaled for (lr·i/(i+1), β2^(i/(i+1))) even when the loss
    # has no regularisation phase, as the StyleGAN-XL / Poly-INR code does with its hinge loss (G 4, D 16);
    # None = only for the loss's own regularisation phases (e.g. R1 every 16 D steps).
    g_reg_interval: int | None = None
    d_reg_interval: int | None = None


@dataclass(frozen=True)
class EmaSettings:
    # G EMA half-life in kimg; None = batch·10/32 (resolved when the options are split, so the EMA gets a number).
    ema_kimg: float | None = None
    ema_rampup: float | None = 0.05  # StyleGAN's EMA ramp-up; None = off


@dataclass(frozen=True)
class DeviceSettings:
    device: str = "auto"  # cpu, cuda, cuda:N or auto
    bf16: bool = False  # bf16 autocast of G and D (CUDA)
    tf32: bool = False  # TF32 matmuls and convolutions on CUDA (off: fp32 stays fp32, as the authors trained)
    compile: bool = False  # torch.compile G's synthesis and D (CUDA; the first steps are slow)


@dataclass(frozen=True)
class RunSettings:
    """The run itself: where it goes, its seed, its batch, its ticks, snapshots and metrics."""

    outdir: str = "runs"  # run directories <outdir>/NNNNN-<desc>/ go here
    desc: str | None = None  # extra words for the run directory name
    seed: int = 0  # everything random derives from it
    batch: int = 32  # total batch over all processes and micro-batches
    batch_gpu: int | None = None  # micro-batch per process; None = batch / processes
    tick_kimg: float = 4.0  # progress report every this many kimg
    snap_ticks: int = 10  # snapshot every this many ticks
    keep_snapshots: int = 3  # keep the newest K snapshots
    metrics: tuple[str, ...] = ()  # metrics computed at each snapshot


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
