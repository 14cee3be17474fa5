"""Training recipes apart from model presets: pairing by size, registries, and options that must be used."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from polyinr.cli import main
from polyinr.discriminators import list_discriminators
from polyinr.errors import PolyinrError, UnusedSetting
from polyinr.training.losses import LOSSES
from polyinr.training.options import resolve_options
from polyinr.training.recipes import RECIPES, pair_recipe_and_preset


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_recipe_resolves_with_every_loss_and_discriminator(recipe):
    assert set(RECIPES[recipe].losses) <= set(LOSSES) and set(RECIPES[recipe].discs) <= set(list_discriminators())
    chosen = RECIPES[recipe]
    own_model = "model" in chosen.options  # a recipe for one model (infinitygan) pairs with that model's preset
    preset = None if chosen.size == "cpu" or recipe in ("imagenet", "ffhq") or own_model else "ffhq"  # poly-inr's
    if recipe == "stylegan-xl":
        preset = "imagenet"
    for loss in LOSSES:
        for disc in list_discriminators():
            options = resolve_options(recipe, preset=preset, loss=loss, disc=disc)
            scaled = chosen.batch_scaled(options.batch).get("losses", {}) if chosen.batch_scaled else {}
            expected = {**chosen.losses.get(loss, {}), **scaled.get(loss, {})}
            assert options.loss_options == expected  # never another loss's settings
            assert options.disc_options == chosen.discs.get(disc, {})


@pytest.fixture
def toy_models(monkeypatch):
    """poly-inr as registered, plus 'toy' (presets cpu, paper-256) and 'wide' (cpu, paper-256, paper-512)."""
    from polyinr.models import registry

    real = registry.get_entry
    presets = {"toy": ["cpu", "paper-256"], "wide": ["cpu", "paper-256", "paper-512"]}
    monkeypatch.setattr(
        registry,
        "get_entry",
        lambda name: SimpleNamespace(presets=dict.fromkeys(presets[name])) if name in presets else real(name),
    )


def test_a_recipe_pairs_with_the_models_preset_of_its_size(toy_models):
    assert pair_recipe_and_preset("poly-inr", None, None) == ("cpu", "cpu")
    assert pair_recipe_and_preset("poly-inr", "ffhq", None) == ("ffhq", "ffhq")  # the preset of the recipe's name
    assert pair_recipe_and_preset("poly-inr", None, "ffhq") == ("ffhq", "ffhq")  # the recipe of the preset's name
    assert pair_recipe_and_preset("poly-inr", "imagenet", "ffhq") == ("imagenet", "ffhq")  # both paper-sized
    assert pair_recipe_and_preset("toy", "imagenet", None) == ("imagenet", "paper-256")  # its only paper preset
    assert pair_recipe_and_preset("toy", None, "cpu") == ("cpu", "cpu")
    assert pair_recipe_and_preset("wide", "ffhq", "paper-512") == ("ffhq", "paper-512")
    errors = [
        (
            ("poly-inr", "imagenet", "cpu"),
            "the imagenet recipe trains paper-sized models, but the cpu preset of "
            "poly-inr is cpu-sized; paper-sized presets of poly-inr: ffhq, imagenet",
        ),
        (
            ("wide", "imagenet", None),
            r"wide has several paper-sized presets for the imagenet recipe \(paper-256, "
            r"paper-512\): choose one",
        ),
        (("toy", None, "paper-256"), "no training recipe is named 'paper-256'"),
        (("toy", "cpu", "paper-9"), "unknown preset 'paper-9' for toy; presets: cpu, paper-256"),
    ]
    for args, message in errors:
        with pytest.raises(PolyinrError, match=message) as info:
            pair_recipe_and_preset(*args)
        assert "\n" not in str(info.value)


def test_unused_settings_are_refused_in_the_librarys_words():
    with pytest.raises(UnusedSetting, match="the hinge loss does not use 'gamma'") as info:
        resolve_options("imagenet", loss_options={"gamma": 1.0})
    assert "--" not in str(info.value)
    with pytest.raises(UnusedSetting, match="the residual discriminator does not use 'backbones'"):
        resolve_options("cpu", disc_options={"backbones": ["a"]})


def _train(*args: str):
    return CliRunner().invoke(main, ["train", *args, "--dry-run"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cls-weight", "1"], "--cls-weight does not apply to the nonsaturating loss; it applies with --loss hinge"),
        (
            ["--recipe", "imagenet", "--gamma", "10"],
            "--gamma does not apply to the hinge loss; it applies with --loss infinitygan or --loss nonsaturating",
        ),
        (
            ["--backbones", "tf_efficientnet_lite0"],
            "--backbones does not apply to the residual discriminator; it applies with --disc projected",
        ),
        (
            ["--recipe", "imagenet", "--diversity-weight", "1"],
            "--diversity-weight does not apply to the hinge loss; it applies with --loss infinitygan or --loss "
            "nonsaturating",
        ),
        (["--recipe", "imagenet", "--cls-weight", "1"], "classifier guidance needs class labels"),
        (["--recipe", "imagenet", "--preset", "cpu"], "the imagenet recipe trains paper-sized models"),
    ],
)
def test_an_option_the_run_does_not_use_is_a_one_line_error(args, message):
    result = _train(*args)
    assert result.exit_code == 1, result.output
    assert result.output.strip() == f"Error: {message}" or result.output.startswith(f"Error: {message}")
    assert result.output.count("\n") == 1


def test_guidance_is_refused_without_a_super_resolution_stage(tmp_path):
    from polyinr.training.loop import training_loop

    options = resolve_options(
        "cpu",
        loss="hinge",
        disc="projected",
        cond=True,
        resolution=16,
        kimg=0.01,
        loss_options={"cls_weight": 1.0},
        outdir=str(tmp_path),
        device="cpu",
    )
    with pytest.raises(PolyinrError, match=r"guidance applies in super-resolution stages .* one stage"):
        training_loop(options)
    assert not list(tmp_path.iterdir())  # refused before a run directory exists


def test_another_discriminator_takes_the_recipes_settings_for_it_and_keeps_the_loss():
    result = _train("--disc", "projected", "--features-pretrained", "false")
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.output)
    training = resolved["training"]
    assert training["disc_options"] == {**RECIPES["cpu"].discs["projected"], "pretrained": False}
    assert training["loss"] == "nonsaturating" and training["loss_options"] == {
        "gamma": 0.1,
        "diversity_weight": 0.85,
    }  # nothing replaced
    assert resolved["discriminator"]["config"]["backbones"] == ["tf_efficientnet_lite0"]
    assert resolved["generator"]["config"]["channels"] == 64  # the cpu preset, every field shown


def test_list_shows_the_recipes():
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0
    for name, recipe in RECIPES.items():
        assert f"  {name}  ({recipe.size}-sized, {recipe.loss} loss, {recipe.disc} D)" in result.output


def test_one_stage_options_replace_the_recipes_schedule_and_never_mix_with_one():
    assert resolve_options("imagenet", resolution=64).stages(32) == [(64, 200.0)]
    assert resolve_options("imagenet", kimg=5).stages(32) == [(32, 5.0)]
    for extra in ({"kimg": 5}, {"resolution": 16}):
        with pytest.raises(PolyinrError, match=f"a schedule sets every stage's .* separate {next(iter(extra))}"):
            resolve_options("cpu", schedule="8:1,16:1", **extra)
