"""A learned input grid (``learn_grid``, the authors' trained ``gridt``): a parameter for the native frame only."""

from __future__ import annotations

import pytest
import torch

import polyinr
from polyinr.grid import Grid
from polyinr.models.generator import CapabilityMissing
from polyinr.models.poly_inr import uniform_input_grid
from polyinr.models.registry import create, get_entry


def test_the_learned_grid_is_a_parameter_starting_uniform_that_takes_gradients(make_generator):
    assert "synthesis.input_grid" not in dict(make_generator().named_parameters())
    G = make_generator(learn_grid=True).requires_grad_(True)
    grid = dict(G.named_parameters())["synthesis.input_grid"]
    assert grid.shape == (64, 2) and torch.equal(grid, uniform_input_grid(8))
    assert torch.equal(grid.view(8, 8, 2)[1, 2], torch.tensor([1 / 7, 2 / 7]))  # (row, col), arange(R)/(R-1)
    G(torch.randn(2, G.z_dim)).square().mean().backward()
    assert grid.grad is not None and grid.grad.abs().sum() > 0


def test_a_saved_learned_grid_renders_the_native_frame_exactly_and_other_grids_uniformly(make_generator, tmp_path):
    G = make_generator(learn_grid=True)
    G.synthesis.input_grid.add_(0.02 * torch.randn(64, 2))  # as training moves it
    ws = G.mapping(torch.randn(2, G.z_dim))
    loaded = polyinr.load(G.save(tmp_path / "ckpt"))
    assert loaded.cfg.learn_grid and isinstance(loaded.synthesis.input_grid, torch.nn.Parameter)
    assert torch.equal(loaded.synthesize(ws), G.synthesize(ws))  # the native frame, bit for bit
    uniform = loaded.uniform_coordinates()
    assert not torch.equal(uniform.synthesize(ws), loaded.synthesize(ws))
    assert dict(loaded.named_parameters()).keys() - dict(uniform.named_parameters()).keys() == {"synthesis.input_grid"}
    for grid in (Grid.frame(16), Grid.window(0, 0, 1, 2, 8, 15), Grid.frame(8).translated(0.1, 0)):
        assert torch.equal(loaded.synthesize(ws, grid), uniform.synthesize(ws, grid))  # uniform coordinates
    wide = loaded.synthesize(ws, Grid.window(0, 0, 1, 2, 8, 15))
    assert torch.equal(wide[..., :8], uniform.synthesize(ws))  # the same window off the native frame: uniform
    assert "native 8x8 frame on its learned input grid" in loaded.describe_grids()


def test_the_next_stage_restarts_the_grid_uniform_at_its_resolution(make_generator):
    G = make_generator(learn_grid=True)
    G.synthesis.input_grid.add_(0.05)
    staged = G.next_stage(16)
    assert staged.img_resolution == 16 and staged.synthesis.cfg.img_resolution == 16
    assert staged.synthesis.input_grid.shape == (256, 2) and torch.equal(
        staged.synthesis.input_grid, uniform_input_grid(16)
    )
    assert G.img_resolution == 8 and G.synthesis.input_grid.shape == (64, 2)  # the previous stage's is kept
    same = {k: v for k, v in G.state_dict().items() if k != "synthesis.input_grid"}
    assert all(torch.equal(v, staged.state_dict()[k]) for k, v in same.items())
    assert make_generator().next_stage(16) is None  # uniform coordinates: the same network carries on


@pytest.mark.parametrize("model", ["stylegan-xl", "inr-gan"])
def test_a_model_without_an_input_grid_refuses_to_learn_one(model):
    with pytest.raises(CapabilityMissing, match=f"^{model} has no input grid") as error:
        get_entry(model).generator_cls.learned_grid_settings()
    assert "\n" not in str(error.value)
    assert create("poly-inr", "cpu", **get_entry("poly-inr").generator_cls.learned_grid_settings()).cfg.learn_grid
