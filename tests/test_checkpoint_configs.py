"""A checkpoint's config.json is untrusted: absurd values are refused before anything is built."""

from __future__ import annotations

import json

import pytest

import polyinr
from polyinr.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return polyinr.create("poly-inr", "cpu").save(tmp_path_factory.mktemp("ckpt") / "G")


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"channels": 10**9}, "beyond any model's size"),
        ({"num_levels": 10**9}, "beyond any model's size"),
        ({"img_resolution": 10**9}, "beyond any model's size"),
        ({"mapping": {"num_classes": 10**12}}, "beyond any model's size"),
        ({"mapping": {"z_dim": -5}}, "cannot be built"),
        ({"channels": 0}, "cannot be built"),
        ({"channels": 60000}, "implies"),
        ({"img_resolution": 30000, "stored_grid": True}, "implies"),
        ({"channels": "64"}, "must be an integer"),
        ({"activation_clamp": float("nan")}, "finite number"),
        ({"stored_grid": 1}, "true or false"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_absurd_configs_are_refused_quickly_in_one_line(saved, tmp_path, edit, message):
    config = json.loads((saved / "config.json").read_text())
    for key, value in edit.items():
        if isinstance(value, dict):
            config["config"][key].update(value)
        else:
            config["config"][key] = value
    target = tmp_path / "bad"
    target.mkdir()
    (target / "model.safetensors").write_bytes((saved / "model.safetensors").read_bytes())
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message) as e:
        polyinr.load(target)
    assert "\n" not in str(e.value)
