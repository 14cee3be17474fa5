"""The training loop end to end on a tiny config: CLI, snapshots, exact resume, NaN, stages, DDP (signals:
``tests/cli/test_interrupts.py``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import polyinr
from child_env import child_env
from polyinr.checkpoint import STATE_WEIGHTS, CheckpointError, latest_snapshot, list_snapshots
from polyinr.cli import main
from polyinr.errors import PolyinrError
from polyinr.metrics import evaluate_snapshot
from polyinr.training.loop import TrainingError, training_loop
from polyinr.training.options import resolve_options

# 8 steps of 8 images on 8×8 digits with a 16-wide generator: a few seconds.
TINY = [
    "--data",
    "builtin:digits",
    "--cond",
    "true",
    "--resolution",
    "8",
    "--batch",
    "8",
    "--kimg",
    "0.064",
    "--tick",
    "0.016",
    "--snap",
    "1",
    "--channels",
    "16",
    "--workers",
    "0",
    "--device",
    "cpu",
    "--seed",
    "3",
]


def _tiny_options(outdir: Path, **overrides):
    values = dict(
        data="builtin:digits",
        cond=True,
        resolution=8,
        batch=8,
        kimg=0.064,
        tick_kimg=0.016,
        snap_ticks=1,
        workers=0,
        device="cpu",
        seed=3,
        outdir=str(outdir),
        model_overrides={"channels": 16},
    )
    if overrides.get("schedule"):  # a schedule sets the resolutions and durations itself
        del values["resolution"], values["kimg"]
    values.update(overrides)
    return resolve_options("cpu", **values)


def _final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(latest_snapshot(run_dir) / STATE_WEIGHTS))


def _train_cli(outdir: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "polyinr", "train", "--outdir", str(outdir), *TINY, *extra]
    return subprocess.Popen(cmd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_train_end_to_end_writes_a_run(tmp_path):
    steps = []
    run_dir = training_loop(_tiny_options(tmp_path), on_step=lambda cur, total: steps.append((cur, total)))
    assert steps == [(8 * i, 64) for i in range(1, 9)]  # the caller hears of every step
    for name in ("training_options.json", "log.txt", "stats.jsonl", "reals.png", "fakes000000.png"):
        assert (run_dir / name).is_file(), name
    assert len(list(run_dir.glob("fakes*.png"))) == 5  # at the start and every tick
    assert any(p.name.startswith("events.out.tfevents") for p in run_dir.iterdir())
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert len(stats) == 4 and stats[-1]["kimg"] == pytest.approx(0.064)
    assert all("Loss/G/loss" in s and "Loss/D/loss" in s for s in stats)
    assert all(0.0 <= s["Timing/data_wait_frac"] <= 1.0 for s in stats)  # share of step time waiting for data
    assert len(list_snapshots(run_dir)) == 3  # keep the newest 3 of 4
    G = polyinr.load(latest_snapshot(run_dir))  # the EMA generator is a normal checkpoint
    assert G.num_classes == 10 and G.img_resolution == 8
    # Running the same command again finds the finished run and has nothing left to do.
    assert training_loop(_tiny_options(tmp_path)) == run_dir


def test_dry_run_prints_resolved_imagenet_recipe():
    result = CliRunner().invoke(main, ["train", "--preset", "imagenet", "--dry-run"])
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.output)
    config = resolved["training"]
    assert config["recipe"] == "imagenet" and config["preset"] == "imagenet"
    assert config["glr"] == 1e-4 and config["dlr"] == 2e-4 and config["batch"] == 64
    assert config["disc"] == "projected" and config["loss"] == "hinge" and config["loss_options"]["blur_sigma"] == 2.0
    assert config["disc_options"]["backbones"] == ["tf_efficientnet_lite0", "deit_base_distilled_patch16_224"]
    assert config["schedule"].startswith("32:")
    # Beside the recipe, every field of what is built: the generator at its preset's width, D and the loss.
    generator = resolved["generator"]["config"]
    assert generator["channels"] == 1024 and generator["num_levels"] == 10 and generator["img_resolution"] == 512
    assert resolved["discriminator"]["config"]["img_resolution"] == 32
    assert resolved["loss"]["config"] == {
        "blur_sigma": 2.0,
        "blur_fade_kimg": 300.0,
        "cls_weight": 0.0,
        "pl_weight": 0.0,
        "pl_start_kimg": 1000.0,
    }
    assert [s["resolution"] for s in resolved["stages"]] == [32, 64, 128, 256, 512]


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(tmp_path):
    straight = _train_cli(tmp_path / "straight")
    assert straight.wait(timeout=300) == 0, straight.stdout.read()
    expected = _final_state(next((tmp_path / "straight").iterdir()))

    killed = _train_cli(tmp_path / "killed")
    outdir = tmp_path / "killed"
    deadline = time.time() + 300
    while time.time() < deadline:  # kill mid-run, once at least one snapshot beyond the first exists
        runs = list(outdir.iterdir()) if outdir.is_dir() else []
        if runs and len(list_snapshots(runs[0])) >= 2:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    run_dir = next(outdir.iterdir())
    assert latest_snapshot(run_dir) is not None
    resumed = _train_cli(outdir)  # the same command: resumes automatically
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    assert list(outdir.iterdir()) == [run_dir]
    got = _final_state(run_dir)
    for key in ("G/", "D/", "G_ema/", "optimizer/"):
        names = [k for k in expected if k.startswith(key)]
        assert names, key
        assert all(torch.equal(expected[k], got[k]) for k in names), f"{key} differs after resume"


def test_nan_stops_the_run_and_keeps_the_last_good_snapshot(tmp_path, monkeypatch):
    from polyinr.training import losses

    original = losses.NonSaturatingLoss.accumulate_gradients
    calls = {"n": 0}

    def poisoned(self, phase, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 12:  # after the first ticks, the generator's loss turns NaN
            with torch.no_grad():
                next(self.G.synthesis.parameters()).fill_(float("nan"))
        return original(self, phase, *args, **kwargs)

    monkeypatch.setattr(losses.NonSaturatingLoss, "accumulate_gradients", poisoned)
    with pytest.raises(TrainingError, match=r"diverged.*step \d+.*last good snapshot: .*checkpoints"):
        training_loop(_tiny_options(tmp_path))
    run_dir = next(tmp_path.iterdir())
    G = polyinr.load(latest_snapshot(run_dir))
    assert all(torch.isfinite(p).all() for p in G.parameters())


def test_full_disk_during_snapshot_keeps_previous_and_says_so(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    from polyinr import atomic as checkpoint

    original = checkpoint.save_file
    calls = {"n": 0}

    def fail_after_first_snapshot(*args, **kwargs):  # a snapshot writes two tensor files
        calls["n"] += 1
        if calls["n"] > 2:
            raise SafetensorError(
                "Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                '"No space left on device" })'
            )
        return original(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", fail_after_first_snapshot)
    result = CliRunner().invoke(main, ["train", "--outdir", str(tmp_path), *TINY])
    assert result.exit_code == 1
    assert "No space left on device" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()[-1]) > 0
    run_dir = next(tmp_path.iterdir())
    assert latest_snapshot(run_dir) is not None
    polyinr.load(latest_snapshot(run_dir))
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]  # no partial output


def test_progressive_schedule_switches_stage_and_data_resolution(tmp_path):
    ticks = []
    options = _tiny_options(tmp_path, schedule="8:0.016,16:0.016")
    run_dir = training_loop(options, on_tick=ticks.append)
    assert [t.stage.resolution for t in ticks] == [8, 16]
    assert [t.cur_nimg for t in ticks] == [16, 32]
    assert polyinr.load(latest_snapshot(run_dir)).img_resolution == 16


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    one = _train_cli(tmp_path / "one", "--batch-gpu", "4", "--kimg", "0.032")
    assert one.wait(timeout=300) == 0, one.stdout.read()
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29533",
        "-m",
        "polyinr",
        "train",
        "--outdir",
        str(tmp_path / "two"),
        *TINY,
        "--batch-gpu",
        "4",
        "--kimg",
        "0.032",
    ]
    two = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stdout + two.stderr
    a = _final_state(next((tmp_path / "one").iterdir()))
    b = _final_state(next((tmp_path / "two").iterdir()))
    for key in [k for k in a if k.startswith(("G/", "D/", "G_ema/")) and "w_avg" not in k]:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-6), key


def test_projected_discriminator_trains_with_hinge_blur_and_metrics(tmp_path):
    options = _tiny_options(
        tmp_path,
        resolution=16,
        disc="projected",
        loss="hinge",
        kimg=0.032,
        metrics=("cas0.05k",),
        loss_options={"blur_sigma": 1.0},
        disc_options={"pretrained": False},
    )
    assert options.disc_options["backbones"] == ["tf_efficientnet_lite0"]  # the cpu recipe's projected D
    heads = []

    def remember(tick):
        heads.append({k: v for k, v in _final_state(run_dir_of(tmp_path)).items() if ".heads." in k})

    with pytest.raises(PolyinrError, match="metrics at snapshots need an evaluator"):
        training_loop(options)
    run_dir = training_loop(options, on_tick=remember, evaluate=evaluate_snapshot)
    assert any(not torch.equal(heads[0][k], heads[-1][k]) for k in heads[0])  # the heads learn
    state = _final_state(run_dir)
    assert not any(".features." in k for k in state if k.startswith("D/"))  # frozen backbone: not stored
    fingerprints = [
        json.loads((p / "training_state.json").read_text())["frozen_fingerprints"]["D"] for p in list_snapshots(run_dir)
    ]
    assert len(set(fingerprints)) == 1  # the frozen backbone and projections never changed
    lines = (run_dir / "metric-cas0.05k.jsonl").read_text().splitlines()
    assert lines and "cas0.05k" in json.loads(lines[-1])["results"]


def test_resume_refuses_different_frozen_features(tmp_path):
    from polyinr.discriminators import create_discriminator
    from polyinr.training.snapshot import load_snapshot, save_snapshot

    def make_D():
        torch.manual_seed(0)
        return create_discriminator(
            "projected", 16, 0, backbones=["tf_efficientnet_lite0"], pretrained=False, interp224=False
        )

    D = make_D()
    G = polyinr.create("poly-inr", preset="cpu", channels=16, num_levels=2, img_resolution=16)
    path = save_snapshot(tmp_path, 64, G, {"D": D}, {}, {"step": 1}, keep=1)
    size = (path / STATE_WEIGHTS).stat().st_size
    assert size < sum(t.numel() * 4 for t in D.state_dict().values()) / 2  # the frozen backbone is left out
    same = make_D()
    load_snapshot(path, {"D": same}, {})
    assert all(torch.equal(a, b) for a, b in zip(D.state_dict().values(), same.state_dict().values()))
    other = make_D()
    with torch.no_grad():
        next(p for n, p in other.named_parameters() if "backbone" in n or not p.requires_grad).add_(1.0)
    with pytest.raises(CheckpointError, match="frozen parts of D"):
        load_snapshot(path, {"D": other}, {})


def run_dir_of(outdir: Path) -> Path:
    return next(p for p in outdir.iterdir() if p.is_dir())


def test_schedule_beyond_the_images_is_refused_and_per_stage_files_are_used(tmp_path):
    from polyinr.data.prepare import prepare_dataset

    for resolution in (8, 16):
        prepare_dataset("builtin:digits", tmp_path / f"digits{resolution}.zip", resolution, max_images=64)
    small = _tiny_options(tmp_path / "runs", data=str(tmp_path / "digits8.zip"), schedule="8:0.016,16:0.016")
    with pytest.raises(PolyinrError, match=r"8x8 .*trains at 16x16.*\{res\}"):
        training_loop(small)
    missing = _tiny_options(tmp_path / "runs", data=str(tmp_path / "digits{res}.zip"), schedule="8:0.016,32:0.016")
    with pytest.raises(PolyinrError, match=r"digits32\.zip, which does not exist"):
        training_loop(missing)
    ticks = []
    per_stage = _tiny_options(tmp_path / "runs", data=str(tmp_path / "digits{res}.zip"), schedule="8:0.016,16:0.016")
    training_loop(per_stage, on_tick=ticks.append)
    assert [t.stage.resolution for t in ticks] == [8, 16]


def test_a_run_directory_works_as_a_network(tmp_path):
    run_dir = training_loop(_tiny_options(tmp_path))
    out = tmp_path / "images"
    result = CliRunner().invoke(
        main, ["generate", "--network", str(run_dir), "--seeds", "0-1", "--class", "3", "--outdir", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["seed0000.png", "seed0001.png"]
    empty_run = tmp_path / "00099-empty"
    (empty_run / "checkpoints").mkdir(parents=True)
    result = CliRunner().invoke(main, ["info", str(empty_run)])
    assert result.exit_code == 1 and "no complete snapshot yet" in result.output


@pytest.mark.slow
def test_worker_processes_train_bit_identically_and_resume_exactly(tmp_path, monkeypatch):
    from polyinr.data.datasets import ImageDataset

    readers = tmp_path / "readers"
    readers.mkdir()
    original = ImageDataset.__getitem__

    def recorded(self, idx):
        (readers / str(os.getpid())).touch()
        return original(self, idx)

    monkeypatch.setattr(ImageDataset, "__getitem__", recorded)
    zero = training_loop(_tiny_options(tmp_path / "zero", kimg=0.032))
    two = training_loop(_tiny_options(tmp_path / "two", kimg=0.032, workers=2))
    assert len({int(p.name) for p in readers.iterdir()} - {os.getpid()}) == 2  # two worker processes read images
    expected = _final_state(zero)
    assert expected.keys() == _final_state(two).keys()
    assert all(torch.equal(expected[k], _final_state(two)[k]) for k in expected)
    # Resume with workers: drop the newest snapshot, run the same command, land on the same bits.
    newest = latest_snapshot(two)
    shutil.rmtree(newest)
    (two / "checkpoints" / "latest").unlink()
    assert latest_snapshot(two) is not None
    assert training_loop(_tiny_options(tmp_path / "two", kimg=0.032, workers=2)) == two
    got = _final_state(two)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
