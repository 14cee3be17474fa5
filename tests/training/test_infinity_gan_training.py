"""InfinityGAN training: the diversity loss, patches cut from the reals, the position head, one short run."""

from __future__ import annotations

import json
import math

import pytest
import torch

import polyinr
from polyinr.checkpoint import latest_snapshot
from polyinr.discriminators import create_discriminator
from polyinr.models.infinity_gan.canvas import training_canvas
from polyinr.training.loop import training_loop
from polyinr.training.losses import InfinityGANLoss, InfinityGANLossConfig, mode_seeking_loss
from polyinr.training.options import resolve_options

TINY = {
    "z_dim": 16,
    "w_dim": 16,
    "num_layers": 2,
    "local_latent_dim": 8,
    "structure_layers": 1,
    "structure_kernel": 3,
    "ts_input_size": 7,
    "ts_channels": [16, 8],
}


def test_diversity_loss_is_finite_on_identical_inputs():
    same = torch.randn(4, 5, 3, 3)
    same[1::2] = same[0::2]
    features = same.clone().requires_grad_(True)
    loss = mode_seeking_loss(features, same)  # identical images from identical latents
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(features.grad).all()
    zero = torch.zeros(2, 3)
    assert torch.isfinite(mode_seeking_loss(zero, zero))


def test_diversity_loss_falls_as_images_of_different_latents_move_apart():
    latents = torch.randn(2, 8)
    base = torch.randn(1, 8)
    losses = [float(mode_seeking_loss(torch.cat([base, base + d]), latents)) for d in (0.01, 0.1, 1.0)]
    assert losses[0] > losses[1] > losses[2]
    features = torch.cat([base, base + 0.1]).requires_grad_(True)
    mode_seeking_loss(features, latents).backward()
    step = features - 0.1 * features.grad  # a descent step pushes the pair apart
    assert (step[0] - step[1]).abs().mean() > (features[0] - features[1]).abs().mean()


def test_training_patches_and_positions():
    G = polyinr.create("infinitygan", **TINY)
    canvas, positions = training_canvas(G.cfg, 6, torch.Generator().manual_seed(0), paired=True)
    assert positions.min() >= -1 and positions.max() <= 1
    assert torch.equal(canvas.coords_tensor[0], canvas.coords_tensor[1])
    assert not torch.equal(canvas.local[0], canvas.local[1])
    D = create_discriminator("residual", G.img_resolution, 0, channel_base=64, channel_max=16, aux_outputs=1)
    loss = InfinityGANLoss(G, D, InfinityGANLossConfig())
    patches, labels = loss.crop_reals(torch.rand(3, 3, 24, 24))
    assert patches.shape == (3, 3, 13, 13) and labels.abs().max() <= 1
    logits, predicted = D(patches, None, aux=True)
    assert logits.shape == (3, 1) and predicted.shape == (3, 1)


def test_training_fakes_are_the_native_patches_of_a_training_canvas():
    """The contract's training fakes: what rendering the training canvas and reading G_S's output gives."""
    torch.manual_seed(0)
    G = polyinr.create("infinitygan", **TINY)
    ws = G.mapping(torch.randn(4, G.z_dim))
    torch.manual_seed(1)
    fakes = G.training_fakes(ws, paired=True)
    torch.manual_seed(1)
    canvas, positions = training_canvas(G.cfg, 4, paired=True)  # the same draws, the old way: a hook on G_S
    captured = []
    hook = G.synthesis.structure.register_forward_hook(lambda m, args, out: captured.append(out))
    images = G.synthesis(ws, G.native_grid(), canvas=canvas)
    hook.remove()
    n, Dl = G.cfg.ts_input_size, G.cfg.local_latent_dim
    assert fakes.images.shape == (4, 3, 13, 13) and fakes.positions.shape == (4,)
    assert fakes.structure.shape == (4, Dl * n * n) and fakes.local.shape == (4, Dl * (n + 2 * G.cfg.margin) ** 2)
    assert torch.equal(fakes.images, images) and torch.equal(fakes.positions, positions)
    assert torch.equal(fakes.structure, captured[0].view(4, -1)) and torch.equal(fakes.local, canvas.local.view(4, -1))
    assert torch.equal(fakes.positions[0::2], fakes.positions[1::2])  # pairs share their position


def test_the_loss_fakes_keep_their_values_for_a_fixed_seed():
    """The loss's fakes through training_fakes, against the same draws made by hand: pairing, mixing, canvas."""
    torch.manual_seed(0)
    G = polyinr.create("infinitygan", **TINY)
    D = create_discriminator("residual", G.img_resolution, 0, channel_base=64, channel_max=16, aux_outputs=1)
    loss = InfinityGANLoss(G, D, InfinityGANLossConfig(mixing=0.0))
    z = torch.randn(4, G.z_dim)
    torch.manual_seed(3)
    images, positions, ws, structure, local = loss.make_fakes(z, None)
    paired = z.clone()
    paired[1::2] = paired[0::2]
    assert torch.equal(ws, G.mapping(paired))
    torch.manual_seed(3)
    canvas, expected_positions = training_canvas(G.cfg, 4, paired=True)
    assert torch.equal(images, G.synthesis(ws, None, canvas=canvas)) and torch.equal(positions, expected_positions)
    assert torch.equal(local, canvas.local.view(4, -1)) and structure.shape[0] == 4


def test_a_short_run_of_the_cpu_recipe(tmp_path):
    options = resolve_options(
        "infinitygan-cpu",
        model="infinitygan",
        batch=4,
        kimg=0.008,
        tick_kimg=0.008,
        snap_ticks=1,
        workers=0,
        device="cpu",
        outdir=str(tmp_path),
        seed=1,
        model_overrides=TINY,
    )
    run_dir = training_loop(options, resume="new")
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    for key in ("Loss/G/coord", "Loss/G/diversity", "Loss/D/coord", "Loss/r1_penalty", "Loss/pl_penalty"):
        assert key in stats[-1] and math.isfinite(stats[-1][key]), key
    G = polyinr.load(latest_snapshot(run_dir))
    assert G.img_resolution == 13 and (run_dir / "fakes000000.png").is_file()


def test_the_shared_cpu_recipe_trains_on_patches_and_refuses_images_smaller_than_a_patch(tmp_path):
    from polyinr.models.generator import GridRefused

    settings = dict(
        model="infinitygan",
        data="builtin:photos",
        batch=4,
        kimg=0.008,
        tick_kimg=0.008,
        snap_ticks=1,
        workers=0,
        device="cpu",
        seed=1,
        model_overrides=TINY,
    )
    options = resolve_options("cpu", resolution=16, outdir=str(tmp_path / "ok"), **settings)  # nonsaturating + R1
    run_dir = training_loop(options, resume="new")
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    for key in ("Loss/D/loss", "Loss/r1_penalty"):
        assert key in stats[-1] and math.isfinite(stats[-1][key]), key
    assert latest_snapshot(run_dir) is not None
    refused = resolve_options("cpu", resolution=12, outdir=str(tmp_path / "refused"), **settings)
    with pytest.raises(GridRefused, match="13x13 patches cut from the images; 12x12 images are smaller than a patch"):
        training_loop(refused, resume="new")
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())  # before any work
