"""Training options: one dataclass, named presets, and resolution of command-line overrides.

A preset names both the generator preset (``models/registry.py``) and the training recipe. ``imagenet`` is
the Poly-INR authors' recipe (StyleGAN-XL's: projected discriminator with two frozen backbones, DiffAugment,
hinge loss, blur 2 over 300 kimg, Adam (0, 0.99), lr_G 1e-4, lr_D 2e-4, batch 64, EMA ``batch·10/32`` kimg,
grids 32 → 64 → 128 → 256 → 512, classifier guidance off). ``cpu`` trains in minutes on two cores.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from polyinr.discriminators.projected import AUTHORS_BACKBONES
from polyinr.errors import PolyinrError
from polyinr.training.schedule import parse_schedule


@dataclass
class TrainingOptions:
    # Data and run directory.
    data: str = "builtin:digits"  # image folder, dataset zip or builtin:NAME
    outdir: str = "runs"  # run directories <outdir>/NNNNN-<desc>/ go here
    desc: str | None = None  # extra words for the run directory name
    cond: bool = False  # class-conditional on the dataset's labels
    mirror: bool = False  # add x-flipped copies of the images
    # Networks.
    model: str = "poly-inr"  # registered generator
    preset: str = "cpu"  # preset of the generator and of this recipe
    model_overrides: dict[str, Any] = field(default_factory=dict)  # generator config fields
    disc: str = "residual"  # 'residual' (StyleGAN2) or 'projected' (StyleGAN-XL)
    disc_options: dict[str, Any] = field(default_factory=dict)  # passed to create_discriminator
    class_embeddings: str | None = None  # safetensors table to start G's and D's class tables from
    # Loss.
    loss: str = "nonsaturating"  # 'nonsaturating' (+ R1) or 'hinge' (projected recipe)
    gamma: float = 1.0  # R1 weight (nonsaturating loss); 0 = off
    blur_sigma: float = 0.0  # initial sigma of the D-input blur; 0 = off
    blur_fade_kimg: float = 300.0  # kimg over which the blur fades out
    cls_weight: float = 0.0  # classifier guidance weight; 0 = off (nothing is downloaded)
    # Augmentation of D's inputs (StyleGAN2-ADA's pipeline): 'noaug', 'ada' (adaptive p) or 'fixed' (p = aug_p).
    aug: str = "noaug"
    aug_p: float = 0.0  # augmentation probability at the start ('ada') or throughout ('fixed')
    ada_target: float = 0.6  # ADA's target for E[sign D(real)]
    ada_kimg: float = 500.0  # ADA's speed: p can move by 1 in this many kimg
    augpipe: str = "bgc"  # transforms: bgc (blit, geometric, colour), bg or c
    # Optimisation.
    batch: int = 32  # total batch over all processes and micro-batches
    batch_gpu: int | None = None  # micro-batch per process; None = batch / processes
    glr: float = 0.0025  # generator learning rate
    dlr: float = 0.0025  # discriminator learning rate
    ema_kimg: float | None = None  # G EMA half-life in kimg; None = batch·10/32
    ema_rampup: float | None = 0.05  # StyleGAN's EMA ramp-up; None = off
    # Duration: a schedule of (resolution, kimg) stages; a single stage when no schedule is given.
    schedule: str | None = None  # '32:2000,64:1000'; None = kimg at the data's resolution
    kimg: float = 200.0  # duration when no schedule is given
    resolution: int | None = None  # training resolution when no schedule is given; None = the data's
    # Bookkeeping.
    tick_kimg: float = 4.0  # progress report every this many kimg
    snap_ticks: int = 10  # snapshot every this many ticks
    keep_snapshots: int = 3  # keep the newest K snapshots
    metrics: tuple[str, ...] = ()  # metrics computed at each snapshot
    seed: int = 0  # everything random derives from it
    workers: int = 2  # DataLoader worker processes (0 = load in the main process)
    device: str = "auto"  # cpu, cuda, cuda:N or auto
    bf16: bool = False  # bf16 autocast of G and D (CUDA)
    tf32: bool = False  # TF32 matmuls and convolutions on CUDA (off: fp32 stays fp32, as the authors trained)
    compile: bool = False  # torch.compile G's synthesis and D (CUDA; the first steps are slow)

    def stages(self, data_resolution: int) -> list[tuple[int, float]]:
        """The (resolution, kimg) stages this run trains."""
        if self.schedule is not None:
            return parse_schedule(self.schedule)
        return [(self.resolution or data_resolution, self.kimg)]

    def resolved_ema_kimg(self) -> float:
        return self.batch * 10 / 32 if self.ema_kimg is None else self.ema_kimg

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["metrics"] = list(self.metrics)
        return values


TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    # The Poly-INR authors' ImageNet recipe. Stage lengths after the 32² stem are not published; these are ours.
    "imagenet": dict(
        preset="imagenet", disc="projected", loss="hinge", glr=1e-4, dlr=2e-4, batch=64, blur_sigma=2.0,
        blur_fade_kimg=300.0, cls_weight=0.0, mirror=True, gamma=0.0,
        disc_options={"backbones": list(AUTHORS_BACKBONES), "diffaug": "color,translation,cutout"},
        schedule="32:10000,64:5000,128:5000,256:2500,512:2500", tick_kimg=4.0, snap_ticks=50,
    ),
    # FFHQ width (n 512), unconditional, same recipe.
    "ffhq": dict(
        preset="ffhq", disc="projected", loss="hinge", glr=1e-4, dlr=2e-4, batch=64, blur_sigma=2.0,
        blur_fade_kimg=300.0, mirror=True, gamma=0.0,
        disc_options={"backbones": list(AUTHORS_BACKBONES), "diffaug": "color,translation,cutout"},
        schedule="32:10000,64:5000,128:5000,256:5000", tick_kimg=4.0, snap_ticks=50,
    ),
    # Minutes on two CPU cores: the small generator, StyleGAN2's residual discriminator with R1.
    "cpu": dict(
        preset="cpu", disc="residual", loss="nonsaturating", glr=0.0025, dlr=0.0025, batch=32, gamma=0.1,
        kimg=40.0, tick_kimg=4.0, snap_ticks=5,
        disc_options={"channel_base": 1024, "channel_max": 64},
    ),
}  # fmt: skip

# With `--disc projected` on the CPU preset: one small backbone, randomly initialised unless weights exist.
CPU_PROJECTED = {"backbones": ["tf_efficientnet_lite0"], "diffaug": "color,translation,cutout", "interp224": False}


def resolve_options(preset: str, **overrides: Any) -> TrainingOptions:
    """Defaults, then the preset's recipe, then every non-None override."""
    if preset not in TRAIN_PRESETS:
        raise PolyinrError(f"unknown preset {preset!r}; presets: {', '.join(sorted(TRAIN_PRESETS))}")
    values = dict(TRAIN_PRESETS[preset])
    if overrides.get("disc") == "projected" and values.get("disc") != "projected":
        values.update(loss="hinge", gamma=0.0, disc_options=dict(CPU_PROJECTED))
    if overrides.get("kimg") is not None and overrides.get("schedule") is None:
        values.pop("schedule", None)  # an explicit --kimg replaces the preset's schedule
    fields = {f.name for f in dataclasses.fields(TrainingOptions)}
    for key, value in overrides.items():
        if key not in fields:
            raise PolyinrError(f"unknown training option {key!r}")
        if value is not None:
            values[key] = value
    options = TrainingOptions(**values)
    validate(options)
    return options


def validate(options: TrainingOptions) -> None:
    """One-line errors for inconsistent options, before anything is built."""
    if options.batch <= 0:
        raise PolyinrError(f"--batch must be positive, got {options.batch}")
    if options.batch_gpu is not None and (options.batch_gpu <= 0 or options.batch % options.batch_gpu):
        raise PolyinrError(f"--batch {options.batch} must be a multiple of --batch-gpu {options.batch_gpu}")
    if options.schedule is not None:
        parse_schedule(options.schedule)
    elif not options.kimg > 0:
        raise PolyinrError(f"--kimg must be positive, got {options.kimg}")
    if options.loss not in ("nonsaturating", "hinge"):
        raise PolyinrError(f"unknown loss {options.loss!r}; use nonsaturating or hinge")
    if options.tick_kimg <= 0 or options.snap_ticks <= 0 or options.keep_snapshots <= 0:
        raise PolyinrError("--tick, --snap and --keep must be positive")
    if (options.bf16 or options.tf32 or options.compile) and options.device == "cpu":
        raise PolyinrError("--bf16, --tf32 and --compile are CUDA speed-ups; drop them with --device cpu")
    if options.aug not in ("noaug", "ada", "fixed"):
        raise PolyinrError(f"unknown augmentation {options.aug!r}; use noaug, ada or fixed")
    from polyinr.discriminators.ada import PIPELINES

    if options.augpipe not in PIPELINES:
        raise PolyinrError(f"unknown augmentation pipeline {options.augpipe!r}; pipelines: {', '.join(PIPELINES)}")
    if not options.aug_p >= 0 or not options.ada_kimg > 0 or not -1 <= options.ada_target <= 1:
        raise PolyinrError("--p must be ≥ 0, the ADA target in [-1, 1] and ada_kimg > 0")
    if options.cls_weight > 0 and not options.cond:
        raise PolyinrError("classifier guidance (--cls-weight) needs class labels: add --cond")
