"""Two-stage tiny runs for the tests of stage switches: the settings, G as each stage began, a stop at a chosen
image count (as a kill would), and the check that a resumed run ends in the same state, bit for bit."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from polyinr.checkpoint import STATE_WEIGHTS, list_snapshots

# Two steps of 8 images at 8², then two at 16², a snapshot after every step.
STAGED = dict(
    data="builtin:digits",
    schedule="8:0.016,16:0.016",
    batch=8,
    tick_kimg=0.008,
    snap_ticks=1,
    keep_snapshots=10,
    workers=0,
    device="cpu",
    seed=3,
    model_overrides={"channels": 16},
)


class Stop(Exception):
    pass


def stop_at(nimg: int):
    """An ``on_tick`` that raises :class:`Stop` at the tick that reaches ``nimg`` images."""

    def on_tick(tick) -> None:
        if tick.cur_nimg == nimg:
            raise Stop

    return on_tick


def record_stage_starts(monkeypatch) -> dict[int, dict[str, torch.Tensor]]:
    """``{stage index: G's weights as the stage began}``, filled as a run goes."""
    from polyinr.training import losses

    starts = {}
    base_begin = losses.GANLoss.begin_stage

    def remember(self, index, start_nimg):
        starts[index] = {k: v.clone() for k, v in self.G.state_dict().items()}
        base_begin(self, index, start_nimg)

    monkeypatch.setattr(losses.GANLoss, "begin_stage", remember)
    return starts


def snapshot_state(snapshot: Path) -> dict[str, torch.Tensor]:
    return load_file(str(snapshot / STATE_WEIGHTS))


def assert_same_final_state(run_dir: Path, resumed: Path, what: str) -> None:
    """The last snapshots of ``run_dir`` and ``resumed`` hold the same tensors (RNG states aside)."""
    expected = snapshot_state(list_snapshots(run_dir)[-1])
    got = snapshot_state(list_snapshots(resumed)[-1])
    for key in expected:
        if not key.startswith("rng/"):
            assert torch.equal(expected[key], got[key]), f"{key} differs after resuming {what}"
