"""Training a learned input grid (``--learn-grid``): trained with G, kept in G_ema, saved per stage, restarted
uniform at every stage's resolution, resumed exactly; refused by models without one; on in the authors' recipes."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from staged_runs import STAGED, Stop, assert_same_final_state, record_stage_starts, snapshot_state, stop_at

import polyinr
from polyinr.checkpoint import list_snapshots
from polyinr.cli import main
from polyinr.errors import PolyinrError
from polyinr.models.poly_inr import uniform_input_grid
from polyinr.training.loop import training_loop
from polyinr.training.options import resolve_options
from polyinr.training.snapshot import snapshot_name

GRID = "synthesis.input_grid"


@pytest.mark.slow
def test_the_grid_learns_per_stage_restarts_uniform_at_each_resolution_and_resumes_exactly(tmp_path, monkeypatch):
    starts = record_stage_starts(monkeypatch)
    options = resolve_options("cpu", outdir=str(tmp_path / "a"), learn_grid=True, **STAGED)
    run_dir = training_loop(options)
    snapshots = {s.name: s for s in list_snapshots(run_dir)}
    assert torch.equal(starts[0][GRID], uniform_input_grid(8)) and torch.equal(starts[1][GRID], uniform_input_grid(16))

    end_of_stage_1 = snapshot_state(snapshots[snapshot_name(16)])
    for net in ("G", "G_ema"):  # trained with G's other weights and averaged into G_ema
        assert end_of_stage_1[f"{net}/{GRID}"].shape == (64, 2)
        assert not torch.equal(end_of_stage_1[f"{net}/{GRID}"], uniform_input_grid(8)), net
    stage_1 = polyinr.load(snapshots[snapshot_name(16)])  # the checkpoint holds its stage's native frame
    assert stage_1.img_resolution == 8 and torch.equal(stage_1.synthesis.input_grid, end_of_stage_1[f"G_ema/{GRID}"])
    final = polyinr.load(run_dir)
    assert final.img_resolution == 16 and final.synthesis.input_grid.shape == (256, 2)
    assert not torch.equal(final.synthesis.input_grid, uniform_input_grid(16))

    # Interrupted mid-stage 1 and mid-stage 2, resumed each time: the same run, bit for bit.
    options = resolve_options("cpu", outdir=str(tmp_path / "b"), learn_grid=True, **STAGED)
    for nimg in (8, 24):
        with pytest.raises(Stop):
            training_loop(options, on_tick=stop_at(nimg))
    resumed = training_loop(options)
    got = snapshot_state(list_snapshots(resumed)[-1])
    assert f"G/{GRID}" in got and any(k.startswith("optimizer/G/") for k in got)
    assert_same_final_state(run_dir, resumed, "mid-stage")


def test_the_authors_recipes_learn_the_grid_and_say_so():
    result = CliRunner().invoke(main, ["train", "--recipe", "imagenet", "-n"])
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.output)
    assert resolved["training"]["learn_grid"] is True and resolved["generator"]["config"]["learn_grid"] is True
    assert any("input grid is learned as their gridt" in note for note in resolved["recipe_notes"])
    assert not any("input grid stays uniform" in note for note in resolved["recipe_notes"])
    assert resolve_options("ffhq").learn_grid and not resolve_options("cpu").learn_grid
    assert not resolve_options("imagenet", learn_grid=False).learn_grid
    assert not resolve_options("imagenet", model="stylegan-xl").learn_grid  # the recipe's applies where it can
    off = json.loads(CliRunner().invoke(main, ["train", "--recipe", "imagenet", "--no-learn-grid", "-n"]).output)
    assert off["training"]["learn_grid"] is False and off["generator"]["config"]["learn_grid"] is False


def test_a_model_without_an_input_grid_refuses_to_learn_one_in_one_line():
    with pytest.raises(PolyinrError, match="stylegan-xl has no input grid"):
        resolve_options("cpu", model="stylegan-xl", learn_grid=True)
    result = CliRunner().invoke(main, ["train", "--model", "inr-gan", "--learn-grid", "-n"])
    assert result.exit_code != 0
    expected = "Error: --learn-grid does not apply: inr-gan has no input grid of per-pixel coordinates to learn\n"
    assert result.output == expected
