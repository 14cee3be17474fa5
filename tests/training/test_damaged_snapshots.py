"""A run whose newest snapshot is damaged resumes from its newest intact one, saying so in one line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from test_loop import _tiny_options

from polyinr.checkpoint import (
    STATE_JSON,
    STATE_WEIGHTS,
    CheckpointError,
    latest_snapshot,
    list_snapshots,
    read_tensor_file,
)
from polyinr.training.loop import training_loop

pytestmark = pytest.mark.usefixtures("one_thread")

NEWEST, INTACT = "000000.064", "000000.048"  # the run below keeps 000000.032, .048 and .064


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """The outdir of a tiny run of 64 images with a snapshot every 16, trained on one thread as the resumed runs
    are (this module-scoped fixture is built before the tests' ``one_thread``; float sums differ across thread
    counts, and the resumed runs must match it bit for bit)."""
    outdir = tmp_path_factory.mktemp("finished")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        training_loop(_tiny_options(outdir))
    finally:
        torch.set_num_threads(threads)
    return outdir


def _copy(finished_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    outdir = tmp_path / "runs"
    shutil.copytree(finished_run, outdir)
    (run_dir,) = outdir.iterdir()
    return outdir, run_dir


def _rewrite_state(**changes) -> Callable[[Path], None]:
    def damage(snapshot: Path) -> None:
        counters = json.loads((snapshot / STATE_JSON).read_text())
        (snapshot / STATE_JSON).write_text(json.dumps({**counters, **changes}))

    return damage


def _truncate_weights(snapshot: Path) -> None:
    data = (snapshot / STATE_WEIGHTS).read_bytes()
    (snapshot / STATE_WEIGHTS).write_bytes(data[: len(data) // 2])


DAMAGES = {
    "malformed-json": (lambda s: (s / STATE_JSON).write_text('{"cur_nimg": 64, "st'), "unreadable"),
    "not-a-count": (_rewrite_state(cur_nimg="lots"), "cur_nimg is 'lots', not a count"),
    "no-such-stage": (_rewrite_state(stage=99), "stage is 99, but this run's stages are 0 to 0"),
    "bad-stage-start": (_rewrite_state(stage_start={"snapshot": 3}), "stage_start is"),
    "bad-stage-ends": (_rewrite_state(stage_ends=[16]), "stage_ends is [16], not the image counts"),
    "truncated-weights": (_truncate_weights, "truncated or corrupt"),
    "corrupt-weights": (
        lambda s: (s / STATE_WEIGHTS).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}    "),
        "truncated or corrupt",
    ),
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_damaged_newest_snapshot_is_set_aside_and_the_newest_intact_one_resumed(finished_run, tmp_path, damage):
    outdir, run_dir = _copy(finished_run, tmp_path)
    expected = read_tensor_file(run_dir / "checkpoints" / NEWEST / STATE_WEIGHTS)
    damage_snapshot, problem = damage
    damage_snapshot(run_dir / "checkpoints" / NEWEST)
    messages: list[str] = []
    assert training_loop(_tiny_options(outdir), on_message=messages.append) == run_dir
    said = [m for m in messages if "set aside" in m]
    assert len(said) == 1 and "\n" not in said[0], messages
    assert problem in said[0] and f"set aside as {NEWEST}.damaged, resuming from {INTACT}" in said[0]
    assert (run_dir / "checkpoints" / f"{NEWEST}.damaged").is_dir()  # kept for a look, never resumed
    assert latest_snapshot(run_dir).name == NEWEST  # written again by the resumed training …
    final = read_tensor_file(run_dir / "checkpoints" / NEWEST / STATE_WEIGHTS)
    assert final.keys() == expected.keys()
    assert all(torch.equal(final[k], expected[k]) for k in expected)  # … exactly as the first time


def test_a_run_without_an_intact_snapshot_stops_in_one_line_and_renames_nothing(finished_run, tmp_path):
    outdir, run_dir = _copy(finished_run, tmp_path)
    snapshots = list_snapshots(run_dir)
    for snapshot in snapshots:
        _truncate_weights(snapshot)
    with pytest.raises(CheckpointError, match="has no intact snapshot to resume from") as info:
        training_loop(_tiny_options(outdir))
    assert "\n" not in str(info.value) and all(s.name in str(info.value) for s in snapshots)
    assert list_snapshots(run_dir) == snapshots
