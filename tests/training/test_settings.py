"""Each part of training gets only what it uses: the options split into typed parts, each builder takes its own."""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing

import pytest

from polyinr.training import loop, setup, stages
from polyinr.training.options import TrainingOptions, resolve_options
from polyinr.training.settings import TrainingSettings

# Each builder and the settings parts it takes (by their types), and nothing more of the options.
BUILDERS = {
    setup.open_training_data: {"DataSettings"},
    setup.open_run_data: {"DataSettings", "ScheduleSettings"},
    setup.load_class_table: {"ClassTableSettings"},
    setup.check_guidance: {"LossSettings"},
    setup.check_stage_data: {"DataSettings"},
    setup.check_training_grids: {"GeneratorSettings"},
    setup.stage_data: {"DataSettings"},
    setup.generator_settings: {"GeneratorSettings"},
    setup.build_discriminator: {"DiscriminatorSettings"},
    setup.build_augment: {"AugmentSettings"},
    setup.build_loss: {"LossSettings", "AugmentSettings"},
    setup.optimizer_settings: {"OptimizerSettings", "LossSettings"},
    setup.stage_end_rule: {"ScheduleSettings"},
    loop._start_process: {"DeviceSettings", "RunSettings"},
    loop._stage_batches: {"RunSettings"},
}
PARTS = {hint.__name__ for hint in typing.get_type_hints(TrainingSettings).values()}
WHOLE = {"TrainingOptions", "TrainingSettings"}


def _settings_parameters(function) -> set[str]:
    """The names of the settings types among ``function``'s parameter annotations (strings: postponed)."""
    words = {w for p in inspect.signature(function).parameters.values() for w in re.findall(r"\w+", str(p.annotation))}
    return words & (PARTS | WHOLE)


def test_every_option_is_declared_once_in_exactly_one_part():
    # The options are the union of the parts; two parts declaring one name would silently merge into one option.
    parts = [dataclasses.fields(part) for part in typing.get_type_hints(TrainingSettings).values()]
    names = [f.name for fields in parts for f in fields]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(f.name for f in dataclasses.fields(TrainingOptions))
    assert inspect.get_annotations(TrainingOptions) == {}  # nothing declared on the options themselves


def test_options_are_immutable_once_resolved():
    options = resolve_options("cpu", kimg=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.kimg = 4  # type: ignore[misc]
    assert dataclasses.replace(options, kimg=4).kimg == 4


def test_split_keeps_every_value():
    options = resolve_options("stylegan3", preset="ffhq", schedule="16:1,32:1", seed=7)
    settings = options.split()
    for name, part in vars(settings).items():
        for f in dataclasses.fields(part):
            expected = options.resolved_ema_kimg() if f.name == "ema_kimg" else getattr(options, f.name)
            assert getattr(part, f.name) == expected, (name, f.name)


def test_each_builder_takes_its_own_settings_not_the_options():
    assert {f.__name__: _settings_parameters(f) for f in BUILDERS} == {f.__name__: p for f, p in BUILDERS.items()}


def test_only_the_loop_and_the_dry_run_see_all_the_options():
    seen = {
        f"{module.__name__}.{name}"
        for module in (setup, stages, loop)
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if function.__module__ == module.__name__ and _settings_parameters(function) & WHOLE
    }
    assert seen == {
        "polyinr.training.setup.resolved_run",
        "polyinr.training.loop.training_loop",
        "polyinr.training.loop._train",
    }
