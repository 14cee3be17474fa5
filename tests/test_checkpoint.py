"""Checkpoints: bit-exact round trips, saves that never half-write, and one-line errors for every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import polyinr
from polyinr import atomic
from polyinr.checkpoint import (
    CONFIG_NAME,
    FORMAT_VERSION,
    WEIGHTS_NAME,
    CheckpointError,
    load_generator,
    read_config,
)
from polyinr.grid import Grid


@pytest.fixture
def saved(G_cond, tmp_path) -> Path:
    return G_cond.save(tmp_path / "ckpt")


def leftovers(directory: Path) -> list[str]:
    """Temporary files or directories an interrupted write could leave behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_round_trip_is_bit_exact(G_cond, saved):
    assert sorted(p.name for p in saved.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    loaded = load_generator(saved)
    assert type(loaded) is type(G_cond) and loaded.cfg == G_cond.cfg
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    own, back = G_cond.state_dict(), loaded.state_dict()
    assert own.keys() == back.keys() and "mapping.w_avg" in back
    assert all(torch.equal(own[k], back[k]) for k in own)
    z, labels = torch.randn(2, G_cond.z_dim), torch.tensor([0, 2])
    grid = Grid.window(-0.5, 0, 1, 1.5, 9, 12)
    assert torch.equal(
        loaded(z, labels, grid=grid, truncation_psi=0.6), G_cond(z, labels, grid=grid, truncation_psi=0.6)
    )


def test_config_json_is_sorted_and_complete(G_cond, saved):
    text = (saved / CONFIG_NAME).read_text()
    config = json.loads(text)
    assert list(config) == sorted(config)
    assert config["model"] == "poly-inr" and config["format_version"] == FORMAT_VERSION
    assert config["config"] == G_cond.config_dict() and "polyinr_version" in config
    assert read_config(saved) == config


def test_save_overwrites_and_keeps_extra(G, G_cond, tmp_path):
    path = tmp_path / "ckpt"
    G_cond.save(path)
    G.save(path, extra={"training": {"cur_nimg": 1234}}, overwrite=True)
    assert read_config(path)["training"] == {"cur_nimg": 1234}
    assert load_generator(path).num_classes == 0
    assert leftovers(tmp_path) == []


def test_failed_save_leaves_the_old_checkpoint_intact(G, G_cond, saved, monkeypatch):
    before = {p.name: p.read_bytes() for p in saved.iterdir()}

    def half_written(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise RuntimeError("simulated crash while writing")

    monkeypatch.setattr(atomic, "save_file", half_written)
    with pytest.raises(RuntimeError, match="simulated"):
        G.save(saved, overwrite=True)
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    assert leftovers(saved.parent) == []

    def disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic, "save_file", disk_full)
    with pytest.raises(CheckpointError, match="No space left") as err:
        G.save(saved, overwrite=True)
    assert "\n" not in str(err.value)
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    assert leftovers(saved.parent) == []
    assert load_generator(saved).num_classes == G_cond.num_classes


def edit_config(path: Path, **changes) -> None:
    config = json.loads((path / CONFIG_NAME).read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    (path / CONFIG_NAME).write_text(json.dumps(config))


def truncate_weights(path: Path) -> None:
    data = (path / WEIGHTS_NAME).read_bytes()
    (path / WEIGHTS_NAME).write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.with_name("missing"), "not found"),
        (lambda p: (truncate_weights(p), p)[1], "truncated or corrupt"),
        (lambda p: ((p / WEIGHTS_NAME).write_bytes(b""), p)[1], "truncated or corrupt"),
        (lambda p: ((p / WEIGHTS_NAME).unlink(), p)[1], "has no model.safetensors"),
        (lambda p: ((p / CONFIG_NAME).unlink(), p)[1], "has no config.json"),
        (lambda p: ((p / CONFIG_NAME).write_text("{not json"), p)[1], "corrupt"),
        (lambda p: ((p / CONFIG_NAME).write_text("[1, 2]"), p)[1], "names no model"),
        (lambda p: (edit_config(p, model=None), p)[1], "names no model"),
        (lambda p: (edit_config(p, config=None), p)[1], "no model config"),
        (lambda p: (edit_config(p, model="stylegan9"), p)[1], "unknown model 'stylegan9'"),
        (lambda p: (edit_config(p, format_version=FORMAT_VERSION + 1), p)[1], "upgrade polyinr"),
        (lambda p: (edit_config(p, format_version=None), p)[1], "checkpoint format None"),
        (lambda p: (edit_config(p, config={"channels": 32, "future_knob": 1}), p)[1], "newer polyinr"),
        (lambda p: (edit_config(p, config={"channels": 16}), p)[1], "do not match the config|the config is wrong"),
        (
            lambda p: ((p.parent / "G.pkl").write_bytes(b"\x80\x04"), p.parent / "G.pkl")[1],
            "is a pickle, not a polyinr checkpoint; convert",
        ),
        (lambda p: ((p.parent / "G.pt").write_bytes(b"x"), p.parent / "G.pt")[1], "is a file"),
    ],
    ids=[
        "missing",
        "truncated",
        "empty-weights",
        "no-weights",
        "no-config",
        "bad-json",
        "json-list",
        "no-model",
        "no-model-config",
        "unknown-model",
        "newer-format",
        "no-format",
        "unknown-setting",
        "wrong-shapes",
        "pickle",
        "plain-file",
    ],
)
def test_bad_checkpoints_raise_one_line_errors(saved, damage, message):
    path = damage(saved)
    with pytest.raises(CheckpointError, match=message) as err:
        load_generator(path)
    assert "\n" not in str(err.value)


def test_expect_model(saved):
    assert load_generator(saved, expect_model="poly-inr").model_name == "poly-inr"
    with pytest.raises(CheckpointError, match="'stylegan3' model is needed"):
        load_generator(saved, expect_model="stylegan3")


def test_load_onto_a_device(saved):
    G = load_generator(saved, device=torch.device("cpu"))
    assert all(p.device.type == "cpu" for p in G.parameters())


def test_format_1_checkpoints_with_flat_mapping_fields_still_load(tmp_path):
    G = polyinr.create("poly-inr", "cpu", num_classes=3)
    path = G.save(tmp_path / "v1")
    config = json.loads((path / "config.json").read_text())
    mapping = config["config"].pop("mapping")
    old_names = {
        "embed_dim": "class_embed_dim",
        "num_layers": "mapping_layers",
        "lr_multiplier": "mapping_lr_multiplier",
    }
    config["config"].update({old_names.get(k, k): v for k, v in mapping.items()})
    config["format_version"] = 1
    (path / "config.json").write_text(json.dumps(config))
    loaded = polyinr.load(path)
    assert loaded.cfg == G.cfg
