"""EMA maths, stage schedule, blur schedule, losses and R1, snapshots: the loop's parts in isolation."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors import SafetensorError
from torch import nn

import polyinr
from polyinr.checkpoint import CheckpointError, latest_snapshot, list_snapshots
from polyinr.errors import PolyinrError
from polyinr.training.ema import ema_beta, update_ema
from polyinr.training.losses import (
    HingeConfig,
    NonSaturatingConfig,
    NonSaturatingLoss,
    ProjectedHingeLoss,
    blur_sigma,
    gaussian_blur,
    phases_for,
)
from polyinr.training.options import resolve_options
from polyinr.training.schedule import build_stages, parse_schedule, stage_at
from polyinr.training.snapshot import best_snapshot, load_snapshot, record_metrics, save_snapshot


def test_ema_beta_half_life_and_rampup():
    # Without ramp-up, after ema_kimg·1000 images (batch by batch) the old weight has decayed to one half.
    beta = ema_beta(batch_size=32, ema_kimg=10, cur_nimg=10**9, rampup=0.05)
    assert beta ** (10_000 / 32) == pytest.approx(0.5, rel=1e-9)
    # Early on, the ramp-up shortens the half-life to cur_nimg · rampup images.
    early = ema_beta(batch_size=32, ema_kimg=10, cur_nimg=6400, rampup=0.05)
    assert early == pytest.approx(0.5 ** (32 / 320))
    assert ema_beta(32, 10, 0, None) == pytest.approx(0.5 ** (32 / 10_000))


def test_update_ema_lerps_parameters_and_copies_buffers():
    model, ema = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        model.weight.fill_(2.0)
        ema.weight.fill_(0.0)
        model.running_mean.fill_(5.0)
    update_ema(ema, model, beta=0.75)
    assert torch.allclose(ema.weight, torch.full((3,), 0.5))  # 2 + 0.75·(0 − 2)
    assert torch.equal(ema.running_mean, model.running_mean)


def test_schedule_parsing_and_stage_switching():
    stages = build_stages(parse_schedule("32:2,64:1.5"))
    assert [(s.resolution, s.start_nimg, s.end_nimg) for s in stages] == [(32, 0, 2000), (64, 2000, 3500)]
    assert stage_at(stages, 0).resolution == 32
    assert stage_at(stages, 1999).resolution == 32
    assert stage_at(stages, 2000).resolution == 64
    assert stage_at(stages, 10**6).resolution == 64  # past the end: the last stage
    for bad in ("32", "32:0", "x:1", "1:5", "32:1,"):
        with pytest.raises(PolyinrError, match="schedule"):
            parse_schedule(bad)


def test_blur_schedule_values():
    assert blur_sigma(0, 2.0, 300) == 2.0
    assert blur_sigma(150_000, 2.0, 300) == pytest.approx(1.0)
    assert blur_sigma(300_000, 2.0, 300) == 0.0
    assert blur_sigma(10**7, 2.0, 300) == 0.0
    assert blur_sigma(0, 2.0, 0) == 0.0
    x = torch.zeros(1, 3, 15, 15)
    x[..., 7, 7] = 1
    y = gaussian_blur(x, 2.0)
    assert y.sum().item() == pytest.approx(3.0, rel=1e-5)  # mass preserved away from the border
    assert y[0, 0, 7, 7] < 0.2 and y[0, 0, 7, 9] > 0  # spread out
    assert torch.equal(gaussian_blur(x, 0.2), x)  # sigma below a third of a pixel: nothing to do


class _TinyD(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 1))

    def forward(self, x, c):
        return self.net(x)


def _tiny_generator():
    torch.manual_seed(0)
    return polyinr.create("poly-inr", preset="cpu", channels=16, num_levels=3, img_resolution=8)


def test_r1_gradient_matches_direct_computation():
    G, D = _tiny_generator(), _TinyD()
    loss = NonSaturatingLoss(G, D, NonSaturatingConfig(gamma=10.0))
    assert [p.name for p in loss.phases()] == ["Gboth", "Dmain", "Dreg"]
    real = torch.randn(4, 3, 8, 8)
    loss.accumulate_gradients("Dreg", real, None, torch.randn(4, G.z_dim), None, gain=1.0, cur_nimg=0)
    got = D.net[1].weight.grad.clone()
    # D is linear, so ∇_x D = w for every sample and the penalty is γ/2 · ‖w‖² (mean over the batch).
    w = D.net[1].weight.detach().clone().requires_grad_(True)
    expected = torch.autograd.grad(10.0 / 2 * w.square().sum(), w)[0]
    assert torch.allclose(got, expected, rtol=1e-5)


def test_phase_gradients_reach_only_their_network():
    G, D = _tiny_generator(), _TinyD()
    loss = ProjectedHingeLoss(G, D, HingeConfig(blur_sigma=2.0, blur_fade_kimg=300))
    G.requires_grad_(False)
    D.requires_grad_(True)
    loss.accumulate_gradients("Dboth", torch.randn(2, 3, 8, 8), None, torch.randn(2, G.z_dim), None, 1.0, 0)
    assert all(p.grad is None for p in G.parameters())
    assert all(p.grad is not None for p in D.parameters())
    G.requires_grad_(True)
    D.requires_grad_(False)
    loss.accumulate_gradients("Gboth", torch.randn(2, 3, 8, 8), None, torch.randn(2, G.z_dim), None, 1.0, 0)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in G.synthesis.parameters())


def test_lazy_regularisation_phases():
    assert [p.interval for p in phases_for("D", 16)] == [1, 16]
    assert [p.name for p in phases_for("G", None)] == ["Gboth"]


def test_options_presets_and_errors():
    imagenet = resolve_options("imagenet")
    assert (imagenet.glr, imagenet.dlr, imagenet.batch, imagenet.resolved_ema_kimg()) == (1e-4, 2e-4, 64, 20.0)
    assert imagenet.disc == "projected" and imagenet.loss == "hinge" and imagenet.loss_options["cls_weight"] == 0
    assert [r for r, _ in imagenet.stages(32)] == [32, 64, 128, 256, 512]
    assert resolve_options("cpu", kimg=5).stages(16) == [(16, 5)]
    assert resolve_options("imagenet", kimg=5).schedule is None  # --kimg replaces the preset's schedule
    with pytest.raises(PolyinrError, match="multiple"):
        resolve_options("cpu", batch=10, batch_gpu=4)
    with pytest.raises(PolyinrError, match="recipe 'nope'"):
        resolve_options("nope")
    with pytest.raises(PolyinrError, match="class-conditional"):
        resolve_options("imagenet", loss_options={"cls_weight": 1.0})


def _snapshot_parts():
    G = _tiny_generator()
    D = _TinyD()
    opt = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.99))
    D(torch.randn(2, 3, 8, 8), None).sum().backward()
    opt.step()
    return G, D, opt


def test_snapshot_round_trip_is_exact(tmp_path):
    G, D, opt = _snapshot_parts()
    torch.manual_seed(123)
    path = save_snapshot(tmp_path, 2048, G, {"G": G, "D": D}, {"D": opt}, {"step": 64}, keep=2)
    expected_rng = torch.rand(3)
    assert polyinr.load(path).state_dict().keys() == G.state_dict().keys()  # a normal generator checkpoint
    G2, D2 = _tiny_generator(), _TinyD()
    opt2 = torch.optim.Adam(D2.parameters(), lr=1e-3, betas=(0.0, 0.99))
    counters = load_snapshot(path, {"G": G2, "D": D2}, {"D": opt2})
    assert counters == {"step": 64, "cur_nimg": 2048, "frozen_fingerprints": {}}
    assert torch.equal(torch.rand(3), expected_rng)  # RNG state restored
    for a, b in zip(D.state_dict().values(), D2.state_dict().values()):
        assert torch.equal(a, b)
    saved_state, loaded_state = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert saved_state.keys() == loaded_state.keys()
    for index, slots in saved_state.items():
        assert all(torch.equal(torch.as_tensor(v), torch.as_tensor(loaded_state[index][k])) for k, v in slots.items())


def test_snapshots_keep_newest_and_pointer_falls_back(tmp_path):
    G, D, opt = _snapshot_parts()
    for nimg in (1000, 1500, 3000):
        save_snapshot(tmp_path, nimg, G, {"D": D}, {"D": opt}, {"step": 1}, keep=2)
    assert [p.name for p in list_snapshots(tmp_path)] == ["000001.500", "000003"]
    assert latest_snapshot(tmp_path).name == "000003"
    (tmp_path / "checkpoints" / "latest").write_text("999999\n")  # stale pointer
    assert latest_snapshot(tmp_path).name == "000003"


def test_failed_snapshot_write_keeps_previous(tmp_path, monkeypatch):
    G, D, opt = _snapshot_parts()
    first = save_snapshot(tmp_path, 1000, G, {"D": D}, {"D": opt}, {"step": 1}, keep=3)

    def disk_full(*args, **kwargs):  # what safetensors raises on a full disk
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )

    monkeypatch.setattr("polyinr.atomic.save_file", disk_full)
    with pytest.raises(CheckpointError, match="No space left"):
        save_snapshot(tmp_path, 2000, G, {"D": D}, {"D": opt}, {"step": 2}, keep=3)
    assert latest_snapshot(tmp_path) == first
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")] == []
    assert math.isfinite(load_snapshot(first, {"D": D}, {"D": opt})["step"])


def test_mode_seeking_term_pairs_one_class_and_adds_its_loss(monkeypatch):
    torch.manual_seed(0)
    G = polyinr.create("poly-inr", preset="cpu", channels=16, num_levels=3, img_resolution=8, num_classes=6)
    D = _TinyD()
    seen = []
    monkeypatch.setattr(D, "forward", lambda x, c: seen.append(c) or D.net(x))
    z, c = torch.randn(6, G.z_dim), torch.tensor([0, 1, 2, 3, 4, 5])
    plain = NonSaturatingLoss(G, D, NonSaturatingConfig(gamma=0.0))
    plain.accumulate_gradients("Gmain", torch.zeros(6, 3, 8, 8), None, z, c, gain=1.0, cur_nimg=0)
    assert seen[-1].tolist() == c.tolist()  # without the term, the classes are as drawn
    g_plain = G.mapping.layers[0].weight.grad.clone()
    G.zero_grad()
    seeking = NonSaturatingLoss(G, D, NonSaturatingConfig(gamma=0.0, diversity_weight=1.0))
    seeking.accumulate_gradients("Gmain", torch.zeros(6, 3, 8, 8), None, z, c, gain=1.0, cur_nimg=0)
    assert seen[-1].tolist() == [0, 0, 2, 2, 4, 4]  # each pair (2i, 2i + 1) draws one class for G's step
    assert c.tolist() == [0, 1, 2, 3, 4, 5]  # the caller's labels are not changed
    assert torch.isfinite(G.mapping.layers[0].weight.grad).all() and not torch.equal(
        G.mapping.layers[0].weight.grad, g_plain
    )


def test_best_snapshot_of_a_stage_ranks_recorded_values_and_keeps_the_first_of_equals(tmp_path):
    G, _, _ = _snapshot_parts()
    records = [(0, 3.0), (1, 2.0), (1, float("nan")), (1, 1.0), (1, 1.0), (1, None), (2, 0.1)]  # (stage, fid)
    for i, (stage, fid) in enumerate(records):
        path = save_snapshot(tmp_path, 8 * (i + 1), G, {"G_ema": G}, {}, {"stage": stage}, keep=99)
        if fid is not None:
            record_metrics(path, {"fid": {"fid": fid}})
    path, value = best_snapshot(tmp_path, 1, "fid", "fid", lower=True)
    assert (path.name, value) == ("000000.032", 1.0)  # not the NaN, not stage 0's or 2's, the first 1.0
    assert best_snapshot(tmp_path, 1, "fid", "fid", lower=False)[0].name == "000000.016"
    assert best_snapshot(tmp_path, 1, "kid", "kid", lower=True) is None  # never recorded: no candidate
    save_snapshot(tmp_path, 80, G, {"G_ema": G}, {}, {"stage": 1}, keep=1, protect={"000000.032"})
    assert [p.name for p in list_snapshots(tmp_path)] == ["000000.032", "000000.080"]


def test_random_crops_are_windows_of_their_sample_from_torch_rng():
    from polyinr.training.losses import random_crops

    images = torch.arange(5 * 10 * 12, dtype=torch.float32).view(5, 1, 10, 12)  # every value tells its place
    torch.manual_seed(3)
    crops = random_crops(images, 4, 6)
    torch.manual_seed(3)
    assert torch.equal(random_crops(images, 4, 6), crops)  # the loop seeds torch's generator: reproducible
    assert crops.shape == (5, 1, 4, 6)
    corners = set()
    for i, crop in enumerate(crops):
        t, l = divmod(int(crop[0, 0, 0]) - i * 120, 12)
        assert torch.equal(crop, images[i, :, t : t + 4, l : l + 6])
        corners.add((t, l))
    assert len(corners) > 1  # one position per sample


def test_reals_are_cut_to_a_patch_models_patch_and_r1_holds_on_them():
    from polyinr.grid import Grid

    G, D = _tiny_generator(), _TinyD()
    loss = NonSaturatingLoss(G, D, NonSaturatingConfig(gamma=10.0))
    frame = torch.randn(4, 3, 8, 8)
    assert loss.real_patches(frame) is frame  # a frame model's reals are D's input as they are
    G.training_grid = lambda resolution: Grid.frame(8)  # a patch model: 8² patches whatever the images' size
    torch.manual_seed(0)
    assert loss.real_patches(torch.randn(4, 3, 12, 12)).shape == (4, 3, 8, 8)
    loss.accumulate_gradients("Dmain", torch.randn(4, 3, 12, 12), None, torch.randn(4, G.z_dim), None, 1.0, 0)
    D.zero_grad()
    loss.accumulate_gradients("Dreg", torch.randn(4, 3, 12, 12), None, torch.randn(4, G.z_dim), None, 1.0, 0)
    w = D.net[1].weight.detach().clone().requires_grad_(True)  # D linear: the penalty is γ/2 · ‖w‖², as on frames
    expected = torch.autograd.grad(10.0 / 2 * w.square().sum(), w)[0]
    assert torch.allclose(D.net[1].weight.grad, expected, rtol=1e-5)
