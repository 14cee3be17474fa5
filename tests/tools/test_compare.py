"""polyinr compare: a complete report for two tiny models, resume after a crash, one-line refusals."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from polyinr.cli import main
from polyinr.errors import PolyinrError
from polyinr.metrics.features import Detector
from polyinr.tools import compare as cmp


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


TINY = dict(data="builtin:digits", models=("poly-inr", "inr-gan"), kimg=0.032, batch=16, resolution=16,
            snap_kimg=0.016, metrics=("rfid0.02k_full", "fid0.02k_full", "eqt0.01k_int", "eqr0.01k"),
            seeds=(0, 1), big_render=32)  # fmt: skip


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
        for name in ("parameters", "macs_per_pixel", "train_speed", "render_1x", "render_4x", "big_render_memory",
                     "rfid0.02k_full", "fid0.02k_full", "eqt0.01k_int", "eqr0.01k", "sample_sheet"):  # fmt: skip
            cell = cells[name]
            assert cell["value"] is not None or cell["note"], (model, name)  # filled, or explained
        assert cells["render_4x"]["value"] > 0 and cells["big_render_memory"]["unit"] == "MiB"
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


def test_native_recipe_is_the_longest_recipe_name_the_model_begins_with():
    assert cmp.native_recipe("stylegan3-t", "paper-256") == "stylegan3"
    assert cmp.native_recipe("stylegan3-r", "paper-256") == "stylegan3-r"
    assert cmp.native_recipe("poly-inr", "ffhq") == "ffhq"
    assert cmp.native_recipe("inr-gan", "cpu") == "cpu"


@pytest.mark.slow
def test_parallel_trains_one_model_per_process_then_reports(tmp_path):
    out = tmp_path / "par"
    args = ["compare", "--data", "builtin:digits", "--models", "poly-inr,inr-gan", "--kimg", "0.016", "--batch", "16",
            "--resolution", "16", "--outdir", str(out), "--metrics", "eqt0.01k_int", "--seeds", "0-1",
            "--big-render", "32", "--parallel"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (out / "logs" / "poly-inr.log").is_file() and (out / "logs" / "inr-gan.log").is_file()
    report = json.loads((out / "report.json").read_text())
    assert set(report["models"]) == {"poly-inr", "inr-gan"} and "--parallel" in report["command"]


@pytest.mark.parametrize(("model", "refused"), [("poly-inr", 0), ("infinitygan", 1), ("stylegan3-t", 2)])
def test_sample_sheet_rows_follow_the_grid_contract(tmp_path, model, refused):
    from polyinr.models.registry import create

    G = create(model, "cpu").eval()
    notes = cmp.sample_sheet(G, [0, 1], tmp_path / "sheet.png", torch.device("cpu"))
    assert len(notes) == refused and all(model in note for note in notes)  # the contract's one-line reason
    assert (tmp_path / "sheet.png").is_file()
