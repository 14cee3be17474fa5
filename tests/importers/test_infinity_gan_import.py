"""The InfinityGAN authors' checkpoints: stand-ins written as their train.py writes them, converted and compared."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

import polyinr
from guarded_child import assert_one_line_error
from polyinr.importers import ImporterError, UnsafePickleError
from polyinr.importers.infinity_gan import SS, TS, convert, read_train_params
from tiny_infinity_gan import TINY_INFINITY_GAN

TINY = {**TINY_INFINITY_GAN, "num_layers": 3, "structure_layers": 2}


def authors_state(G) -> dict[str, torch.Tensor]:
    """Our generator's weights under the authors' ``g_ema`` names and shapes (their unused buffers included)."""
    ours, cfg = G.state_dict(), G.cfg
    out: dict[str, torch.Tensor] = {f"{TS}.const_z.input": torch.randn(1, cfg.local_latent_dim, 4, 4)}
    for i in range(cfg.mapping.num_layers):
        out[f"{TS}.mapping.{i + 1}.weight"] = ours[f"mapping.styles.layers.{i}.weight"]
        out[f"{TS}.mapping.{i + 1}.bias"] = ours[f"mapping.styles.layers.{i}.bias"]
    for i in range(cfg.structure_layers):
        a, b = f"{SS}.{i}.conv", f"synthesis.structure.layers.{i}"
        out[f"{a}.conv.weight"] = ours[f"{b}.conv.weight"][None]
        out[f"{a}.conv.modulation.weight"] = ours[f"{b}.conv.modulation.weight"]
        out[f"{a}.conv.modulation.bias"] = ours[f"{b}.conv.modulation.bias"]
        out[f"{a}.activate.bias"] = ours[f"{b}.bias"]
    for i in range(2 * cfg.num_blocks):
        a, b = f"{TS}.convs.{i}", f"synthesis.texture.layers.{i}"
        out[f"{a}.conv.weight"] = ours[f"{b}.conv.weight"][None]
        out[f"{a}.conv.modulation.weight"] = ours[f"{b}.conv.modulation.weight"]
        out[f"{a}.conv.modulation.bias"] = ours[f"{b}.conv.modulation.bias"]
        out[f"{a}.noise.weight"] = ours[f"{b}.noise_strength"].reshape(1)
        out[f"{a}.activate.bias"] = ours[f"{b}.bias"]
        out[f"{TS}.noises.noise_{i}"] = torch.randn(1, 1, 4, 4)
        if i % 2 == 0:
            out[f"{a}.conv.blur.kernel"] = torch.ones(3, 3)
    for j in range(cfg.num_blocks):
        a, b = f"{TS}.to_rgbs.{j}", f"synthesis.texture.to_rgbs.{j}"
        out[f"{a}.conv.weight"] = ours[f"{b}.conv.weight"][None]
        out[f"{a}.conv.modulation.weight"] = ours[f"{b}.conv.modulation.weight"]
        out[f"{a}.conv.modulation.bias"] = ours[f"{b}.conv.modulation.bias"]
        out[f"{a}.bias"] = ours[f"{b}.bias"].view(1, -1, 1, 1)
        out[f"{a}.upsample.kernel"] = torch.ones(3, 3)
    return out


@pytest.fixture(scope="module")
def original():
    torch.manual_seed(0)
    G = polyinr.create("infinitygan", **TINY).eval()
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # trained-looking: non-default biases and noise strengths
    return G


def save_checkpoint(path, G, **kwargs) -> None:
    state = authors_state(G)
    torch.save(
        {
            "iter": 1000,
            "best_fid": 12.5,
            "g": {k: v + 1 for k, v in state.items()},
            "d": {},
            "g_ema": state,
            "g_optim": {"state": {}, "param_groups": [{"lr": 0.002}]},
            "d_optim": {},
            "mean_path_lengths": torch.tensor(0.5),
        },
        path,
        **kwargs,
    )


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_converted_checkpoint_renders_the_same_canvas(original, tmp_path, zip_format):
    path = tmp_path / "best_fid.pth.tar"
    save_checkpoint(path, original, _use_new_zipfile_serialization=zip_format)
    config = tmp_path / "InfinityGAN.yaml"
    config.write_text(
        "train_params:\n  ts_input_size: 7\n  coord_vert_sample_size: 10\n  coord_hori_occupy_ratio: 0.25\n"
    )
    result = convert(path, config=config)
    G = result.generator
    assert "iteration 1000" in result.lines[0] and result.provenance["iteration"] == 1000
    assert G.cfg == original.cfg  # every size read from the shapes, the rest from their YAML
    ws = original.mapping(torch.randn(2, 16))
    step = 1 / (G.img_resolution - 1)
    grid = polyinr.Grid.window(-3 * step, 0, 40 * step, 50 * step, 44, 51)
    with torch.no_grad():
        assert torch.equal(G.synthesize(ws, grid), original.synthesize(ws, grid))
        assert torch.equal(G.mapping(ws[:, 0]), original.mapping(ws[:, 0]))


def test_the_command_line_converts_with_a_config_file(original, tmp_path):
    from click.testing import CliRunner

    from polyinr.cli import main

    save_checkpoint(tmp_path / "ckpt.pth.tar", original)
    (tmp_path / "cfg.yaml").write_text("train_params:\n  ts_input_size: 7\n")
    result = CliRunner().invoke(
        main,
        [
            "convert",
            "--from",
            "infinitygan",
            "--config",
            str(tmp_path / "cfg.yaml"),
            str(tmp_path / "ckpt.pth.tar"),
            str(tmp_path / "G"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert polyinr.load(tmp_path / "G").cfg == original.cfg


def test_refusals_are_one_line(original, tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    bad = tmp_path / "evil.pth.tar"
    bad.write_bytes(pickle.dumps({"g_ema": Evil()}, protocol=2))
    with pytest.raises(UnsafePickleError, match="refused"):
        convert(bad)
    junk = tmp_path / "junk.pth.tar"
    torch.save({"g_ema": {"foo.weight": torch.zeros(2)}}, junk)
    with pytest.raises(ImporterError, match="no InfinityGAN generator"):
        convert(junk)
    state = authors_state(original)
    del state[f"{TS}.convs.3.conv.weight"]
    partial = tmp_path / "partial.pth.tar"
    torch.save({"g_ema": state}, partial)
    with pytest.raises(ImporterError) as e:
        convert(partial)
    assert "\n" not in str(e.value)


def test_an_endless_config_file_is_refused_after_a_bounded_read(tmp_path):
    assert_one_line_error(
        lambda: read_train_params("/dev/zero"),
        "ImporterError",
        "cannot read config /dev/zero",
        "more than 1,048,576 bytes",
    )
    (tmp_path / "latin1.yaml").write_bytes(b"train_params: {ts_input_size: 7} # \xe9\n")
    with pytest.raises(ImporterError, match="cannot read config"):
        read_train_params(tmp_path / "latin1.yaml")
