"""Training options: one dataclass, resolved from a training recipe, a model preset and explicit overrides.

:class:`TrainingOptions` is what the command line resolves and a run directory keeps (``training_options.json``).
Its options are declared, with their defaults, in the parts each builder takes (``training/settings.py``); the
loop cuts it back into them (:meth:`TrainingOptions.split`).

The recipe (``training/recipes.py``) says how to train, the model preset (beside each model) how big the
generator is; :func:`resolve_options` pairs them (:func:`~polyinr.training.recipes.pair_recipe_and_preset`),
applies every explicit override, and refuses a setting that the chosen loss or discriminator does not use.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from polyinr.discriminators.ada import PIPELINES
from polyinr.discriminators.registry import check_discriminator_settings
from polyinr.errors import PolyinrError
from polyinr.training.losses import resolve_loss_config
from polyinr.training.plateau import PlateauRule
from polyinr.training.recipes import get_recipe, pair_recipe_and_preset
from polyinr.training.schedule import parse_schedule
from polyinr.training.settings import (
    AugmentSettings,
    ClassTableSettings,
    DataSettings,
    DeviceSettings,
    DiscriminatorSettings,
    EmaSettings,
    GeneratorSettings,
    LossSettings,
    OptimizerSettings,
    RunSettings,
    ScheduleSettings,
    TrainingSettings,
)


@dataclass(frozen=True)
class TrainingOptions(
    DataSettings,
    ScheduleSettings,
    ClassTableSettings,
    GeneratorSettings,
    DiscriminatorSettings,
    LossSettings,
    AugmentSettings,
    OptimizerSettings,
    EmaSettings,
    DeviceSettings,
    RunSettings,
):
    """Every training option, flat: the union of the parts of :class:`TrainingSettings`, where each option is
    declared once with its default (the parts share no name)."""

    def resolved_ema_kimg(self) -> float:
        return self.batch * 10 / 32 if self.ema_kimg is None else self.ema_kimg

    def split(self) -> TrainingSettings:
        """These options cut into the parts each builder takes (every option in exactly one, under its name;
        the EMA's half-life resolved from the batch)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["ema_kimg"] = self.resolved_ema_kimg()
        parts = typing.get_type_hints(TrainingSettings)
        return TrainingSettings(
            **{name: part(**{f.name: values[f.name] for f in dataclasses.fields(part)}) for name, part in parts.items()}
        )

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["metrics"] = list(self.metrics)
        return values


def resolve_options(
    recipe: str | None = None,
    *,
    preset: str | None = None,
    loss_options: dict[str, Any] | None = None,
    disc_options: dict[str, Any] | None = None,
    stage_plateau: PlateauRule | bool | None = None,
    **overrides: Any,
) -> TrainingOptions:
    """Defaults, then the recipe (paired with the model's ``preset``), then every non-None override.

    ``stage_plateau``: a rule ends the stages at a plateau by it, True by the recipe's rule (else the default
    one), False after their kimg; None as the recipe says, whose rule applies to a schedule of two or more stages
    with metrics at snapshots.

    ``loss_options`` / ``disc_options`` are settings of the chosen loss / discriminator over the recipe's own
    settings for them; one that the loss or discriminator does not have raises
    :class:`~polyinr.errors.UnusedSetting`.
    """
    fields = {f.name for f in dataclasses.fields(TrainingOptions)}
    for key in overrides:
        if key not in fields or key in ("recipe", "preset", "loss_options", "disc_options"):
            raise PolyinrError(f"unknown training option {key!r}")
    model = overrides.get("model") or (get_recipe(recipe).options.get("model") if recipe else None)
    model = model or TrainingOptions.model  # a recipe made for one model (infinitygan) names it
    recipe, preset = pair_recipe_and_preset(model, recipe, preset)
    chosen = get_recipe(recipe)
    values: dict[str, Any] = {**chosen.options, "recipe": recipe, "preset": preset}
    values.update(loss=chosen.loss, disc=chosen.disc)
    one_stage = [key for key in ("kimg", "resolution") if overrides.get(key) is not None]
    if one_stage and overrides.get("schedule") is not None:
        raise PolyinrError(
            f"a schedule sets every stage's resolution and duration; a separate {one_stage[0]} does not apply to it"
        )
    if one_stage:
        values.pop("schedule", None)  # an explicit duration or resolution replaces the recipe's schedule
    values.update({key: value for key, value in overrides.items() if value is not None})
    if values.get("learn_grid") and overrides.get("learn_grid") is None and not learns_grid(model):
        values["learn_grid"] = False  # the recipe's learned grid applies to the generators that have one
    recipe_rule = values.get("stage_plateau")
    if isinstance(stage_plateau, bool):
        values["stage_plateau"] = (recipe_rule or PlateauRule()) if stage_plateau else None
    elif stage_plateau is not None:
        values["stage_plateau"] = stage_plateau
    elif recipe_rule is not None and not (values.get("metrics") and _stage_count(values.get("schedule")) > 1):
        values["stage_plateau"] = None  # the recipe's rule applies to scheduled runs with metrics at snapshots
    given_loss = {k: v for k, v in (loss_options or {}).items() if v is not None}
    given_disc = {k: v for k, v in (disc_options or {}).items() if v is not None}
    scaled = chosen.batch_scaled(values["batch"]) if chosen.batch_scaled else {}
    values["loss_options"] = {
        **chosen.losses.get(values["loss"], {}),
        **scaled.get("losses", {}).get(values["loss"], {}),
        **given_loss,
    }
    recipe_model = {**chosen.model, **scaled.get("model", {})}
    if recipe_model:  # under the explicit overrides
        recipe_fields = _model_fields(model, preset, recipe_model)
        values["model_overrides"] = {**recipe_fields, **(values.get("model_overrides") or {})}
    values["disc_options"] = {**chosen.discs.get(values["disc"], {}), **given_disc}
    options = TrainingOptions(**values)
    validate(options)
    return options


def _stage_count(schedule: str | None) -> int:
    return len(parse_schedule(schedule)) if schedule is not None else 1


def learns_grid(model: str) -> bool:
    """Whether ``model``'s generator can learn its input grid (it has the capability)."""
    from polyinr.models.generator import CapabilityMissing
    from polyinr.models.registry import get_entry

    try:
        get_entry(model).generator_cls.learned_grid_settings()
    except CapabilityMissing:
        return False
    return True


def _model_fields(model: str, preset: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``settings`` that are fields of the ``model``'s config (a recipe's model settings apply to
    the generators that have them)."""
    from polyinr.models.registry import resolve_config

    config = resolve_config(model, preset)
    return {k: v for k, v in settings.items() if k in {f.name for f in dataclasses.fields(config)}}


def validate(options: TrainingOptions) -> None:
    """One-line errors for inconsistent options, before anything is built."""
    from polyinr.models.registry import get_entry

    if options.batch <= 0:
        raise PolyinrError(f"the batch size must be positive, got {options.batch}")
    if options.batch_gpu is not None and (options.batch_gpu <= 0 or options.batch % options.batch_gpu):
        raise PolyinrError(
            f"the batch size {options.batch} must be a multiple of the per-process batch {options.batch_gpu}"
        )
    if options.schedule is not None:
        parse_schedule(options.schedule)
    elif not options.kimg > 0:
        raise PolyinrError(f"the training duration must be positive, got {options.kimg} kimg")
    if options.stage_plateau is not None and _stage_count(options.schedule) < 2:
        raise PolyinrError("ending stages at a plateau needs a schedule of two or more stages (the last ends by kimg)")
    if options.stage_plateau is not None and not options.metrics:
        raise PolyinrError("ending stages at a plateau needs metrics at snapshots, the first of which ranks them")
    if options.tick_kimg <= 0 or options.snap_ticks <= 0 or options.keep_snapshots <= 0:
        raise PolyinrError("the tick length, snapshot interval and number of kept snapshots must be positive")
    for interval in (options.g_reg_interval, options.d_reg_interval):
        if interval is not None and interval < 1:
            raise PolyinrError(f"a lazy-regularisation interval must be ≥ 1, got {interval}")
    if options.workers < 0:
        raise PolyinrError(f"the number of data-loading workers must be ≥ 0, got {options.workers}")
    if (options.bf16 or options.tf32 or options.compile) and options.device == "cpu":
        raise PolyinrError("bf16, TF32 and torch.compile are CUDA speed-ups; this run is on the CPU")
    if options.aug not in ("noaug", "ada", "fixed"):
        raise PolyinrError(f"unknown augmentation {options.aug!r}; use noaug, ada or fixed")
    if options.augpipe not in PIPELINES:
        raise PolyinrError(f"unknown augmentation pipeline {options.augpipe!r}; pipelines: {', '.join(PIPELINES)}")
    if not options.aug_p >= 0 or not options.ada_kimg > 0 or not -1 <= options.ada_target <= 1:
        raise PolyinrError("the augmentation probability must be ≥ 0, the ADA target in [-1, 1] and ada_kimg > 0")
    if options.learn_grid:  # refused in one line by a model without an input grid
        get_entry(options.model).generator_cls.learned_grid_settings()
    loss = resolve_loss_config(options.loss, **options.loss_options)
    check_discriminator_settings(options.disc, options.disc_options)
    if getattr(loss, "cls_weight", 0) > 0 and not options.cond:
        raise PolyinrError("classifier guidance needs class labels: train class-conditional")
