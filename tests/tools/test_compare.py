"""polyinr compare: a complete report for two tiny models, resume after a crash, one-line refusals."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from polyinr.cli import main
from polyinr.errors import PolyinrError
from polyinr.metrics.features import Detector
from polyinr.tools import compare as cmp
from polyinr.tools.compare.runs import training_options


class TinyDetector(Detector):
    """A random conv net on 8×8 box-averaged images (stands in for Inception: no weights, fast)."""

    provides = ("pool",)

    def __init__(self, name: str, seed: int = 0) -> None:
        super().__init__()
        self.name = name
        self.register_buffer("conv", torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(seed)) / 3)

    def forward(self, images, features=("pool",)):
        x = torch.nn.functional.adaptive_avg_pool2d(images.float() / 127.5 - 1, 8)
        return {"pool": torch.tanh(torch.nn.functional.conv2d(x, self.conv, padding=1)).mean(dim=(2, 3))}


TINY = dict(
    data="builtin:digits",
    models=("poly-inr", "inr-gan"),
    kimg=0.032,
    batch=16,
    resolution=16,
    snap_kimg=0.016,
    metrics=("rfid0.02k_full", "fid0.02k_full", "eqt0.01k_int", "eqr0.01k"),
    seeds=(0, 1),
    big_render=32,
)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYINR_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.slow
def test_complete_report_and_resume_after_a_crash(tmp_path):
    settings = cmp.CompareSettings(**TINY)
    out = tmp_path / "cmp"
    tiny = {"inception": TinyDetector("tiny-a"), "inception-random": TinyDetector("tiny-b", seed=1)}

    def crash_inr_gan(model, cur, total):
        if model == "inr-gan":
            raise KeyboardInterrupt  # a kill in the middle of the second model's training

    with pytest.raises(KeyboardInterrupt):
        list(cmp.run_comparison(settings, out, on_step=crash_inr_gan, detectors=tiny))
    first = cmp.finished_run(out, settings, "poly-inr")
    assert first is not None and cmp.finished_run(out, settings, "inr-gan") is None
    stats_before = (first / "stats.jsonl").read_text()

    events = list(cmp.run_comparison(settings, out, command="test", detectors=tiny))
    kinds = {(e.kind, e.model) for e in events}
    assert ("skip", "poly-inr") in kinds and ("train", "inr-gan") in kinds
    assert (first / "stats.jsonl").read_text() == stats_before  # the finished model was not trained again

    report = json.loads((out / "report.json").read_text())
    for model in ("poly-inr", "inr-gan"):
        cells = report["models"][model]
        for name in (
            "parameters",
            "macs_per_pixel",
            "train_speed",
            "render_1x",
            "render_4x",
            "big_render_memory",
            "rfid0.02k_full",
            "fid0.02k_full",
            "eqt0.01k_int",
            "eqr0.01k",
            "sample_sheet",
        ):
            cell = cells[name]
            assert cell["value"] is not None or cell["note"], (model, name)  # filled, or explained
        assert cells["render_4x"]["value"] > 0 and cells["big_render_memory"]["unit"] == "MiB"
        assert f"({cmp.SPEED_PIXELS:,} px)" in cells["render_1x"]["note"] and cells["render_1x"]["value"] > 0
        assert (out / f"samples-{model}.png").is_file()
    md = (out / "report.md").read_text()
    assert "| multiply-adds / pixel |" in md and "MP/s" in md and "img/s" in md
    assert (out / "curve.png").is_file() and (out / "speed_quality.png").is_file()

    again = list(cmp.run_comparison(settings, out, detectors=tiny))  # everything cached: nothing trains
    assert not any(e.kind == "train" for e in again)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--models", "poly-inr,no-such-model"], "unknown model 'no-such-model'"),
        (["--models", "poly-inr", "--metrics", "fid50k,bogus"], "unknown metric"),
        (["--models", "poly-inr", "--train-seeds", "1,1"], "name one or more different training seeds"),
        (["--models", "poly-inr", "--train-seeds", "x"], "training seeds must look like"),
    ],
)
def test_unknown_models_and_metrics_are_refused_in_one_line(tmp_path, args, needle):
    result = CliRunner().invoke(
        main, ["compare", "--data", "builtin:digits", "--kimg", "1", "--outdir", str(tmp_path / "x"), *args]
    )
    assert result.exit_code != 0 and needle in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_library_refusals():
    with pytest.raises(PolyinrError, match="unknown model"):
        cmp.check_settings(cmp.CompareSettings(data="builtin:digits", models=("nope",)))
    with pytest.raises(PolyinrError, match="cpu' or 'paper"):
        cmp.check_settings(cmp.CompareSettings(data="builtin:digits", models=("poly-inr",), preset="big"))


@pytest.mark.parametrize(
    ("data", "cond", "expected"),
    [
        (
            "builtin:digits",
            True,
            ("fid_digits", "pr_digits", "cas_digits", "scaleinv_fid_S2_digits", "scaleinv_fid_S4_digits"),
        ),
        ("builtin:shapes", False, ("fid_shapes", "pr_shapes", "scaleinv_fid_S2_shapes", "scaleinv_fid_S4_shapes")),
        ("builtin:photos", True, ("fid_photos", "pr_photos", "scaleinv_fid_S2_photos", "scaleinv_fid_S4_photos")),
    ],
)
def test_builtin_data_is_measured_in_its_offline_feature_space_by_default(data, cond, expected):
    settings = cmp.check_settings(cmp.CompareSettings(data=data, models=("poly-inr",), cond=cond))
    assert settings.metrics == (*expected, "eqt0.05k_int", "eqt0.05k_frac", "eqr0.05k")
    assert settings.curve_metric == expected[0]
    offline = [name for name in expected if name.endswith(data.removeprefix("builtin:"))]
    assert all(cmp.detector_unavailable(name) is None for name in offline)  # no weights to download


def test_own_data_on_cpu_is_followed_in_its_own_cheap_space_and_inception_metrics_wait_for_the_end():
    settings = cmp.check_settings(cmp.CompareSettings(data="some/folder", models=("poly-inr",)))
    assert settings.metrics == (
        "fid0.5k_data",
        "pr0.5k_data",
        "rfid0.5k_full",
        "fid0.5k_full",
        "kid0.5k_full",
        "pr0.5k3_full",
        "eqt0.05k_int",
        "eqt0.05k_frac",
        "eqr0.05k",
    )
    assert settings.curve_metric == "fid0.5k_data" and cmp.detector_unavailable("fid0.5k_data") is None
    named = cmp.check_settings(
        cmp.CompareSettings(data="some/folder", models=("poly-inr",), metrics=("kid0.5k_full", "eqr0.05k"))
    )
    assert named.curve_metric == "fid0.5k_data" and named.metrics == ("fid0.5k_data", "kid0.5k_full", "eqr0.05k")
    paper = cmp.check_settings(cmp.CompareSettings(data="some/folder", models=("poly-inr",), preset="paper"))
    assert paper.curve_metric == "fid50k_full" and "fid0.5k_data" not in paper.metrics


def test_dry_run_on_a_folder_names_the_data_space_as_curve_metric(tmp_path):
    args = [
        "compare",
        "--data",
        str(tmp_path / "photos"),
        "--models",
        "poly-inr,inr-gan,stylegan3-t,infinitygan",
        "--resolution",
        "48",
        "--kimg",
        "0.3",
        "--minutes",
        "1",
        "--outdir",
        str(tmp_path / "x"),
        "-n",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.output)
    assert resolved["settings"]["curve_metric"] == "fid0.5k_data"
    assert resolved["settings"]["metrics"][:3] == ["fid0.5k_data", "pr0.5k_data", "rfid0.5k_full"]
    assert "1 min of training (snapshots and their fid0.5k_data aside)" in resolved["budget"]


@pytest.mark.slow
def test_on_a_folder_only_the_curve_metric_runs_at_snapshots_and_the_table_waits_for_the_end(tmp_path, monkeypatch):
    from PIL import Image

    from polyinr.metrics import feature_spaces

    tiny = dataclasses.replace(feature_spaces.DATA_RECIPE, input_size=8, epochs=1, max_images=48)
    monkeypatch.setattr(feature_spaces, "DATA_RECIPE", tiny)
    monkeypatch.setattr(feature_spaces, "_LOADED", {})
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no Inception weights: offline
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(48):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    settings = cmp.CompareSettings(
        **{
            **TINY,
            "data": str(folder),
            "models": ("poly-inr",),
            "metrics": ("fid0.02k_full", "eqt0.01k_int"),
            "seeds": (0,),
        }
    )
    stages = []
    out = tmp_path / "cmp"
    list(cmp.run_comparison(settings, out, command="test", on_progress=lambda *step: stages.append(step[:2])))
    run_dir = cmp.finished_run(out, cmp.check_settings(settings), "poly-inr")
    assert sorted(p.name for p in run_dir.glob("metric-*.jsonl")) == ["metric-fid0.5k_data.jsonl"]
    assert len((run_dir / "metric-fid0.5k_data.jsonl").read_text().splitlines()) == 2  # one line a snapshot
    assert ("poly-inr", f"fid0.5k_data: {feature_spaces.FIT_STAGE}") in stages  # the space's training has a bar
    cells = json.loads((out / "report.json").read_text())["models"]["poly-inr"]
    assert cells["fid0.5k_data"]["value"] > 0 and cells["fid0.5k_data"]["note"].startswith("detector lenet-data (")
    assert cells["fid0.02k_full"]["value"] is None and "not available offline" in cells["fid0.02k_full"]["note"]


def test_feature_space_cells_name_their_detector_and_a_frame_model_its_reason(monkeypatch):
    from polyinr.metrics import feature_spaces
    from polyinr.models.registry import create

    tiny = dataclasses.replace(feature_spaces.RECIPES["digits"], epochs=1, render_resolution=8)
    monkeypatch.setitem(feature_spaces.RECIPES, "digits", tiny)
    monkeypatch.setattr(feature_spaces, "_LOADED", {})
    torch.manual_seed(0)
    G = create("poly-inr", "cpu", img_resolution=8, channels=16).eval()
    cells = cmp.metric_cells(["fid0.01k_digits", "scaleinv_fid0.01k_S2_digits"], G, None, torch.device("cpu"))
    for name in ("fid0.01k_digits", "scaleinv_fid0.01k_S2_digits"):
        assert cells[name].value > 0 and cells[name].note.startswith("detector lenet-digits (trained on")
        assert "fingerprint" in cells[name].note
    frame = create("stylegan3-t", "cpu").eval()
    refused = cmp.metric_cells(["scaleinv_fid0.01k_S4_digits"], frame, None, torch.device("cpu"))
    cell = refused["scaleinv_fid0.01k_S4_digits"]
    assert cell.value is None and cell.note.startswith("stylegan3-t renders its native") and "\n" not in cell.note


def test_render_speed_times_the_same_pixels_a_call_at_both_densities():
    from polyinr.grid import Grid
    from polyinr.models.registry import create

    torch.manual_seed(0)
    G = create("poly-inr", "cpu", img_resolution=8, channels=16).eval()
    device = torch.device("cpu")
    at_1x = cmp.render_speed(G, Grid.frame(8), device, min_pixels=4096, rounds=2)
    at_4x = cmp.render_speed(G, Grid.frame(32), device, min_pixels=4096, rounds=2)
    assert (at_1x.batch, at_4x.batch) == (64, 4)  # 64 renders of 8² and 4 of 32²: 4,096 pixels a call each
    assert at_1x.pixels_per_call == at_4x.pixels_per_call == 4096
    assert at_1x.megapixels_per_s > 0 and at_4x.megapixels_per_s > 0
    assert at_1x.megapixels_per_s == pytest.approx(at_1x.pixels_per_call / at_1x.seconds / 1e6)
    assert "64 a call (4,096 px)" in at_1x.note(Grid.frame(8))
    big = cmp.render_speed(G, Grid.frame(80), device, min_pixels=4096, rounds=1)
    assert (big.batch, big.pixels_per_call) == (1, 6400)  # one render is already enough pixels


def test_native_recipe_is_the_longest_recipe_name_the_model_begins_with():
    assert cmp.native_recipe("stylegan3-t", "paper-256") == "stylegan3"
    assert cmp.native_recipe("stylegan3-r", "paper-256") == "stylegan3-r"
    assert cmp.native_recipe("poly-inr", "ffhq") == "ffhq"
    assert cmp.native_recipe("inr-gan", "cpu") == "cpu"


@pytest.mark.slow
def test_parallel_trains_one_model_per_process_then_reports(tmp_path):
    out = tmp_path / "par"
    args = [
        "compare",
        "--data",
        "builtin:digits",
        "--models",
        "poly-inr,inr-gan",
        "--kimg",
        "0.016",
        "--batch",
        "16",
        "--resolution",
        "16",
        "--outdir",
        str(out),
        "--metrics",
        "eqt0.01k_int",
        "--seeds",
        "0-1",
        "--big-render",
        "32",
        "--parallel",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (out / "logs" / "poly-inr.log").is_file() and (out / "logs" / "inr-gan.log").is_file()
    report = json.loads((out / "report.json").read_text())
    assert set(report["models"]) == {"poly-inr", "inr-gan"} and "--parallel" in report["command"]


@pytest.mark.parametrize(("model", "refused"), [("poly-inr", 0), ("infinitygan", 1), ("stylegan3-t", 2)])
def test_sample_sheet_rows_follow_the_grid_contract(tmp_path, model, refused):
    from polyinr.models.registry import create

    G = create(model, "cpu").eval()
    rows_refused = cmp.sample_sheet(G, [0, 1], tmp_path / "sheet.png", torch.device("cpu"))
    assert len(rows_refused) == refused and all(e.renders.startswith(f"{model} renders") for e in rows_refused.values())
    assert (tmp_path / "sheet.png").is_file()
    cell = cmp.sample_sheet_cell(G, [0, 1], tmp_path / "sheet.png", torch.device("cpu"))
    assert cell.value == "sheet.png" and (cell.refused is None) == (refused == 0)  # the same reason as its empty cells


@pytest.mark.slow
def test_a_model_refused_under_the_settings_fills_its_row_and_the_others_are_reported(tmp_path):
    settings = cmp.CompareSettings(
        **{
            **TINY,
            "models": ("poly-inr", "inr-gan"),
            "kimg": 0.016,
            "resolution": 12,
            "metrics": ("eqt0.01k_int",),
            "seeds": (0,),
        }
    )
    out = tmp_path / "cmp"
    events = list(cmp.run_comparison(settings, out, command="test"))
    reason = "INR-GAN needs power-of-2 resolutions with 4 ≤ input ≤ image, got 8 and 12"
    assert any(e.kind == "refused" and e.model == "inr-gan" and reason in e.text for e in events)
    report = json.loads((out / "report.json").read_text())
    trained, refused = report["models"]["poly-inr"], report["models"]["inr-gan"]
    assert set(refused) == set(trained) and trained["parameters"]["value"] > 0
    assert all(cell["value"] is None and reason in cell["note"] for cell in refused.values())
    assert "refused" in report["training"]["inr-gan"] and (out / "samples-poly-inr.png").is_file()
    md = (out / "report.md").read_text()
    assert md.count(f"not trained: {reason}") == 2  # once as the row's footnote, once in the list of runs
    assert f"- (a) not trained: {reason}" in md and f"- inr-gan: not trained: {reason}" in md
    assert "| parameters | params [" in md and " | — (a) |" in md  # the row's note on its unit, the reason lettered
    assert "samples-inr-gan" not in md

    again = list(cmp.run_comparison(settings, out))  # only the refused model is tried again
    table = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("|")]
    assert table == [line for line in md.splitlines() if line.startswith("|")]  # cached rows keep their order
    assert {(e.kind, e.model) for e in again if e.kind in ("skip", "train", "refused")} == {
        ("skip", "poly-inr"),
        ("train", "inr-gan"),
        ("refused", "inr-gan"),
    }
    (out / "runs" / "inr-gan" / "refused.json").unlink()
    alone = dataclasses.replace(settings, models=("inr-gan",))  # as --parallel trains it: in its own process
    assert [e.kind for e in cmp.run_comparison(alone, out, evaluate=False)] == ["train", "refused"]
    evaluation = list(cmp.run_comparison(settings, out, train=False))  # then reports from the kept refusal
    assert json.loads((out / "report.json").read_text())["models"]["inr-gan"] == refused
    assert not any(e.kind == "evaluate" and e.model == "inr-gan" for e in evaluation)


def test_a_patch_model_trains_at_its_patch_when_the_images_are_smaller(tmp_path):
    settings = cmp.CompareSettings(**{**TINY, "models": ("poly-inr", "infinitygan")})  # 16² images, 37² patches
    assert training_options(settings, "infinitygan", tmp_path).resolution == 37
    assert training_options(settings, "poly-inr", tmp_path).resolution == 16
    larger = dataclasses.replace(settings, resolution=64)
    assert training_options(larger, "infinitygan", tmp_path).resolution == 64


def test_big_render_memory_is_the_rendering_process_own_peak(tmp_path, tiny_G, tiny_ckpt):
    ballast = bytearray(2048 * 2**20)  # this process's pages: a forked child's ru_maxrss would start above them
    ballast[::4096] = b"\1" * len(ballast[::4096])
    cell = cmp.big_render_memory(tiny_G, tiny_ckpt, 64, torch.device("cpu"), tmp_path)
    assert cell.unit == "MiB" and 0 < cell.value < 1500, cell  # the child alone: torch imported and a tiny render
    del ballast


def test_dry_run_prints_when_each_model_stops_and_each_process_share_of_the_cores(tmp_path):
    args = [
        "compare",
        "--data",
        "builtin:digits",
        "--models",
        "poly-inr,inr-gan",
        "--kimg",
        "5",
        "--minutes",
        "3",
        "--until-plateau",
        "--plateau-snapshots",
        "4",
        "--parallel",
        "--outdir",
        str(tmp_path / "x"),
        "-n",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.output)
    assert resolved["budget"] == (
        "each model trains until the first of: 5 kimg; 3 min of training (snapshots and their fid_digits aside); a "
        "plateau of fid_digits, checked at each snapshot: stop when the best fid_digits of the last 4 snapshots is "
        "not lower than the best before them by more than 2.0% of it"
    )
    assert resolved["settings"]["plateau"] == {"margin": 0.02, "patience": 4} and resolved["threads_per_process"] >= 1
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--plateau-margin", "0.1"], "apply only with --until-plateau"),
        (["--until-plateau", "--metrics", "pr_digits"], "needs a curve metric with a better direction"),
        (["--minutes", "0"], "time budget must be positive"),
    ],
)
def test_budget_flags_that_cannot_apply_are_refused_in_one_line(tmp_path, args, needle):
    base = ["compare", "--data", "builtin:digits", "--models", "poly-inr", "--kimg", "1", "--outdir", str(tmp_path)]
    result = CliRunner().invoke(main, [*base, *args])
    assert result.exit_code != 0 and needle in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_time_budget_reports_the_kimg_reached_and_the_training_time(tmp_path):
    settings = cmp.CompareSettings(
        **{**TINY, "models": ("poly-inr",), "minutes": 1e-9, "metrics": ("eqt0.01k_int",), "seeds": (0,)}
    )
    list(cmp.run_comparison(settings, tmp_path, command="test"))
    cells = json.loads((tmp_path / "report.json").read_text())["models"]["poly-inr"]
    why = "stopped early, of 0.032: its 1e-09 min of training were spent"
    assert cells["trained_kimg"]["value"] == 0.016 and cells["trained_kimg"]["note"] == why
    assert cells["training_time"]["unit"] == "min" and cells["training_time"]["value"] >= 0
    md = (tmp_path / "report.md").read_text()
    assert (tmp_path / "samples.png").is_file() and "![samples](samples.png)" in md
    assert "| trained | kimg [" in md and why in md and "0.032 kimg; 1e-09 min of training" in md
    evaluation = next(tmp_path.glob("runs/poly-inr/evaluation.json"))
    cached = json.loads(evaluation.read_text())
    cached["cells"]["trained_kimg"]["note"] = "stale"
    evaluation.write_text(json.dumps(cached))
    list(cmp.run_comparison(settings, tmp_path, command="test"))  # measured from the cache: how far it trained, afresh
    assert json.loads((tmp_path / "report.json").read_text())["models"]["poly-inr"]["trained_kimg"]["note"] == why


def test_every_metric_pass_reports_its_progress_under_the_metric_name():
    from polyinr.models.registry import create

    torch.manual_seed(0)
    G = create("poly-inr", "cpu", img_resolution=8, channels=16).eval()
    seen = []
    cmp.metric_cells(["eqt0.01k_int"], G, None, torch.device("cpu"), on_progress=lambda *step: seen.append(step))
    assert seen and all(stage.startswith("eqt0.01k_int: ") for stage, _, _ in seen)
    assert seen[-1][1] == seen[-1][2] == 10  # the pass ran to its end


def test_report_shows_one_number_a_cell_with_each_note_and_reason_once_and_reads_the_table(tmp_path):
    models = ("poly-inr", "inr-gan", "infinitygan")
    settings = cmp.check_settings(cmp.CompareSettings(data="builtin:digits", models=models))
    lenet = "detector lenet-digits (trained on the built-in digits)"
    reason = "infinitygan trains 37x37 patches cut from the images"
    rows = {
        "poly-inr": {
            "fid_digits": cmp.Cell(12.0, "", lenet),
            "parameters": cmp.Cell(1000, "params"),
            "render_4x": cmp.Cell(2.0, "MP/s", "64x64 renders, 4 a call"),
        },
        "inr-gan": {
            "fid_digits": cmp.Cell(15.0, "", lenet),
            "parameters": cmp.Cell(4000, "params"),
            "render_4x": cmp.Cell(None, note="cannot: inr-gan renders its native frame only"),
        },
        "infinitygan": {
            name: cmp.Cell(None, note=f"not trained: {reason}") for name in ("fid_digits", "parameters", "render_4x")
        },
    }
    training = {
        "poly-inr": {"recipe": "cpu", "preset": "cpu", "runs": {"0": {"run_dir": "r1", "kimg": 1.0}}},
        "inr-gan": {"recipe": "cpu", "preset": "cpu", "runs": {"0": {"run_dir": "r2", "kimg": 1.0}}},
        "infinitygan": {"refused": reason},
    }
    md_path, _ = cmp.write_report(tmp_path, settings, rows, "test", training, [])
    md = md_path.read_text()
    assert "| | unit | poly-inr | inr-gan | infinitygan |" in md
    assert "| fid_digits |  [1] | 12 | 15 | — (a) |" in md  # the shared detector: once, on the row
    assert "| parameters | params | 1,000 | 4,000 | — (a) |" in md
    assert "| rendering, 4× density (4× per side) | MP/s [2] | 2 | — (b) | — (a) |" in md
    assert md.count(lenet) == 1 and md.count(reason) == 2  # the footnote, and the list of runs
    assert "- [1] " + lenet in md and f"- (a) not trained: {reason}" in md and "- (b) cannot: inr-gan renders" in md
    assert "Reading the table: fid_digits: poly-inr leads with 12, 3 (20%) lower than inr-gan." in md
    assert "parameters: poly-inr leads with 1,000 params, 3,000 params (75%) lower than inr-gan." in md


def test_combined_sheet_puts_every_model_sheet_under_its_name(tmp_path):
    from PIL import Image

    from polyinr.tools.compare.sheets import LABEL_HEIGHT, combine_sheets

    Image.new("RGB", (40, 20), "red").save(tmp_path / "a.png")
    Image.new("RGB", (30, 10), "blue").save(tmp_path / "b.png")
    out = combine_sheets({"poly-inr": tmp_path / "a.png", "inr-gan": tmp_path / "b.png"}, tmp_path / "samples.png")
    combined = Image.open(out)
    assert combined.size == (40, 2 * LABEL_HEIGHT + 30)
    assert combined.getpixel((0, LABEL_HEIGHT)) == (255, 0, 0) and combined.getpixel((0, 2 * LABEL_HEIGHT + 20)) == (
        0,
        0,
        255,
    )


def test_the_exact_leader_of_a_measurement_is_read_without_an_infinite_lead():
    from polyinr.tools.compare.reading import reading_the_table

    rows = {
        "poly-inr": {"eqt0.01k_int": cmp.Cell(float("inf"), "dB")},
        "inr-gan": {"eqt0.01k_int": cmp.Cell(18.76, "dB")},
    }
    (sentence,) = reading_the_table(rows, ["eqt0.01k_int"], lambda _name: False, {})
    assert sentence == "eqt0.01k_int: poly-inr leads with inf dB (exact); next is inr-gan at 18.76 dB."


def test_a_comparison_stopped_at_a_plateau_measures_its_best_curve_snapshot(tmp_path, tiny_G):
    from polyinr.tools.compare.measure import measured_snapshot, training_reached
    from polyinr.training.plateau import PlateauRule
    from polyinr.training.snapshot import record_metrics, save_snapshot

    for kimg, fid in ((4, 30.0), (8, 12.0), (12, 20.0), (16, 25.0)):  # the curve worsens after 8 kimg
        counters = {"stage": 0, "cur_nimg": kimg * 1000}
        path = save_snapshot(tmp_path, kimg * 1000, tiny_G, {"G_ema": tiny_G}, {}, counters, keep=99)
        record_metrics(path, {"fid_digits": {"fid_digits": fid}})
    settings = cmp.CompareSettings(data="builtin:digits", models=("poly-inr",), kimg=20, curve_metric="fid_digits")
    latest = tmp_path / "checkpoints" / "000016"
    assert measured_snapshot(settings, tmp_path, latest).name == "000016"  # no plateau rule: the newest
    at_plateau = dataclasses.replace(settings, plateau=PlateauRule(patience=2))
    best = measured_snapshot(at_plateau, tmp_path, latest)
    assert best.name == "000008"
    reached = training_reached(at_plateau, latest, best)
    assert reached["trained_kimg"].value == 16
    assert reached["trained_kimg"].note == (
        "stopped early, of 20: fid_digits reached a plateau; measured at its best fid_digits snapshot, 8 kimg"
    )


def test_a_run_stopped_early_says_whether_its_time_or_its_plateau_ended_it(tmp_path, tiny_G):
    from polyinr.tools.compare.measure import training_reached
    from polyinr.training.plateau import PlateauRule
    from polyinr.training.snapshot import save_snapshot

    settings = cmp.CompareSettings(
        data="builtin:digits",
        models=("poly-inr",),
        kimg=20,
        minutes=1,
        curve_metric="fid_digits",
        plateau=PlateauRule(patience=2),
    )
    notes = {}
    for name, seconds in (("time", 60.0), ("plateau", 30.0)):
        counters = {"stage": 0, "train_seconds": seconds}
        path = save_snapshot(tmp_path / name, 8000, tiny_G, {"G_ema": tiny_G}, {}, counters, keep=99)
        notes[name] = training_reached(settings, path, path)["trained_kimg"].note
    assert notes == {
        "time": "stopped early, of 20: its 1 min of training were spent",
        "plateau": "stopped early, of 20: fid_digits reached a plateau",
    }


def test_one_model_grid_refusals_share_one_lettered_footnote():
    from polyinr.tools.compare.table import markdown_table

    renders = "stylegan3-t renders its native 16x16 frame, translated or rotated (no other window, density or tile)"
    rows = {
        "stylegan3-t": {
            "scaleinv": cmp.Cell(
                None, note=f"{renders}: not a 32x32 grid over (-0.5, -0.5)–(1.5, 1.5)", refused=renders
            ),
            "render_4x": cmp.Cell(None, note=f"{renders}: not a 64x64 grid over (0, 0)–(1, 1)", refused=renders),
            "big_render_memory": cmp.Cell(
                None, note=f"cannot: {renders}: not a 4096x4096 grid over (0, 0)–(1, 1)", refused=renders
            ),
        }
    }
    lines = markdown_table(rows, ["scaleinv", "render_4x", "big_render_memory"], {})
    assert all(line.endswith("| — (a) |") for line in lines[2:5])
    assert lines[6:] == [f"- (a) {renders}"]


@pytest.mark.slow
def test_several_training_seeds_train_a_run_each_and_the_table_gives_their_mean(tmp_path):
    settings = cmp.CompareSettings(
        **{**TINY, "models": ("poly-inr",), "metrics": ("fid0.02k_full",), "train_seeds": (0, 3)}
    )
    out = tmp_path / "cmp"
    tiny = {"inception": TinyDetector("tiny-a")}
    events = list(cmp.run_comparison(settings, out, command="test", detectors=tiny))
    assert [e.text for e in events if e.kind == "train"] == ["training (seed 0)", "training (seed 3)"]
    first, other = cmp.finished_run(out, settings, "poly-inr", 0), cmp.finished_run(out, settings, "poly-inr", 3)
    assert first.parent == out / "runs" / "poly-inr" and other.parent == out / "runs" / "poly-inr" / "seed-3"
    assert json.loads((first / "training_options.json").read_text())["seed"] == 0
    assert json.loads((other / "training_options.json").read_text())["seed"] == 3

    report = json.loads((out / "report.json").read_text())
    fid = report["models"]["poly-inr"]["fid0.02k_full"]
    assert set(fid["per_seed"]) == {"0", "3"} and fid["value"] == pytest.approx(np.mean(list(fid["per_seed"].values())))
    assert report["models"]["poly-inr"]["parameters"]["per_seed"] is None  # the same for every seed: measured once
    assert set(report["training"]["poly-inr"]["runs"]) == {"0", "3"}
    md = (out / "report.md").read_text()
    assert "once with each training seed (0, 3)" in md and "the mean of 2 training runs per model (seeds 0, 3)" in md
    assert "seed 3: `" in md
    assert not any(e.kind == "train" for e in cmp.run_comparison(settings, out, detectors=tiny))  # all cached


def test_a_seeds_row_is_the_mean_of_what_differs_with_each_value_and_note_kept():
    rows = {
        0: {
            "parameters": cmp.Cell(1000, "params"),
            "trained_kimg": cmp.Cell(80.0, "kimg"),
            "fid_digits": cmp.Cell(7.0, "", "detector lenet"),
            "cas_digits": cmp.Cell(None, note="no labels"),
        },
        1: {
            "trained_kimg": cmp.Cell(60.0, "kimg", "stopped early, of 80"),
            "fid_digits": cmp.Cell(9.0, "", "detector lenet"),
            "cas_digits": cmp.Cell(None, note="no labels"),
        },
    }
    row = cmp.combine_seeds(rows)
    assert list(row) == ["parameters", "trained_kimg", "fid_digits", "cas_digits"]  # the first seed's order
    assert row["parameters"] == rows[0]["parameters"]  # measured once
    assert (row["fid_digits"].value, row["fid_digits"].note) == (8.0, "detector lenet")
    assert row["fid_digits"].per_seed == {"0": 7.0, "1": 9.0}
    assert (row["trained_kimg"].value, row["trained_kimg"].note) == (70.0, "seed 1: stopped early, of 80")
    assert row["cas_digits"].value is None and row["cas_digits"].note == "no labels"
    assert cmp.combine_seeds({0: rows[0]}) == rows[0]


@pytest.mark.parametrize(
    ("second", "verdict"), [((9.0, 11.0), "the ranges do not overlap"), ((7.5, 12.5), "the ranges overlap")]
)
def test_the_reading_gives_the_leaders_range_over_seeds_and_whether_it_overlaps(second, verdict):
    from polyinr.tools.compare.reading import reading_the_table

    rows = {
        "poly-inr": {"fid_digits": cmp.Cell(7.0, "", per_seed={"0": 6.0, "1": 8.0})},
        "inr-gan": {"fid_digits": cmp.Cell(10.0, "", per_seed={"0": second[0], "1": second[1]})},
    }
    (sentence,) = reading_the_table(rows, ["fid_digits"], lambda _name: True, {})
    assert sentence.startswith("fid_digits: poly-inr leads with 7, 3 (30%) lower than inr-gan; over 2 seeds ")
    assert f"poly-inr ranges 6–8 and inr-gan {second[0]:g}–{second[1]:g}: {verdict}" in sentence


def test_a_models_grid_refusals_share_one_letter_with_its_partly_made_sample_sheet(tmp_path):
    settings = cmp.check_settings(cmp.CompareSettings(data="builtin:digits", models=("poly-inr", "stylegan3-t")))
    renders = "stylegan3-t renders its native 16x16 frame, translated or rotated"
    rows = {
        "poly-inr": {
            "render_4x": cmp.Cell(2.0, "MP/s"),
            "scaleinv_fid_S2_digits": cmp.Cell(30.0, ""),
            "sample_sheet": cmp.Cell("samples-poly-inr.png"),
        },
        "stylegan3-t": {
            "render_4x": cmp.Cell(None, note=f"{renders}: not a 64x64 grid over (0, 0)–(1, 1)", refused=renders),
            "scaleinv_fid_S2_digits": cmp.Cell(None, note=f"{renders}: not a 32x32 grid", refused=renders),
            "sample_sheet": cmp.Cell("samples-stylegan3-t.png", "", "without the 4x denser rows", renders),
        },
    }
    training = {m: {"recipe": "cpu", "preset": "cpu", "runs": {"0": {"run_dir": m, "kimg": 1.0}}} for m in rows}
    md = cmp.write_report(tmp_path, settings, rows, "test", training, [])[0].read_text()
    assert "| 2 | — (a) |" in md and "| 30 | — (a) |" in md
    assert "| samples-poly-inr.png | samples-stylegan3-t.png [1] (a) |" in md
    assert md.count(renders) == 1 and f"- (a) {renders}" in md and "- [1] without the 4x denser rows" in md


def test_the_curve_metric_recorded_at_the_measured_snapshot_is_not_measured_again():
    recorded = {"fid0.02k_full": {"fid0.02k_full": 123.0}}
    tiny = {"inception": TinyDetector("tiny-a")}
    cells = cmp.metric_cells(["fid0.02k_full"], None, None, torch.device("cpu"), tiny, recorded=recorded)
    assert cells["fid0.02k_full"].value == 123.0 and cells["fid0.02k_full"].note == "detector tiny-a"


def test_curve_axis_is_logarithmic_when_the_curve_spans_decades():
    from polyinr.tools.compare.plots import curve_scale

    assert curve_scale([968.0, 259.6, 14.8, 7.7]) == "log"  # an FID from hundreds to single figures
    assert curve_scale([0.62, 0.91, 0.955]) == "linear"  # a recognition rate
    assert curve_scale([5.0, -1.0, 400.0]) == "linear"  # a value a log axis cannot show
    assert curve_scale([float("inf"), 3.0, 4.0]) == "linear"  # an exact equivariance is not a span
    assert curve_scale([]) == "linear"
