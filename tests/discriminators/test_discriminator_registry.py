"""Discriminators register like generators: a decorated class is listed, built by name, offered by --disc."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from click.testing import CliRunner

from polyinr.discriminators import DISCRIMINATORS, Discriminator, create_discriminator, list_discriminators
from polyinr.discriminators.registry import register_discriminator
from polyinr.errors import PolyinrError, UnusedSetting


@dataclass(frozen=True)
class _MeanConfig:
    img_resolution: int = 8
    num_classes: int = 0
    scale: float = 1.0  # the only setting


def test_a_registered_discriminator_is_listed_and_built_by_name(monkeypatch):
    monkeypatch.setattr(DISCRIMINATORS, "_entries", dict(DISCRIMINATORS))

    @register_discriminator("mean", _MeanConfig)
    class MeanDiscriminator(Discriminator):
        def forward(self, images, labels=None):
            self.check_inputs(images, labels)
            return images.mean(dim=(1, 2, 3))[:, None] * self.cfg.scale

    assert list_discriminators() == ["mean", "projected", "residual"]
    D = create_discriminator("mean", 8, 0, scale=2.0)
    assert isinstance(D, MeanDiscriminator) and D.disc_name == "mean" and D.cfg.scale == 2.0
    assert torch.equal(D(torch.ones(2, 3, 8, 8)), torch.full((2, 1), 2.0))
    with pytest.raises(UnusedSetting, match="the mean discriminator does not use 'gamma'; its settings: scale"):
        create_discriminator("mean", 8, 0, gamma=1.0)
    with pytest.raises(PolyinrError, match="unknown discriminator 'nope'; discriminators: mean, projected"):
        create_discriminator("nope", 8, 0)


def test_disc_choices_come_from_the_registry():
    from polyinr.cli import main

    result = CliRunner().invoke(main, ["train", "--help"])
    assert result.exit_code == 0
    help_text = " ".join(result.output.split())
    assert f"--disc [{'|'.join(list_discriminators())}]" in help_text
