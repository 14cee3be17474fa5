"""The stylegan-xl recipe as the StyleGAN-XL authors' train.py and loss.py run it: it starts on the 16² stem,
path length on the stem only, head-only super-resolution stages, pretrained class tables, guidance only after the
stem, heads of 7, the paper's batch, and a dry run that prints all of it."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import polyinr
from polyinr.checkpoint import STATE_WEIGHTS, latest_snapshot, list_snapshots
from polyinr.cli import main
from polyinr.training.loop import training_loop
from polyinr.training.losses import ProjectedHingeLoss, create_loss
from polyinr.training.options import resolve_options
from polyinr.training.path_length import PathLengthPenalty
from polyinr.training.setup import ClassTableMissing, load_class_table

pytestmark = pytest.mark.usefixtures("one_thread")

XL = ["train", "--recipe", "stylegan-xl", "--model", "stylegan-xl", "--data", "builtin:digits", "-n"]
TINY_XL = {
    "channel_base": 256,
    "channel_max": 16,
    "num_layers": 4,
    "head_layers": 3,
    "mapping.z_dim": 16,
    "mapping.w_dim": 16,
}


def _dry_run(*args: str) -> dict:
    result = CliRunner().invoke(main, [*XL, *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_dry_run_starts_on_the_stem_and_prints_every_stage():
    resolved = _dry_run()
    training, stages = resolved["training"], resolved["stages"]
    assert training["batch"] == 2048 and training["batch_gpu"] == 8  # the paper's batch at 16² and 32²
    assert training["model_overrides"] == {"train_head_only": True}
    assert resolved["generator"]["config"]["head_layers"] == 7  # their --head_layers default
    assert resolved["discriminator"]["config"]["img_resolution"] == 16  # D of the first stage: the 16² stem's
    assert stages[0]["generator"] == {"img_resolution": 16, "up_factors": []}
    assert stages[0]["loss"] == {"cls_weight": 0.0, "pl_weight": 2.0, "pl_start_kimg": 1000.0}
    assert all(s["loss"] == {"cls_weight": 0.0, "pl_weight": 0.0} for s in stages[1:])
    assert stages[0]["trainable_parameters"] == stages[0]["parameters"]  # the stem trains whole
    assert all(s["trainable_parameters"] < s["parameters"] / 2 for s in stages[1:])  # then only the new heads
    assert resolved["optimizer"]["G"]["reg_interval"] == 4  # the path-length phase
    notes = " ".join(resolved["recipe_notes"])
    assert "until FID stops improving" in notes and "200k" in notes and "--no-head-only" in notes


def test_no_head_only_trains_everything_and_head_layers_is_a_flag():
    flags = ["--no-head-only", "--head-layers", "4", "--cls-weight", "1", "--cond", "true", "--pretrained-classes"]
    resolved = _dry_run(*flags, "false")
    assert all(s["trainable_parameters"] == s["parameters"] for s in resolved["stages"])
    generator = resolved["generator"]["config"]
    assert generator["head_layers"] == 4 and not generator["train_head_only"]
    assert [s["loss"]["cls_weight"] for s in resolved["stages"]] == [0.0, 1.0, 1.0, 1.0, 1.0]


def test_conditional_runs_need_the_pretrained_class_embeddings():
    options = resolve_options("stylegan-xl", model="stylegan-xl", cond=True)
    with pytest.raises(ClassTableMissing, match="stylegan-xl recipe starts G's and D's class tables"):
        load_class_table(options.split().classes, 10)
    result = CliRunner().invoke(main, [*XL, "--cond", "true"])
    assert result.exit_code == 1 and "--class-embeddings TABLE" in result.output


class _MeanD(torch.nn.Module):
    def forward(self, x, c):
        return x.mean(dim=(1, 2, 3))[:, None]


def _tiny_xl(**overrides):
    torch.manual_seed(0)
    return polyinr.create("stylegan-xl", "imagenet", **{**TINY_XL, "num_classes": 0, **overrides})


def test_path_length_runs_on_the_stem_from_its_start_every_4_steps_on_half_the_batch():
    G = _tiny_xl()
    loss = create_loss("hinge", G, _MeanD(), torch.device("cpu"), pl_weight=2.0, pl_start_kimg=1.0)
    assert [(p.name, p.interval) for p in loss.phases()] == [("Gmain", 1), ("Greg", 4), ("Dboth", 1)]
    z, real = torch.randn(4, G.z_dim), torch.zeros(4, 3, 16, 16)

    def greg_grads(cur_nimg, gain=4.0):
        G.zero_grad(set_to_none=True)
        torch.manual_seed(5)
        loss.accumulate_gradients("Greg", real, None, z, None, gain=gain, cur_nimg=cur_nimg)
        return [p.grad for p in G.parameters()]

    assert all(g is None for g in greg_grads(999))  # before 1 kimg here (their 1 M images): nothing
    got = greg_grads(1000)
    assert float(loss.path_length.pl_mean) > 0  # the running mean moved
    # By hand: the penalty on the first half of the micro-batch, weight 2 / 4 samples, without the interval 4.
    G.zero_grad(set_to_none=True)
    reference = PathLengthPenalty()
    torch.manual_seed(5)
    ws = G.mapping(z[:2], None)
    images = G.synthesize(ws, G.training_grid(16), update_emas=False)
    penalty = reference(images, ws)
    assert all(p.grad is None for p in G.parameters())  # no weight gradients in taking the path length
    (penalty.mean() * (2.0 / 4)).backward()
    torch.testing.assert_close(reference.pl_mean, loss.path_length.pl_mean)
    for a, p in zip(got, G.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad)
    loss.begin_stage(1, 0)
    assert all(g is None for g in greg_grads(10**7))  # super-resolution stages: pl_weight 0


def test_path_length_mean_decays_by_one_hundredth():
    penalty = PathLengthPenalty()
    ws = torch.randn(3, 2, 4, requires_grad=True)
    images = (ws.sum(dim=2)[:, :, None, None] * torch.ones(3, 2, 5, 5)).repeat(1, 2, 1, 1)[:, :3]
    torch.manual_seed(0)
    out = penalty(images, ws)
    torch.manual_seed(0)
    noise = torch.randn_like(images) / 5
    (grads,) = torch.autograd.grad((images * noise).sum(), ws)
    lengths = grads.square().sum(dim=2).mean(dim=1).sqrt()
    torch.testing.assert_close(penalty.pl_mean, 0.01 * lengths.mean())
    torch.testing.assert_close(out, (lengths - 0.01 * lengths.mean()).square())


def test_the_guidance_classifier_is_built_when_the_first_super_resolution_stage_begins(monkeypatch):
    built = []

    def build(device):
        built.append(device)
        return torch.nn.Identity()

    monkeypatch.setattr("polyinr.training.guidance.build_guidance_classifier", build)
    loss = create_loss("hinge", _tiny_xl(), _MeanD(), torch.device("cpu"), cls_weight=1.0)
    assert isinstance(loss, ProjectedHingeLoss)
    loss.begin_stage(0, 0)
    assert built == []  # the stem never loads DeiT
    loss.begin_stage(1, 1000)
    loss.begin_stage(2, 2000)
    assert built == [torch.device("cpu")]


def _snapshot(run_dir, index):
    return load_file(str(list_snapshots(run_dir)[index] / STATE_WEIGHTS))


def test_the_recipe_trains_its_first_steps_on_its_own_model(tmp_path):
    options = resolve_options(
        "stylegan-xl",
        model="stylegan-xl",
        data="builtin:digits",
        schedule="16:0.016,32:0.016",
        batch=8,
        batch_gpu=4,
        tick_kimg=0.008,
        snap_ticks=1,
        keep_snapshots=10,
        workers=0,
        device="cpu",
        seed=1,
        outdir=str(tmp_path),
        model_overrides=TINY_XL,
        loss_options={"pl_start_kimg": 0.0},
        disc_options={"backbones": ["tf_efficientnet_lite0"], "pretrained": False, "interp224": False},
    )
    run_dir = training_loop(options)
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert "Loss/pl_penalty" in stats[0] and not any("Loss/pl_penalty" in s for s in stats[2:])  # the stem only
    G = polyinr.load(latest_snapshot(run_dir))
    assert G.cfg.up_factors == (2,) and G.cfg.train_head_only and G.img_resolution == 32
    stem_end, grown, last = _snapshot(run_dir, 1), _snapshot(run_dir, 2), _snapshot(run_dir, 3)  # 16, 24, 32 images
    assert "path_length/pl_mean" in stem_end  # kept for an exact resume
    frozen = [k for k in last if k.startswith(("G_ema/mapping.", "G_ema/synthesis.L0_")) and "w_avg" not in k]
    assert frozen and all(torch.equal(stem_end[k], last[k]) for k in frozen)  # mapping and stem layers frozen
    for name in (f"G/synthesis.{G.head_names[0]}.weight", "G/synthesis.input.weight"):
        assert not torch.equal(grown[name], last[name]), name  # the new head and the Fourier input train
