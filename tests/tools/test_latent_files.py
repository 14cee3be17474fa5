"""Latent files (polyinr.tools.latents): round trips, validation against the generator, latent sources."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from polyinr.errors import PolyinrError
from polyinr.tools.latents import LatentFileError, load_latents, one_sample, save_latents, ws_from_source
from polyinr.tools.render import seed_ws


def test_round_trip_keeps_ws_and_class(tmp_path, cond_G):
    ws = seed_ws(cond_G, [0, 1, 2], class_idx=2)
    path = save_latents(tmp_path / "deep" / "lat.safetensors", ws, cond_G, class_idx=2)
    loaded = load_latents(path, cond_G)
    assert loaded.class_idx == 2 and loaded.ws.dtype == torch.float32
    torch.testing.assert_close(loaded.ws, ws, rtol=0, atol=0)
    torch.testing.assert_close(ws_from_source(cond_G, latent_paths=[path, path]), torch.cat([ws, ws]), rtol=0, atol=0)


def test_unconditional_round_trip(tmp_path, tiny_G):
    ws = seed_ws(tiny_G, [5])
    loaded = load_latents(save_latents(tmp_path / "a.safetensors", ws, tiny_G), tiny_G)
    assert loaded.class_idx is None
    torch.testing.assert_close(loaded.ws, ws, rtol=0, atol=0)


def test_mismatches_are_one_line_errors(tmp_path, tiny_G, cond_G):
    cond_file = save_latents(tmp_path / "c.safetensors", seed_ws(cond_G, [0], 1), cond_G, 1)
    with pytest.raises(LatentFileError, match=r"w_dim '64', this one has '128'") as err:
        load_latents(cond_file, _wider(tiny_G))
    assert "\n" not in str(err.value)
    with pytest.raises(LatentFileError, match="class 1, which this generator does not have"):
        load_latents(cond_file, tiny_G)  # same shapes, but tiny_G is unconditional
    with pytest.raises(LatentFileError, match="not found"):
        load_latents(tmp_path / "missing.safetensors", tiny_G)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n not a safetensors file")
    with pytest.raises(LatentFileError, match="is not a latent file"):
        load_latents(junk, tiny_G)
    other = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, str(other))
    with pytest.raises(LatentFileError, match="holds no 'ws'"):
        load_latents(other, tiny_G)
    foreign = tmp_path / "foreign.safetensors"
    metadata = {"model": "stylegan3", "z_dim": "16", "num_ws": "4", "w_dim": "64", "class": "none"}
    save_file({"ws": torch.zeros(1, 4, 64)}, str(foreign), metadata=metadata)
    with pytest.raises(LatentFileError, match="model 'stylegan3', this one has 'poly-inr'"):
        load_latents(foreign, tiny_G)
    with pytest.raises(LatentFileError, match=r"must be \[N, 4, 64\]"):
        save_latents(tmp_path / "bad.safetensors", torch.zeros(1, 3, 64), tiny_G)


def _wider(G):
    from polyinr.models.registry import create

    return create("poly-inr", **{**G.config_dict(), "w_dim": 2 * G.w_dim})


def test_sources_are_seeds_or_latents(tmp_path, cond_G):
    path = save_latents(tmp_path / "l.safetensors", seed_ws(cond_G, [0, 1], 0), cond_G, 0)
    torch.testing.assert_close(ws_from_source(cond_G, seeds=[3], class_idx=1), seed_ws(cond_G, [3], 1))
    with pytest.raises(PolyinrError, match="not both"):
        ws_from_source(cond_G, seeds=[0], latent_paths=[path])
    with pytest.raises(PolyinrError, match="give seeds"):
        ws_from_source(cond_G)
    with pytest.raises(PolyinrError, match="do not apply to --latent"):
        ws_from_source(cond_G, latent_paths=[path], class_idx=0)
    with pytest.raises(PolyinrError, match="do not apply to --latent"):
        ws_from_source(cond_G, latent_paths=[path], truncation_psi=0.7)
    with pytest.raises(PolyinrError, match="holds 2 latents"):
        one_sample(ws_from_source(cond_G, latent_paths=[path]))
