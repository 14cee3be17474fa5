"""The plateau rule (a pure function of the metric's history) and the loop's early ends: time budget, plateau."""

from __future__ import annotations

import json

import pytest

from polyinr.checkpoint import STATE_JSON, latest_snapshot
from polyinr.errors import PolyinrError
from polyinr.training.loop import training_loop
from polyinr.training.options import resolve_options
from polyinr.training.plateau import PlateauRule, plateaued

RULE = PlateauRule(margin=0.1, patience=2)


@pytest.mark.parametrize(
    ("values", "lower", "expected"),
    [
        ([10.0, 8.0], True, False),  # no more snapshots than the rule watches: too early to tell
        ([10.0, 8.0, 7.5, 7.4], True, True),  # the last two gain 0.6 on 8.0: within 10 % of it
        ([10.0, 8.0, 7.5, 7.0], True, False),  # a gain of 1.0 on 8.0: more than 10 %
        ([10.0, 8.0, 9.0, 8.5], True, True),  # worse than the earlier best: no gain at all
        ([50.0, 60.0, 62.0, 65.0], False, True),  # higher is better: 65 gains 5 on 60, within 6
        ([50.0, 60.0, 62.0, 70.0], False, False),
        ([10.0, 8.0, float("nan"), 7.9, 7.8], True, True),  # non-finite values are ignored
    ],
)
def test_plateau_compares_the_best_of_the_last_snapshots_with_the_best_before(values, lower, expected):
    history = [(0.5 * i, v) for i, v in enumerate(values)]
    assert plateaued(history, lower, RULE) is expected
    assert plateaued(list(reversed(history)), lower, RULE) is expected  # ordered by kimg, not by position


def test_plateau_rule_refuses_nonsense_and_reads_as_a_sentence():
    with pytest.raises(PolyinrError, match="margin"):
        PlateauRule(margin=-0.1)
    with pytest.raises(PolyinrError, match="at least 1 snapshot"):
        PlateauRule(patience=0)
    assert RULE.describe("fid", True) == (
        "stop when the best fid of the last 2 snapshots is not lower than the best before them by more than 10.0% of it"
    )


# 8 steps of 8 images on 8×8 digits, a snapshot after every step; the "metric" is scripted.
def _options(outdir):
    return resolve_options(
        "cpu",
        data="builtin:digits",
        resolution=8,
        batch=8,
        kimg=0.064,
        tick_kimg=0.008,
        snap_ticks=1,
        workers=0,
        device="cpu",
        seed=3,
        outdir=str(outdir),
        metrics=("score",),
        model_overrides={"channels": 16},
    )


def _constant_score(names, G, dataset, run_dir, snapshot, device):
    return {"score": {"results": {"score": 5.0}, "detector": "none"}}


def _reached_nimg(run_dir) -> int:
    return json.loads((latest_snapshot(run_dir) / STATE_JSON).read_text())["cur_nimg"]


def _goal(name):
    return ("score", True)


def test_a_plateau_ends_the_run_with_a_snapshot_and_a_larger_budget_continues_it(tmp_path):
    messages = []
    run = dict(evaluate=_constant_score, goal=_goal, plateau=RULE)
    run_dir = training_loop(_options(tmp_path), on_message=messages.append, **run)
    assert _reached_nimg(run_dir) == 24  # three equal values: the last two gain nothing on the first
    assert any(m.startswith("stopped at 0.024 kimg: score has reached a plateau") for m in messages)
    stats = (run_dir / "stats.jsonl").read_text()
    assert training_loop(_options(tmp_path), on_message=messages.append, **run) == run_dir  # nothing to train
    assert (run_dir / "stats.jsonl").read_text() == stats and messages[-1].startswith("not training on: score")
    training_loop(_options(tmp_path), evaluate=_constant_score, goal=_goal)  # without the rule: on to the end
    assert _reached_nimg(run_dir) == 64
    with pytest.raises(PolyinrError, match="needs a first metric at snapshots that ranks them"):
        training_loop(_options(tmp_path / "other"), evaluate=_constant_score, plateau=RULE)


def test_a_spent_time_budget_ends_the_run_with_a_snapshot(tmp_path):
    run_dir = training_loop(_options(tmp_path), evaluate=_constant_score, max_seconds=1e-9)
    assert _reached_nimg(run_dir) == 8  # the first step already spends it
    ticks = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert len(ticks) == 1 and ticks[0]["Progress/train_seconds"] > 0
    training_loop(_options(tmp_path), evaluate=_constant_score)  # no budget: the run continues to its end
    assert _reached_nimg(run_dir) == 64
