"""Reading pickled StyleGAN-family networks as data: the inert tree, numpy arrays, persistent classes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from polyinr.importers import PickledObject, inert_tree, module_tensors, plain_array, restricted_load


def _load(tmp_path, obj, protocol=4):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return restricted_load(path)


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("dtype", ["<f4", ">f8", "<i2", "|u1", "|b1"])
def test_numpy_arrays_decode_from_their_records(tmp_path, protocol, dtype):
    array = (np.arange(24).reshape(2, 3, 4) % 5).astype(dtype)
    for a in (array, np.asfortranarray(array)):
        got = plain_array(_load(tmp_path, a, protocol))
        assert isinstance(got, torch.Tensor) and got.shape == (2, 3, 4)
        assert np.array_equal(got.numpy(), a) and got.numpy().dtype == a.dtype.newbyteorder("=")


def test_object_arrays_stay_records(tmp_path):
    record = _load(tmp_path, np.array([1, "a"], dtype=object))
    assert plain_array(record) is record


def test_inert_tree_of_a_persistent_module(authors):
    G_ref = authors.generator(5)
    loaded = restricted_load(authors.write(authors.snapshot(G_ref)))
    tree = inert_tree(loaded)
    assert isinstance(tree, dict) and tree["training_set_kwargs"]["resolution"] == 8  # an EasyDict, as a dict
    G = tree["G_ema"]
    assert isinstance(G, PickledObject) and G.module == "training.networks_gmgan"
    fc0 = G.state["_modules"]["mapping"].state["_modules"]["fc0"]
    assert fc0.module == "(persistent)" and fc0.class_name == "FullyConnectedLayer"
    assert "module_src" not in fc0.state and isinstance(fc0.state["weight_gain"], float)
    assert torch.equal(fc0.state["_parameters"]["weight"], G_ref.mapping.fc0.weight.detach())
    assert {k: v.shape for k, v in module_tensors(loaded["G_ema"], "G_ema").items()} == {
        k: v.shape for k, v in G_ref.state_dict().items()
    }
    assert not authors.marker.exists()


def test_inert_tree_keeps_sharing_and_cycles(tmp_path):
    shared = [1, 2]
    cyclic: list = []
    cyclic.append(cyclic)
    tree = inert_tree(_load(tmp_path, {"a": shared, "b": shared, "c": cyclic, "t": (np.float32(1.5), slice(2))}))
    assert tree["a"] is tree["b"] and tree["c"][0] is tree["c"]
    assert tree["t"] == (1.5, slice(2))
