"""StyleGAN-XL: XL's settings, the growth schedule (heads continue the stem's filters), growing a network,
training only the head, and progressive training through the loop that resumes exactly across a growth."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

import polyinr
from polyinr.checkpoint import STATE_WEIGHTS, latest_snapshot
from polyinr.errors import PolyinrError
from polyinr.models.registry import create
from polyinr.models.stylegan_xl import StyleGANXL, StyleGANXLConfig, xl_schedule
from polyinr.training.loop import training_loop
from polyinr.training.options import resolve_options


def test_xl_settings():
    cfg = StyleGANXLConfig()
    assert (cfg.z_dim, cfg.w_dim, cfg.mapping.embed_dim, cfg.mapping.num_layers) == (64, 512, 320, 2)
    assert (cfg.channel_base, cfg.channel_max) == (65536, 1024)  # twice StyleGAN3-T's
    assert cfg.magnitude_ema_beta == 1.0  # frozen
    G = create("stylegan-xl", "cpu", num_classes=3)
    G.mapping(torch.randn(4, G.z_dim), torch.tensor([0, 1, 2, 0]), update_emas=True)
    assert G.mapping.w_avg.shape == (3, G.w_dim)  # one w_avg per class
    before = [layer.magnitude_ema.clone() for layer in G.synthesis.layers()]
    G.synthesis(G.mapping(torch.randn(2, G.z_dim), torch.tensor([0, 1])), update_emas=True)
    assert all(torch.equal(a, b.magnitude_ema) for a, b in zip(before, G.synthesis.layers(), strict=True))


def test_heads_continue_the_stems_filters():
    cfg = StyleGANXLConfig(num_layers=10, stem_resolution=16, img_resolution=64, up_factors=(2, 2), head_layers=7)
    specs = xl_schedule(cfg)
    stem_kept = 10 - 2  # layers 0…7: the stem without its two critical layers and ToRGB
    # XL's numbering: head 1 from stem_len = 8 kept + 1; head 2 from 13 kept + 1 (reusing head 1's cut numbers)
    assert [s.index for s in specs] == [*range(stem_kept), *range(9, 14), *range(14, 22)]
    assert len(specs) + 1 == cfg.num_ws == 8 + 5 + 8 + 1
    first_head, last_stem = specs[stem_kept], specs[stem_kept - 1]
    assert (first_head.in_cutoff, first_head.in_sampling_rate, first_head.in_size, first_head.in_channels) == (
        last_stem.out_cutoff,
        last_stem.out_sampling_rate,
        last_stem.out_size,
        last_stem.out_channels,
    )
    assert first_head.out_cutoff == last_stem.out_cutoff and first_head.out_sampling_rate == 16
    second = specs[stem_kept + 1]
    assert second.in_cutoff == pytest.approx(last_stem.out_cutoff)
    assert second.out_cutoff == pytest.approx(last_stem.out_cutoff * (16 / last_stem.out_cutoff) ** (1 / 5))
    head1 = specs[stem_kept : stem_kept + 7]
    assert not any(s.is_critically_sampled for s in head1)  # the first head's critical layers were cut
    last = specs[-3:]
    assert all(s.is_critically_sampled for s in last) and last[-1].is_torgb
    assert [s.out_size for s in last] == [64 + 20, 64, 64] and last[0].out_cutoff == pytest.approx(32)
    assert all(s.conv_kernel == 3 and not s.use_radial_filters for s in specs[stem_kept:])  # XL's head defaults
    with pytest.raises(PolyinrError, match="renders 64 pixels, not 32"):
        StyleGANXLConfig(stem_resolution=16, img_resolution=32, up_factors=(4,))
    with pytest.raises(PolyinrError, match="growth factors"):
        StyleGANXLConfig(stem_resolution=16, img_resolution=48, up_factors=(3,))


def test_growing_carries_the_stem_and_replaces_the_critical_layers():
    torch.manual_seed(0)
    stem = create("stylegan-xl", "cpu", img_resolution=8, up_factors=())
    grown = stem.next_stage(16)
    assert grown.img_resolution == 16 and grown.cfg.up_factors == (2,) and stem.next_stage(8) is None
    kept = [s.spec.name for s in stem.synthesis.layers() if not s.spec.is_critically_sampled]
    stem_state, grown_state = stem.state_dict(), grown.state_dict()
    for key, value in stem_state.items():
        carried = (
            key.startswith("mapping.")
            or key.startswith("synthesis.input.")
            or any(key.startswith(f"synthesis.{n}.") for n in kept)
        )
        assert (key in grown_state and torch.equal(grown_state[key], value)) == carried, key
    assert grown(torch.randn(2, grown.z_dim)).shape == (2, 3, 16, 16)
    with pytest.raises(PolyinrError, match="not from 16 to 48"):
        grown.next_stage(48)
    head_only = create("stylegan-xl", "cpu", train_head_only=True)
    head = {id(p) for p in head_only.trainable_parameters()}
    assert head and all(id(p) not in head for p in head_only.mapping.parameters())
    # Per head layer: affine weight and bias, weight, bias; and the Fourier input's weight, affine weight and bias,
    # which the authors' train_head_only leaves training (it freezes the layers their synthesis names).
    assert len(head) == 4 * (head_only.cfg.head_layers + 1) + 3
    assert all(id(p) in head for p in head_only.synthesis.input.parameters())
    stem = create("stylegan-xl", "cpu", img_resolution=8, up_factors=(), train_head_only=True)
    assert len(stem.trainable_parameters()) == len(list(stem.parameters()))  # the stem stage trains whole
    assert len(stem.next_stage(16).trainable_parameters()) == len(head)


def _options(outdir, **overrides):
    values = dict(
        model="stylegan-xl",
        data="builtin:digits",
        schedule="8:0.016,16:0.016",
        batch=8,
        tick_kimg=0.008,
        snap_ticks=1,
        workers=0,
        device="cpu",
        seed=2,
        outdir=str(outdir),
        disc_options={"channel_base": 128, "channel_max": 16},
    )
    values.update(overrides)
    return resolve_options("cpu", **values)


class _Interrupt(Exception):
    pass


@pytest.mark.slow
def test_progressive_training_grows_the_network_and_resumes_exactly(tmp_path):
    straight = training_loop(_options(tmp_path / "straight"))
    final = polyinr.load(latest_snapshot(straight))
    assert isinstance(final, StyleGANXL) and final.cfg.up_factors == (2,) and final.cfg.stem_resolution == 8
    expected = load_file(str(latest_snapshot(straight) / STATE_WEIGHTS))

    ticks = []

    def stop_at_the_end_of_the_stem(report):
        ticks.append(report)
        if report.cur_nimg == 16:  # the stem stage's last snapshot
            raise _Interrupt

    with pytest.raises(_Interrupt):
        training_loop(_options(tmp_path / "resumed"), on_tick=stop_at_the_end_of_the_stem)
    run_dir = training_loop(_options(tmp_path / "resumed"))
    got = load_file(str(latest_snapshot(run_dir) / STATE_WEIGHTS))
    assert set(got) == set(expected)
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert math.isfinite(float(got["G/synthesis.L6_16_3.weight"].abs().sum()))
