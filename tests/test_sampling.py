"""Seeds, classes and latent files → z and ws (polyinr.sampling): one path, the same numbers everywhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from polyinr.errors import PolyinrError
from polyinr.models.registry import create
from polyinr.sampling import (
    LatentFileError,
    iter_ws,
    labels_for,
    latents_from_seeds,
    load_latents,
    one_sample,
    parse_range_list,
    sample_inputs,
    save_latents,
    ws_for,
)


def test_round_trip_keeps_ws_and_class(tmp_path, G_cond):
    ws = ws_for(G_cond, seeds=[0, 1, 2], classes=2)
    path = save_latents(tmp_path / "deep" / "lat.safetensors", ws, G_cond, class_idx=2)
    loaded = load_latents(path, G_cond)
    assert loaded.class_idx == 2 and loaded.ws.dtype == torch.float32
    torch.testing.assert_close(loaded.ws, ws, rtol=0, atol=0)
    torch.testing.assert_close(ws_for(G_cond, latents=[path, path]), torch.cat([ws, ws]), rtol=0, atol=0)


def test_unconditional_round_trip(tmp_path, G):
    ws = ws_for(G, seeds=[5])
    loaded = load_latents(save_latents(tmp_path / "a.safetensors", ws, G), G)
    assert loaded.class_idx is None
    torch.testing.assert_close(loaded.ws, ws, rtol=0, atol=0)


def test_mismatches_are_one_line_errors(tmp_path, G, G_cond):
    cond_file = save_latents(tmp_path / "c.safetensors", ws_for(G_cond, seeds=[0], classes=1), G_cond, 1)
    with pytest.raises(LatentFileError, match=r"w_dim '16', this one has '32'") as err:
        load_latents(cond_file, _wider(G))
    assert "\n" not in str(err.value)
    with pytest.raises(LatentFileError, match="class 1, which this generator does not have"):
        load_latents(cond_file, G)  # same shapes, but G is unconditional
    with pytest.raises(LatentFileError, match="not found"):
        load_latents(tmp_path / "missing.safetensors", G)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n not a safetensors file")
    with pytest.raises(LatentFileError, match="is not a latent file"):
        load_latents(junk, G)
    other = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, str(other))
    with pytest.raises(LatentFileError, match="holds no 'ws'"):
        load_latents(other, G)
    foreign = tmp_path / "foreign.safetensors"
    metadata = {"model": "stylegan3", "z_dim": "8", "num_ws": "4", "w_dim": "16", "class": "none"}
    save_file({"ws": torch.zeros(1, 4, 16)}, str(foreign), metadata=metadata)
    with pytest.raises(LatentFileError, match="model 'stylegan3', this one has 'poly-inr'"):
        load_latents(foreign, G)
    with pytest.raises(LatentFileError, match=r"must be \[N, 4, 16\]"):
        save_latents(tmp_path / "bad.safetensors", torch.zeros(1, 3, 16), G)


def _wider(G):
    return create("poly-inr", **{**G.config_dict(), "w_dim": 2 * G.w_dim})


def test_sources_are_seeds_or_latents(tmp_path, G_cond):
    path = save_latents(tmp_path / "l.safetensors", ws_for(G_cond, seeds=[0, 1], classes=0), G_cond, 0)
    torch.testing.assert_close(ws_for(G_cond, seeds=[3], classes=1), ws_for(G_cond, seeds=[3], classes=1))
    with pytest.raises(PolyinrError, match="not both"):
        ws_for(G_cond, seeds=[0], latents=[path])
    with pytest.raises(PolyinrError, match="give seeds"):
        ws_for(G_cond)
    with pytest.raises(PolyinrError, match="do not apply to latent files"):
        ws_for(G_cond, latents=[path], classes=0)
    with pytest.raises(PolyinrError, match="do not apply to latent files"):
        ws_for(G_cond, latents=[path], truncation_psi=0.7)
    with pytest.raises(PolyinrError, match="holds 2 latents"):
        one_sample(ws_for(G_cond, latents=[path]))


@pytest.mark.parametrize("seed", [0, 1, 85, 2**31])
def test_seed_gives_the_stylegan_latent(seed):
    z = latents_from_seeds([seed], 64)
    assert z.shape == (1, 64) and z.dtype == torch.float32
    assert torch.equal(z, torch.from_numpy(np.random.RandomState(seed).randn(1, 64)).float())


def test_several_seeds_stack_independently():
    z = latents_from_seeds([5, 3, 5], 16)
    assert torch.equal(z[0], z[2]) and torch.equal(z[1:2], latents_from_seeds([3], 16))
    assert latents_from_seeds([], 16).shape == (0, 16)


@pytest.mark.parametrize(
    "text, values",
    [("0", [0]), ("0,3-7", [0, 3, 4, 5, 6, 7]), (" 2 , 4-4 ", [2, 4]), ("5-6,1", [5, 6, 1]), (7, [7])],
)
def test_parse_range_list(text, values):
    assert parse_range_list(text) == values


@pytest.mark.parametrize(
    "text, message",
    [
        ("7-3", "empty"),
        ("-1", "must not be negative"),
        ("a", "look like"),
        ("1,,2", "empty item"),
        ("", "empty item"),
        ("1-2-3", "look like"),
        ("1.5", "look like"),
    ],
)
def test_parse_range_list_errors(text, message):
    with pytest.raises(PolyinrError, match=message) as err:
        parse_range_list(text, what="seeds")
    assert "\n" not in str(err.value) and "seeds" in str(err.value)


def test_ws_follow_the_seeds_at_any_batch_size_and_with_per_sample_classes(G_cond):
    seeds, classes = [4, 1, 4, 9], [0, 2, 0, 1]
    z, c = sample_inputs(G_cond, seeds, classes)
    assert torch.equal(z, latents_from_seeds(seeds, G_cond.z_dim)) and c.tolist() == classes
    expected = G_cond.mapping(z, c, truncation_psi=0.6)
    assert torch.equal(ws_for(G_cond, seeds=seeds, classes=classes, truncation_psi=0.6), expected)
    batches = list(iter_ws(G_cond, seeds, np.array(classes), truncation_psi=0.6, batch_size=3))
    assert [len(b) for b in batches] == [3, 1]
    torch.testing.assert_close(torch.cat(batches), expected)  # batch size changes float rounding only
    assert torch.equal(
        ws_for(G_cond, seeds=np.array(seeds), classes=torch.tensor(classes), truncation_psi=0.6), expected
    )
    torch.testing.assert_close(ws_for(G_cond, seeds=seeds[:1], classes=0), ws_for(G_cond, seeds=seeds, classes=0)[:1])


def test_truncation_cutoff_truncates_only_the_first_ws(G_cond):
    full, plain = ws_for(G_cond, seeds=[3], classes=1, truncation_psi=0.0), ws_for(G_cond, seeds=[3], classes=1)
    cut = ws_for(G_cond, seeds=[3], classes=1, truncation_psi=0.0, truncation_cutoff=2)
    assert torch.equal(cut[:, :2], full[:, :2]) and torch.equal(cut[:, 2:], plain[:, 2:])
    with pytest.raises(PolyinrError, match="do not apply to latent files"):
        ws_for(G_cond, latents=["x.safetensors"], truncation_cutoff=2)


def test_labels_for(G, G_cond):
    assert labels_for(G, None, 2, "cpu") is None
    assert labels_for(G_cond, 2, 3, "cpu").tolist() == [2, 2, 2]
    assert labels_for(G_cond, [2, 0, 1], 3, "cpu").tolist() == [2, 0, 1]
    for model, class_idx, message in (
        (G, 0, "unconditional"),
        (G_cond, None, "class-conditional"),
        (G_cond, 3, "unknown class 3"),
        (G_cond, -1, "unknown class"),
        (G_cond, [0, 1], "1 samples need 1 classes"),
    ):
        with pytest.raises(PolyinrError, match=message):
            labels_for(model, class_idx, 1, "cpu")
