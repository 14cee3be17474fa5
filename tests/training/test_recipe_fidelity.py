"""The imagenet / ffhq recipes as the authors' code effectively ran: effective Adam settings, micro-
batches of 8, the class-table requirement, and each resolution stage starting as the authors' next run."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from staged_runs import STAGED, Stop, assert_same_final_state, record_stage_starts, snapshot_state, stop_at

import polyinr
from polyinr.checkpoint import list_snapshots
from polyinr.cli import main
from polyinr.discriminators import create_discriminator
from polyinr.metrics import metric_goal
from polyinr.training.loop import training_loop
from polyinr.training.losses import HingeConfig, ProjectedHingeLoss, gaussian_blur
from polyinr.training.options import resolve_options
from polyinr.training.setup import ClassTableMissing, load_class_table
from polyinr.training.snapshot import snapshot_name


def test_dry_run_prints_the_effective_adam_settings_of_the_authors_recipe():
    result = CliRunner().invoke(main, ["train", "--recipe", "imagenet", "-n"])
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.output)
    G, D = resolved["optimizer"]["G"], resolved["optimizer"]["D"]
    assert G["lr"] == pytest.approx(8e-5) and G["betas"] == pytest.approx([0.0, 0.99**0.8])
    assert D["lr"] == pytest.approx(2e-4 * 16 / 17) and D["betas"] == pytest.approx([0.0, 0.99 ** (16 / 17)])
    assert G["betas"][1] == pytest.approx(0.99199, abs=1e-5) and D["betas"][1] == pytest.approx(0.99059, abs=1e-5)
    assert (G["reg_interval"], D["reg_interval"]) == (4, 16) and resolved["training"]["batch_gpu"] == 8
    assert any("lazy-regularisation" in note for note in resolved["recipe_notes"])


def test_the_cpu_recipe_scales_only_for_its_own_r1_phase():
    from polyinr.training.setup import optimizer_settings

    settings = resolve_options("cpu").split()
    adam = optimizer_settings(settings.optimizer, settings.loss)
    assert adam["G"]["lr"] == 0.0025 and adam["G"]["betas"] == [0.0, 0.99]
    assert adam["D"]["lr"] == pytest.approx(0.0025 * 16 / 17)  # R1 every 16 D steps


def _tiny_projected_d(seed=0):
    torch.manual_seed(seed)
    return create_discriminator(
        "projected", 32, 0, backbones=["tf_efficientnet_lite0"], pretrained=False, diffaug=None, interp224=False
    )


def _accumulated_grads(G, D, z, real, batch_gpu):
    """The loop's accumulation: the loss of each micro-batch with gain 1/rounds, for G's and D's phases."""
    loss = ProjectedHingeLoss(G, D, HingeConfig(blur_sigma=0))
    grads = {}
    for phase, net in (("Gboth", G), ("Dboth", D)):
        net.zero_grad(set_to_none=True)
        rounds = len(z) // batch_gpu
        for r in range(rounds):
            part = slice(r * batch_gpu, (r + 1) * batch_gpu)
            loss.accumulate_gradients(phase, real[part], None, z[part], None, gain=1 / rounds, cur_nimg=0)
        grads[phase] = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
    return grads


@pytest.mark.slow
def test_micro_batches_of_8_equal_one_whole_batch_except_for_batchnorm_statistics():
    assert resolve_options("imagenet").batch_gpu == 8 and resolve_options("ffhq").batch_gpu == 8
    torch.manual_seed(0)
    G = polyinr.create("poly-inr", preset="cpu", channels=16, num_levels=2, img_resolution=32)
    g = torch.Generator().manual_seed(1)
    z, real = torch.randn(32, G.z_dim, generator=g), torch.rand(32, 3, 32, 32, generator=g) * 2 - 1
    D = _tiny_projected_d()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    D.eval()  # fixed BatchNorm statistics: accumulation is exact
    split, whole = _accumulated_grads(G, D, z, real, 8), _accumulated_grads(G, D, z, real, 32)
    for phase in ("Gboth", "Dboth"):
        torch.testing.assert_close(split[phase], whole[phase], rtol=1e-3, atol=1e-6)
    D.train()  # batch statistics over 8 vs 32 samples: the only difference
    split, whole = _accumulated_grads(G, D, z, real, 8), _accumulated_grads(G, D, z, real, 32)
    assert not torch.allclose(split["Dboth"], whole["Dboth"], rtol=1e-3, atol=1e-6)


def test_the_imagenet_recipe_refuses_random_class_tables_naming_both_ways_to_get_one(tmp_path):
    options = resolve_options("imagenet", data="builtin:digits", cond=True)
    with pytest.raises(ClassTableMissing, match="pretrained class embeddings") as info:
        load_class_table(options.split().classes, 10)
    assert "\n" not in str(info.value)
    assert load_class_table(resolve_options("imagenet", pretrained_classes=False).split().classes, 10) is None
    result = CliRunner().invoke(main, ["train", "--recipe", "imagenet", "--cond", "true", "-n"])
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1, result.output
    assert "polyinr embed-classes" in result.output and "polyinr convert" in result.output


class _Echo(torch.nn.Module):
    def forward(self, x, c):
        return x.flatten(1)


def test_the_blur_restarts_at_the_first_image_of_every_stage():
    torch.manual_seed(0)
    loss = ProjectedHingeLoss(None, _Echo(), HingeConfig(blur_sigma=2.0, blur_fade_kimg=300))
    x = torch.randn(1, 3, 16, 16)
    loss.begin_stage(1, 5_000_000)  # stage 2 starts after 5000 kimg of stage 1
    torch.testing.assert_close(loss.run_D(x, None, 5_000_000), gaussian_blur(x, 2.0).flatten(1))
    torch.testing.assert_close(loss.run_D(x, None, 5_150_000), gaussian_blur(x, 1.0).flatten(1))


@pytest.mark.slow
def test_each_stage_starts_from_the_previous_g_ema_and_resumes_exactly_across_the_switch(tmp_path, monkeypatch):
    starts = record_stage_starts(monkeypatch)
    run_dir = training_loop(resolve_options("cpu", outdir=str(tmp_path / "a"), **STAGED))
    end_of_stage_1 = next(s for s in list_snapshots(run_dir) if s.name == snapshot_name(16))
    saved = snapshot_state(end_of_stage_1)
    g_ema = {k[len("G_ema/") :]: v for k, v in saved.items() if k.startswith("G_ema/")}
    assert set(starts) == {0, 1}
    assert all(torch.equal(starts[1][k], g_ema[k]) for k in g_ema)  # stage 2's G is stage 1's G_ema

    options = resolve_options("cpu", outdir=str(tmp_path / "b"), **STAGED)
    with pytest.raises(Stop):
        training_loop(options, on_tick=stop_at(16))  # at the end of the first stage, as a kill would
    resumed = training_loop(options)  # continues across the switch
    assert_same_final_state(run_dir, resumed, "across the stage switch")


def test_the_dry_run_says_which_g_ema_each_stage_starts_from():
    def rule(*extra):
        result = CliRunner().invoke(main, ["train", "--recipe", "imagenet", "-n", *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["stage_start"]

    assert "last G_ema" in rule() and "no metrics" in rule()
    assert "lowest fid50k_full" in rule("--metrics", "fid50k_full,pr50k3_full")
    assert "highest is50k_mean" in rule("--metrics", "is50k")
    assert "last G_ema" in rule("--metrics", "pr50k3_full,fid50k_full")  # precision/recall ranks nothing


_SCRIPTED_FID = {snapshot_name(8): 1.0, snapshot_name(16): 2.0}


class _ScriptedFid:
    """A snapshot evaluator whose ``fid_digits`` is set per snapshot (stage 1's best is its first snapshot, not
    its last); it keeps each evaluated G_ema."""

    def __init__(self):
        self.g_ema, self.calls = {}, []

    def __call__(self, names, G, data, run_dir, snapshot, device):
        self.calls.append(snapshot.name)
        self.g_ema[snapshot.name] = {k: v.clone() for k, v in G.state_dict().items()}
        return {"fid_digits": {"results": {"fid_digits": _SCRIPTED_FID.get(snapshot.name, 0.5)}, "detector": "none"}}


@pytest.mark.slow
def test_with_metrics_each_stage_starts_from_the_best_snapshot_and_resumes_exactly(tmp_path, monkeypatch):
    from polyinr.training.snapshot import METRICS_JSON

    values = {**STAGED, "keep_snapshots": 1, "metrics": ("fid_digits",)}
    starts = record_stage_starts(monkeypatch)
    kept = []
    evaluator = _ScriptedFid()
    options = resolve_options("cpu", outdir=str(tmp_path / "a"), **values)
    run_dir = training_loop(
        options,
        evaluate=evaluator,
        goal=metric_goal,
        on_tick=lambda t: kept.append([p.name for p in list_snapshots(run_dir_of(tmp_path / "a"))]),
    )
    assert evaluator.calls == [snapshot_name(n) for n in (8, 16, 24, 32)]
    assert kept[1] == [snapshot_name(8), snapshot_name(16)]  # the stage's best outlives --keep 1 until the stage ends
    assert kept[2] == [snapshot_name(24)]
    best, last = evaluator.g_ema[snapshot_name(8)], evaluator.g_ema[snapshot_name(16)]
    assert any(not torch.equal(best[k], last[k]) for k in best)
    assert all(torch.equal(starts[1][k], best[k]) for k in best)  # stage 2's G: stage 1's best G_ema
    log = (run_dir / "log.txt").read_text()
    assert f"G from the G_ema of snapshot {snapshot_name(8)}, the stage's best by fid_digits = 1" in log
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert [s["Progress/stage_start_kimg"] for s in stats if "Progress/stage_start_kimg" in s] == [0.008]
    counters = json.loads((list_snapshots(run_dir)[-1] / "training_state.json").read_text())
    assert counters["stage_start"]["snapshot"] == snapshot_name(8) and counters["stage"] == 1

    options = resolve_options("cpu", outdir=str(tmp_path / "b"), **values)
    with pytest.raises(Stop):
        training_loop(options, evaluate=_ScriptedFid(), goal=metric_goal, on_tick=stop_at(16))
    (list_snapshots(run_dir_of(tmp_path / "b"))[-1] / METRICS_JSON).unlink()  # as if killed before evaluating
    again = _ScriptedFid()
    resumed = training_loop(
        options, evaluate=again, goal=metric_goal
    )  # evaluates the last again, then chooses the first
    assert again.calls == [snapshot_name(n) for n in (16, 24, 32)]
    assert_same_final_state(run_dir, resumed, "across the stage switch")


def run_dir_of(outdir):
    return next(p for p in outdir.iterdir() if p.is_dir())
