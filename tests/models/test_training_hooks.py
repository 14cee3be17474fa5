"""The training hooks live outside the generator contract: every registered generator mixes them in, and the
general Generator class does not carry them."""

from __future__ import annotations

from polyinr.models.generator import Generator
from polyinr.models.registry import get_entry, list_models
from polyinr.models.training_hooks import TrainableGenerator

HOOKS = ("trainable_parameters", "stage_settings", "learned_grid_settings", "next_stage")


def test_every_registered_generator_has_the_training_hooks():
    assert [m for m in list_models() if not issubclass(get_entry(m).generator_cls, TrainableGenerator)] == []


def test_the_generator_contract_has_no_training_hooks():
    assert [hook for hook in HOOKS if hasattr(Generator, hook)] == []
