"""The stylegan3 / stylegan3-r recipes: NVIDIA's settings, the batch-scaled ones, R1's gamma by resolution, and
one short run through the one training loop (ADA on, D-input blur for R)."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

import polyinr
from polyinr.checkpoint import STATE_WEIGHTS, latest_snapshot
from polyinr.training.loop import training_loop
from polyinr.training.losses import NonSaturatingConfig, NonSaturatingLoss
from polyinr.training.options import resolve_options
from polyinr.training.setup import optimizer_settings


def test_stylegan3_recipes_hold_nvidias_settings():
    t = resolve_options("stylegan3", preset="ffhq")
    assert (t.loss, t.disc, t.glr, t.dlr, t.batch, t.aug, t.ada_target, t.ada_kimg) == (
        "nonsaturating",
        "residual",
        0.0025,
        0.002,
        32,
        "ada",
        0.6,
        500.0,
    )
    assert t.disc_options == {"channel_base": 32768, "channel_max": 512, "mbstd_group": 4}
    assert t.loss_options == {"gamma": None}
    assert t.resolved_ema_kimg() == 10.0 and t.ema_rampup == 0.05
    r = resolve_options("stylegan3-r", preset="ffhq", batch=64)
    assert r.loss_options == {"gamma": None, "blur_sigma": 10.0, "blur_fade_kimg": 400.0}  # batch·200/32
    assert (
        resolve_options("stylegan3-r", preset="ffhq", loss_options={"blur_fade_kimg": 50.0}).loss_options[
            "blur_fade_kimg"
        ]
        == 50.0
    )
    # A recipe's model settings apply to generators that have the field: Poly-INR has no magnitude EMA.
    assert "magnitude_ema_beta" not in t.model_overrides


def test_r1_gamma_follows_the_resolution_unless_given():
    loss = NonSaturatingLoss(None, None, NonSaturatingConfig(gamma=None))
    assert [loss.gamma_at(r) for r in (128, 256, 512, 1024)] == [0.5, 2.0, 8.0, 32.0]
    assert NonSaturatingLoss(None, None, NonSaturatingConfig(gamma=3.0)).gamma_at(1024) == 3.0
    assert [p.name for p in loss.phases()] == ["Gboth", "Dmain", "Dreg"]


def test_lazy_regularisation_scales_d_only():
    settings = resolve_options("stylegan3", preset="ffhq", loss_options={"gamma": None}).split()
    adam = optimizer_settings(settings.optimizer, settings.loss)
    assert adam["G"]["lr"] == 0.0025 and adam["G"]["betas"] == [0.0, 0.99]
    assert adam["D"]["lr"] == pytest.approx(0.002 * 16 / 17)
    assert adam["D"]["betas"][1] == pytest.approx(0.99 ** (16 / 17))


def test_stylegan3_r_recipe_trains_through_the_loop(tmp_path):
    options = resolve_options(
        "stylegan3-r",
        preset="ffhq",
        data="builtin:digits",
        resolution=8,
        batch=8,
        kimg=0.032,
        tick_kimg=0.016,
        snap_ticks=1,
        workers=0,
        device="cpu",
        seed=1,
        outdir=str(tmp_path),
        model_overrides={"channels": 8, "num_levels": 3, "mapping.z_dim": 16, "mapping.w_dim": 16},
        disc_options={"channel_base": 64, "channel_max": 16},
    )
    run_dir = training_loop(options)
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert all("Progress/augment" in s and "Loss/signs/real" in s for s in stats)
    assert "Loss/r1_penalty" in stats[0]  # lazy R1 at step 0 (then every 16 steps)
    state = load_file(str(latest_snapshot(run_dir) / STATE_WEIGHTS))
    assert {"augment/p", "augment/real_signs"} <= set(state)


def test_stylegan_xl_recipe_pairs_with_the_grown_model():
    options = resolve_options("stylegan-xl", model="stylegan-xl")
    assert options.preset == "imagenet" and options.loss == "hinge" and options.disc == "projected"
    settings = options.split()  # XL's nominal 0.0025 / 0.002, scaled for the intervals G 4, D 16
    adam = optimizer_settings(settings.optimizer, settings.loss)
    assert adam["G"]["lr"] == pytest.approx(0.002) and adam["D"]["lr"] == pytest.approx(0.002 * 16 / 17)
    assert adam["G"]["betas"][1] == pytest.approx(0.99**0.8) and options.batch_gpu == 8
    assert options.schedule.startswith("16:") and options.loss_options["blur_sigma"] == 2.0


def test_stylegan3_recipe_trains_stylegan3_t_with_the_batch_scaled_magnitude_ema(tmp_path):
    options = resolve_options(
        "stylegan3",
        model="stylegan3-t",
        preset="paper-256",
        data="builtin:digits",
        resolution=16,
        batch=8,
        kimg=0.016,
        tick_kimg=0.016,
        workers=0,
        device="cpu",
        seed=1,
        outdir=str(tmp_path),
        model_overrides={
            "channel_base": 256,
            "channel_max": 16,
            "num_layers": 4,
            "mapping.z_dim": 16,
            "mapping.w_dim": 16,
        },
        disc_options={"channel_base": 64, "channel_max": 16},
    )
    assert options.model_overrides["magnitude_ema_beta"] == 0.5 ** (8 / 20000)
    G = polyinr.load(latest_snapshot(training_loop(options)))
    assert G.model_name == "stylegan3-t" and G.cfg.magnitude_ema_beta == 0.5 ** (8 / 20000)
    assert any(float(layer.magnitude_ema) != 1.0 for layer in G.synthesis.layers())  # updated while training
