"""The stylegan2 recipe: NVIDIA's --cfg=stylegan2 settings, StyleGAN2Loss's path length regularisation and style
mixing, and one short run through the one training loop."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

import polyinr
from polyinr.checkpoint import STATE_WEIGHTS, latest_snapshot
from polyinr.training.loop import training_loop
from polyinr.training.losses import NonSaturatingConfig, NonSaturatingLoss
from polyinr.training.options import resolve_options
from polyinr.training.path_length import PathLengthPenalty
from polyinr.training.setup import optimizer_settings


def test_stylegan2_recipe_holds_nvidias_settings():
    options = resolve_options("stylegan2", model="stylegan2", preset="paper-256")
    assert (options.model, options.loss, options.disc, options.batch, options.aug) == (
        "stylegan2",
        "nonsaturating",
        "residual",
        32,
        "ada",
    )
    assert options.loss_options == {"gamma": None, "pl_weight": 2.0, "style_mixing": 0.9}
    assert options.disc_options == {"channel_base": 32768, "channel_max": 512, "mbstd_group": 4}
    settings = options.split()  # G 0.002 with G_reg_interval 4, D 0.002 with R1 every 16
    adam = optimizer_settings(settings.optimizer, settings.loss)
    assert adam["G"]["lr"] == pytest.approx(0.002 * 4 / 5) and adam["G"]["betas"][1] == pytest.approx(0.99**0.8)
    assert adam["D"]["lr"] == pytest.approx(0.002 * 16 / 17)


def tiny_generator() -> polyinr.Generator:
    torch.manual_seed(0)
    return polyinr.create("stylegan2", "cpu", img_resolution=8, channel_max=8).train()


def test_path_length_regularisation_every_4_g_steps_on_half_the_batch():
    G = tiny_generator()
    loss = NonSaturatingLoss(G, None, NonSaturatingConfig(pl_weight=2.0))
    assert [(p.name, p.interval) for p in loss.phases()] == [("Gmain", 1), ("Greg", 4), ("Dmain", 1), ("Dreg", 16)]
    assert [p.name for p in NonSaturatingLoss(G, None).phases()] == ["Gboth", "Dmain", "Dreg"]
    rendered = []
    hook = G.synthesis.register_forward_hook(lambda module, args, out: rendered.append(out.shape[0]))
    reals = torch.zeros(6, 3, 8, 8)  # only their resolution is read
    loss.accumulate_gradients("Greg", reals, None, torch.randn(6, G.z_dim), None, gain=4.0, cur_nimg=0)
    hook.remove()
    assert rendered == [3]  # pl_batch_shrink 2
    assert float(loss.path_length.pl_mean) > 0 and "path_length" in loss.state_modules()
    assert all(p.grad is not None for p in G.mapping.parameters())  # the penalty reaches the mapping too


def test_path_length_penalty_is_their_formula():
    ws = torch.randn(4, 3, 5, requires_grad=True)
    weight = torch.randn(5, 2 * 6 * 6)
    images = (ws.sum(dim=1) @ weight).view(4, 2, 6, 6)  # linear: J_w^T y has a closed form
    penalty = PathLengthPenalty(decay=0.5)
    torch.manual_seed(7)
    got = penalty(images, ws)
    torch.manual_seed(7)
    noise = torch.randn_like(images) / math.sqrt(36)
    grads = (noise.view(4, -1) @ weight.t()).unsqueeze(1).expand(4, 3, 5)  # the same for each of the 3 ws
    lengths = grads.square().sum(dim=2).mean(dim=1).sqrt()
    mean = 0.5 * lengths.mean()  # from a running mean of 0
    assert torch.allclose(got, (lengths - mean).square()) and torch.allclose(penalty.pl_mean, mean)


def test_style_mixing_takes_the_ws_after_a_cut_from_another_latent():
    G = tiny_generator().eval()
    z = torch.randn(2, G.z_dim)
    plain = G.mapping(z)
    always = NonSaturatingLoss(G, None, NonSaturatingConfig(style_mixing=1.0))
    torch.manual_seed(3)
    mixed = always.run_mapping(z, None)
    differs = (mixed != plain).any(dim=2).any(dim=0)  # [num_ws]: which ws were replaced
    cut = int(differs.int().argmax())
    assert 1 <= cut < G.num_ws and not differs[:cut].any() and differs[cut:].all()
    assert torch.equal(NonSaturatingLoss(G, None).run_mapping(z, None), plain)


def test_stylegan2_recipe_trains_through_the_loop(tmp_path):
    options = resolve_options(
        "stylegan2",
        model="stylegan2",
        preset="paper-256",
        data="builtin:digits",
        resolution=8,
        batch=4,
        kimg=0.016,
        tick_kimg=0.008,
        snap_ticks=1,
        workers=0,
        device="cpu",
        seed=1,
        outdir=str(tmp_path),
        model_overrides={
            "channel_base": 64,
            "channel_max": 8,
            "mapping.z_dim": 8,
            "mapping.w_dim": 8,
            "mapping.num_layers": 2,
        },
        disc_options={"channel_base": 64, "channel_max": 8},
    )
    run_dir = training_loop(options)
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert "Loss/pl_penalty" in stats[0] and "Loss/r1_penalty" in stats[0]  # both lazy phases run at step 0
    state = load_file(str(latest_snapshot(run_dir) / STATE_WEIGHTS))
    assert "path_length/pl_mean" in state and float(state["path_length/pl_mean"]) > 0
    G = polyinr.load(latest_snapshot(run_dir))
    assert G.model_name == "stylegan2" and G.img_resolution == 8


def test_stylegan2_joins_the_comparison_with_its_own_recipe():
    from polyinr.tools.compare import CompareSettings, check_settings, model_preset, native_recipe

    settings = check_settings(CompareSettings(data="builtin:digits", models=("stylegan2", "stylegan3-t")))
    assert settings.models == ("stylegan2", "stylegan3-t")
    assert model_preset("stylegan2", "paper", 512) == "paper-512" and model_preset("stylegan2", "cpu", None) == "cpu"
    assert native_recipe("stylegan2", "paper-256") == "stylegan2" and native_recipe("stylegan2", "cpu") == "cpu"
