"""Stages ended by a metric plateau: a stage but the last ends at the snapshot where its own snapshots' first
metric has stopped improving, the next starts right there, and a resumed run rebuilds the same stages."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from staged_runs import STAGED, Stop, assert_same_final_state, stop_at

from polyinr.checkpoint import STATE_JSON, list_snapshots
from polyinr.cli import main
from polyinr.errors import PolyinrError
from polyinr.training.loop import training_loop
from polyinr.training.options import resolve_options
from polyinr.training.plateau import PlateauRule
from polyinr.training.schedule import Stage, build_stages

pytestmark = pytest.mark.usefixtures("one_thread")

RULE = PlateauRule(margin=0.1, patience=2)
# Six steps of 8 images at 8² (at most), then two at 16²; a snapshot after every step. The scripted score stops
# improving at 32 images: 10, 8, 7.9, 7.8 (the last two gain 0.2 on 8, within 10 %), then 7 on.
SCORES = {8: 10.0, 16: 8.0, 24: 7.9, 32: 7.8}
LONG_FIRST = {**STAGED, "schedule": "8:0.048,16:0.016", "metrics": ("score",)}


def _options(outdir, **overrides):
    return resolve_options("cpu", outdir=str(outdir), **{**LONG_FIRST, **overrides})


def _scripted_score(names, G, dataset, run_dir, snapshot, device):
    nimg = round(float(snapshot.name) * 1000)
    return {"score": {"results": {"score": SCORES.get(nimg, 7.0)}, "detector": "none"}}


def _goal(name):
    return ("score", True)


def _run(outdir, goal=_goal, **kwargs):
    return training_loop(_options(outdir, stage_plateau=RULE), evaluate=_scripted_score, goal=goal, **kwargs)


def _counters(run_dir) -> list[dict]:
    return [json.loads((s / STATE_JSON).read_text()) for s in list_snapshots(run_dir)]


def test_the_first_stage_ends_at_its_plateau_and_the_second_starts_there(tmp_path):
    messages, ticks = [], []
    run_dir = _run(tmp_path, on_message=messages.append, on_tick=ticks.append)
    assert [(t.cur_nimg, t.stage.resolution) for t in ticks] == [(8, 8), (16, 8), (24, 8), (32, 8), (40, 16), (48, 16)]
    assert ticks[-1].total_nimg == 48 and ticks[-1].stage == Stage(1, 16, 32, 48)  # 16 kimg sooner, its own length
    assert any(m.startswith("stage 1/2 ends at 0.032 kimg: score has reached a plateau") for m in messages)
    assert [c["stage_ends"] for c in _counters(run_dir)] == [[]] * 4 + [[32]] * 2
    assert "G from the G_ema of snapshot 000000.032" in (run_dir / "log.txt").read_text()  # the stage's best


@pytest.mark.parametrize("stop", [32, 40], ids=["at-the-plateau", "after-the-early-end"])
def test_a_resumed_run_rebuilds_the_same_stages_bit_for_bit(tmp_path, stop):
    uninterrupted = _run(tmp_path / "whole")
    with pytest.raises(Stop):
        _run(tmp_path / "resumed", on_tick=stop_at(stop))
    ticks = []
    resumed = _run(tmp_path / "resumed", on_tick=ticks.append)
    assert [(t.cur_nimg, t.stage.index) for t in ticks] == [(n, n > 32) for n in range(stop + 8, 56, 8)]
    assert [c["stage_ends"] for c in _counters(resumed)] == [c["stage_ends"] for c in _counters(uninterrupted)]
    assert_same_final_state(uninterrupted, resumed, f"at {stop} images")


def test_without_the_rule_every_stage_runs_its_kimg(tmp_path):
    ticks = []
    training_loop(_options(tmp_path), evaluate=_scripted_score, goal=_goal, on_tick=ticks.append)
    assert [(t.cur_nimg, t.stage.index) for t in ticks] == [(n, n > 48) for n in range(8, 72, 8)]
    assert build_stages([(8, 0.048), (16, 0.016)]) == [Stage(0, 8, 0, 48), Stage(1, 16, 48, 64)]


def test_stage_ends_rebuild_the_schedule_within_its_bounds():
    assert build_stages([(8, 0.048), (16, 0.016)], [32]) == [Stage(0, 8, 0, 32), Stage(1, 16, 32, 48)]
    with pytest.raises(PolyinrError, match="stage 1 cannot end at 56 images: it runs from 0 to 48"):
        build_stages([(8, 0.048), (16, 0.016)], [56])
    with pytest.raises(PolyinrError, match="the last ends by kimg"):
        build_stages([(8, 0.048), (16, 0.016)], [32, 40])


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (dict(metrics=()), "needs metrics at snapshots"),
        (dict(schedule=None, resolution=8, kimg=0.016), "needs a schedule of two or more stages"),
    ],
)
def test_bad_settings_are_one_line(tmp_path, overrides, problem):
    with pytest.raises(PolyinrError, match=problem) as error:
        _options(tmp_path, stage_plateau=True, **overrides)
    assert "\n" not in str(error.value)


def test_a_metric_that_ranks_nothing_is_refused_in_one_line(tmp_path):
    with pytest.raises(PolyinrError, match="needs a first metric at snapshots that ranks them") as error:
        _run(tmp_path, goal=lambda name: None)
    assert "\n" not in str(error.value) and not any(tmp_path.iterdir())  # refused before a run directory


def test_the_stylegan_xl_recipe_ends_stages_at_a_plateau_of_its_metric():
    xl = dict(model="stylegan-xl", data="builtin:digits")
    assert resolve_options("stylegan-xl", metrics=("fid50k_full",), **xl).stage_plateau == PlateauRule()
    assert resolve_options("stylegan-xl", **xl).stage_plateau is None  # no metric to watch: by kimg
    assert resolve_options("stylegan-xl", metrics=("fid50k_full",), stage_plateau=False, **xl).stage_plateau is None


def test_the_flags_set_the_rule_and_the_dry_run_prints_it():
    base = ["train", "--recipe", "stylegan-xl", "--model", "stylegan-xl", "--data", "builtin:digits", "-n"]
    result = CliRunner().invoke(main, [*base, "--metrics", "fid50k_full", "--plateau-snapshots", "5"])
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.output)
    assert resolved["training"]["stage_plateau"] == {"margin": 0.02, "patience": 5}
    assert "fid50k_full of the last 5 snapshots" in resolved["stage_end"]
    result = CliRunner().invoke(main, [*base, "--no-stage-plateau", "--plateau-margin", "0.1"])
    assert result.exit_code != 0 and result.output.strip().count("\n") == 0
    assert "do not apply with --no-stage-plateau" in result.output
