"""ADA: the transforms (identity at p = 0, exact integer shifts, colour maps about the luma axis, double
backward), the adaptive probability, and its state across a snapshot and resume."""

from __future__ import annotations

import itertools

import pytest
import torch
from safetensors.torch import load_file

from polyinr.checkpoint import STATE_WEIGHTS, latest_snapshot
from polyinr.discriminators import create_discriminator
from polyinr.discriminators.ada import PIPELINES, AdaptiveAugment, AugmentConfig
from polyinr.errors import PolyinrError
from polyinr.models.registry import create
from polyinr.training.loop import training_loop
from polyinr.training.losses import NonSaturatingConfig, NonSaturatingLoss
from polyinr.training.options import resolve_options

TRANSFORMS = (
    "xflip",
    "rotate90",
    "xint",
    "scale",
    "rotate",
    "aniso",
    "xfrac",
    "brightness",
    "contrast",
    "lumaflip",
    "hue",
    "saturation",
)


def _only(*names: str) -> AugmentConfig:
    return AugmentConfig(**{n: float(n in names) for n in TRANSFORMS})


def _images(B=6, R=16, seed=0):
    return torch.rand(B, 3, R, R, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_zero_probability_is_the_identity_and_integer_translation_is_an_exact_shift():
    x = _images()
    assert torch.allclose(AdaptiveAugment(p=0.0)(x), x, atol=1e-5)  # sym6 up/down: perfect reconstruction
    torch.manual_seed(1)
    y = AdaptiveAugment(_only("xint"), p=1.0)(x)
    torch.manual_seed(1)
    shifts = torch.round((torch.rand(6, 2) * 2 - 1) * 0.125 * 16).long()  # the pipeline's own draw
    assert shifts.abs().sum() > 0
    for b, (dx, dy) in enumerate(shifts.tolist()):
        out = y[b, :, max(dy, 0) : 16 + min(dy, 0), max(dx, 0) : 16 + min(dx, 0)]
        src = x[b, :, max(-dy, 0) : 16 + min(-dy, 0), max(-dx, 0) : 16 + min(-dx, 0)]
        torch.testing.assert_close(out, src, atol=1e-5, rtol=0)


def test_colour_transforms_act_about_the_luma_axis():
    x = _images()
    luma = x.mean(dim=1)
    y = AdaptiveAugment(_only("hue", "saturation"), p=1.0)(x)  # rotations about / scaling away from (1,1,1)
    torch.testing.assert_close(y.mean(dim=1), luma, atol=1e-5, rtol=0)
    assert (y - x).abs().max() > 0.1
    torch.manual_seed(2)
    y = AdaptiveAugment(_only("lumaflip"), p=1.0)(x)  # Householder reflection: luma negated or kept
    flipped = (y.mean(dim=1) + luma).abs().amax(dim=(1, 2)) < 1e-5
    kept = (y - x).abs().amax(dim=(1, 2, 3)) < 1e-6
    assert (flipped | kept).all() and flipped.any() and kept.any()


def test_r1_through_the_augmentation_matches_finite_differences():
    """R1 differentiates D(augment(x)) twice; its gradient w.r.t. D's weight must match finite differences."""
    x = _images(B=2, R=8).double()
    augment = AdaptiveAugment(p=1.0)

    def penalty(w: torch.Tensor) -> torch.Tensor:
        real = x.clone().requires_grad_(True)
        torch.manual_seed(3)  # the same draw for every evaluation
        logits = torch.tanh(augment(real) * w).sum()
        (grad,) = torch.autograd.grad(logits, real, create_graph=True)
        return grad.square().sum()

    w = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    (analytic,) = torch.autograd.grad(penalty(w), w)
    eps = 1e-6
    numeric = (
        penalty(torch.tensor(0.7 + eps, dtype=torch.float64)) - penalty(torch.tensor(0.7 - eps, dtype=torch.float64))
    ) / (2 * eps)
    assert analytic.abs() > 1e-3
    assert float(analytic) == pytest.approx(float(numeric.detach()), rel=1e-5)


def test_pipelines_and_bad_settings():
    assert PIPELINES["bg"].hue == 0 and PIPELINES["c"].xflip == 0 and PIPELINES["bgc"].rotate == 1
    with pytest.raises(PolyinrError):
        AdaptiveAugment(p=-0.1)
    with pytest.raises(PolyinrError):
        AdaptiveAugment()(torch.zeros(1, 1, 8, 8))


def _no_reduce(t: torch.Tensor) -> torch.Tensor:
    return t


def test_p_follows_the_sign_of_real_logits_against_the_target():
    augment = AdaptiveAugment(p=0.0, target=0.6, interval=4, kimg=1.0)
    step_size = 8 * 4 / 1000
    for step in range(1, 9):  # D sure of every real image: r_t = 1 > 0.6
        augment.observe_real(torch.full((8, 1), 3.0))
        augment.end_step(step, 8, _no_reduce)
    assert float(augment.p) == pytest.approx(2 * step_size)
    for step in range(9, 21):  # r_t = 0 < 0.6: p falls, never below 0
        augment.observe_real(torch.tensor([[1.0], [-1.0]]))
        augment.end_step(step, 8, _no_reduce)
    assert float(augment.p) == 0.0
    fixed = AdaptiveAugment(p=0.3, target=None)
    fixed.observe_real(torch.ones(4))
    fixed.end_step(4, 8, _no_reduce)
    assert float(fixed.p) == pytest.approx(0.3)


def test_p_rises_on_an_overfitting_discriminator():
    torch.manual_seed(0)
    G = create("poly-inr", "cpu", img_resolution=8, channels=8)
    D = create_discriminator("residual", 8, 0, channel_base=128, channel_max=32)
    augment = AdaptiveAugment(p=0.0, target=0.6, interval=4, kimg=2.0)
    loss = NonSaturatingLoss(G, D, NonSaturatingConfig(gamma=0.0), augment=augment)
    opt = torch.optim.Adam(D.parameters(), lr=0.01, betas=(0.0, 0.99))
    reals = _images(B=4, R=8, seed=4)  # four images shown again and again: D memorises them
    z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(5))
    history = []
    for step in range(1, 41):
        opt.zero_grad()
        loss.accumulate_gradients("Dmain", reals, None, z, None, gain=1.0, cur_nimg=0)
        opt.step()
        loss.end_step(step, 4)
        history.append(float(augment.p))
    assert history[-1] > history[len(history) // 2] > 0  # p keeps rising while D separates the reals
    assert all(b >= a for a, b in itertools.pairwise(history))


def _tiny(outdir, **overrides):
    values = dict(
        data="builtin:digits",
        resolution=8,
        batch=8,
        kimg=0.048,
        tick_kimg=0.016,
        snap_ticks=1,
        workers=0,
        device="cpu",
        seed=3,
        outdir=str(outdir),
        model_overrides={"channels": 8},
        aug="ada",
        ada_kimg=0.05,
        ada_target=-0.99,
        loss_options={"gamma": 0.1},
    )
    values.update(overrides)
    return resolve_options("cpu", **values)


class _Interrupt(Exception):
    pass


def test_ada_state_survives_resume_bit_exactly(tmp_path):
    straight = training_loop(_tiny(tmp_path / "straight"))
    expected = load_file(str(latest_snapshot(straight) / STATE_WEIGHTS))

    ticks = []

    def stop_after_first_tick(report):
        ticks.append(report)
        if len(ticks) == 1:  # a snapshot after 2 steps: half-way through an ADA interval of 4
            raise _Interrupt

    with pytest.raises(_Interrupt):
        training_loop(_tiny(tmp_path / "resumed"), on_tick=stop_after_first_tick)
    run_dir = training_loop(_tiny(tmp_path / "resumed"))
    got = load_file(str(latest_snapshot(run_dir) / STATE_WEIGHTS))
    assert set(got) == set(expected)
    assert float(expected["augment/p"]) > 0  # moved at step 4 (target −0.99: any D pushes p up)
    assert float(expected["augment/real_signs"][1]) > 0  # signs of steps 5 and 6, not yet used
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
