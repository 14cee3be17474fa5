"""The restricted unpickler: real tensors, inert stand-ins, refusal of pickles that would run code."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
import sys
import types
from collections import OrderedDict
from unittest import mock

import numpy as np
import pytest
import torch

from polyinr.importers import ImporterError, StandIn, UnsafePickleError, plain_number, restricted_load


def _write(tmp_path, obj, name="x.pkl", protocol=4):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


class _Reduce:
    """Pickles as ``func(*args)``."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_tensors_and_safe_builtins_come_back_real(tmp_path):
    base = torch.arange(12, dtype=torch.float32).view(3, 4)
    obj = {
        "t": base,
        "param": torch.nn.Parameter(torch.randn(2, 5)),
        "half": torch.randn(4).half(),
        "long": torch.LongTensor([123456]),
        "view": base.t()[1:],  # non-contiguous, with an offset
        "od": OrderedDict(a=1, b=(2, 3)),
        "set": {1, 2},
        "dtype": torch.bfloat16,
        "bytes": b"\x00\x01",
    }
    got = restricted_load(_write(tmp_path, obj))
    for key in ("t", "param", "half", "long", "view"):
        assert type(got[key]) is torch.Tensor and got[key].dtype == obj[key].dtype
        assert torch.equal(got[key], obj[key].detach())
    assert got["view"].stride() == obj["view"].stride()
    assert got["od"] == obj["od"] and isinstance(got["od"], OrderedDict)
    assert got["set"] == {1, 2} and got["dtype"] is torch.bfloat16 and got["bytes"] == b"\x00\x01"


def test_tensors_with_python_attributes_and_gpu_locations_load_on_cpu(tmp_path):
    tagged = torch.randn(3)
    tagged.note = "ema"  # pickles through torch._tensor._rebuild_from_type_v2
    with mock.patch.object(torch.serialization, "location_tag", lambda storage: "cuda:0"):
        path = _write(tmp_path, {"tagged": tagged, "gpu": torch.arange(4.0)})
    assert b"cuda:0" in path.read_bytes()
    got = restricted_load(path)
    assert torch.equal(got["tagged"], tagged) and got["gpu"].device.type == "cpu"
    assert torch.equal(got["gpu"], torch.arange(4.0))


def test_protocol_2_pickles_load(tmp_path):
    obj = {"t": torch.ones(3), "b": b"\xff\x00", "s": frozenset({1})}
    got = restricted_load(_write(tmp_path, obj, protocol=2))
    assert torch.equal(got["t"], obj["t"]) and got["b"] == b"\xff\x00" and got["s"] == frozenset({1})


def test_torch_zip_archive_storages_by_persistent_id(tmp_path):
    obj = {"w": torch.randn(3, 4), "p": torch.nn.Parameter(torch.randn(5)), "i": torch.arange(4)}
    path = tmp_path / "model.pt"
    torch.save(obj, path)
    got = restricted_load(path)
    assert all(torch.equal(got[k], obj[k].detach()) for k in obj)


@pytest.fixture
def foreign_module():
    """A module ``their_pkg.nets`` whose classes would leave a marker if any of their code ran on load."""
    module = types.ModuleType("their_pkg.nets")

    class Net:
        def __init__(self, marker):
            self.marker, self.weight, self.table = str(marker), torch.ones(2), {"k": 1}

        def __setstate__(self, state):
            open(state["marker"], "w").close()

    class Table(dict):
        pass

    Net.__module__ = Table.__module__ = module.__name__
    Net.__qualname__, Table.__qualname__ = "Net", "Table"
    module.Net, module.Table = Net, Table
    package = types.ModuleType("their_pkg")
    package.nets = module
    sys.modules.update({"their_pkg": package, module.__name__: module})
    yield module
    sys.modules.pop("their_pkg", None)
    sys.modules.pop(module.__name__, None)


def test_unknown_classes_become_inert_records(tmp_path, foreign_module):
    marker = tmp_path / "ran"
    table = foreign_module.Table(a=torch.zeros(1))
    path = _write(tmp_path, {"net": foreign_module.Net(marker), "table": table})
    del sys.modules[foreign_module.__name__], sys.modules["their_pkg"]
    got = restricted_load(path)
    net, table = got["net"], got["table"]
    assert isinstance(net, StandIn) and net.qualname() == "their_pkg.nets.Net"
    assert net.state["marker"] == str(marker) and torch.equal(net.state["weight"], torch.ones(2))
    assert isinstance(table, StandIn) and torch.equal(table.items["a"], torch.zeros(1))
    assert not marker.exists()
    assert "their_pkg.nets" not in sys.modules and "their_pkg" not in sys.modules


def _attacks(marker):
    command = f"touch {marker}"
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": _Reduce(os.system, (command,)),
        "builtins.eval": _Reduce(builtins.eval, (code,)),
        "builtins.exec": _Reduce(builtins.exec, (code,)),
        "subprocess.Popen": _Reduce(subprocess.Popen, (["touch", str(marker)],)),
        "subprocess.check_call": _Reduce(subprocess.check_call, (["touch", str(marker)],)),
        "builtins.__import__": _Reduce(builtins.__import__, ("os",)),
        "builtins.open": _Reduce(builtins.open, (str(marker), "w")),
    }


@pytest.mark.parametrize("attack", list(_attacks("m")))
def test_pickles_that_call_dangerous_globals_are_refused(tmp_path, attack):
    marker = tmp_path / "pwned"
    evil = _attacks(marker)[attack]
    snapshot = {"G": {"mapping": OrderedDict(fc0=[1, {"deep": (evil,)}])}, "G_ema": None}
    path = _write(tmp_path, snapshot)
    with pytest.raises(UnsafePickleError) as e:
        restricted_load(path)
    message = str(e.value)
    assert "\n" not in message and "refused" in message and attack.split(".")[-1] in message
    assert not marker.exists()


def test_malicious_storage_bytes_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Reduce(os.system, (f"touch {marker}",)), protocol=2)
    path = _write(tmp_path, {"t": _Reduce(torch.storage._load_from_bytes, (payload,))})
    with pytest.raises(UnsafePickleError, match="not a plain torch storage") as e:
        restricted_load(path)
    assert "\n" not in str(e.value) and not marker.exists()


def test_getattr_chains_stay_inert(tmp_path):
    marker = tmp_path / "pwned"
    # getattr(os.sep, 'system')('touch …'), written by hand: os is only named, never imported or called
    data = b"\x80\x02cbuiltins\ngetattr\n(cos\nsep\nVsystem\ntR(V" + f"touch {marker}".encode() + b"\ntR."
    path = tmp_path / "x.pkl"
    path.write_bytes(data)
    got = restricted_load(path)
    assert isinstance(got, StandIn) and got.args == (f"touch {marker}",)
    assert not marker.exists()


@pytest.mark.parametrize("target", [b"torch._utils\n_rebuild_tensor_v2", b"torch\nFloatStorage", b"_codecs\nencode"])
def test_allow_listed_objects_cannot_be_modified(tmp_path, target):
    path = tmp_path / "x.pkl"
    path.write_bytes(b"\x80\x02c" + target + b"\n(N}V__defaults__\n(tstb.")  # BUILD (None, {...}) on it
    with pytest.raises(UnsafePickleError, match="tries to modify"):
        restricted_load(path)


@pytest.mark.parametrize(
    "content", [b"", b"hello world\n", b"\x89PNG\r\n\x1a\n" + bytes(32), b"PK\x03\x04garbage", b"\x80\x09junk"]
)
def test_files_that_are_not_pickles_fail_in_one_line(tmp_path, content):
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    with pytest.raises(ImporterError) as e:
        restricted_load(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_truncated_pickles_fail_in_one_line(tmp_path):
    data = pickle.dumps({"w": torch.randn(64, 64), "b": torch.randn(64), "meta": OrderedDict(n=1)}, protocol=4)
    for cut in (3, len(data) // 3, len(data) // 2, len(data) - 1):
        path = tmp_path / f"cut{cut}.pkl"
        path.write_bytes(data[:cut])
        with pytest.raises(ImporterError) as e:
            restricted_load(path)
        assert "\n" not in str(e.value)
    with pytest.raises(ImporterError, match="no such file"):
        restricted_load(tmp_path / "missing.pkl")


def test_numpy_scalars_decode_from_their_records(tmp_path):
    values = {"f8": np.float64(0.125) / np.sqrt(64), "f4": np.float32(2.5), "i8": np.int64(-7), "b": np.bool_(True)}
    got = restricted_load(_write(tmp_path, values))
    assert all(isinstance(v, StandIn) for v in got.values())
    assert {k: plain_number(v) for k, v in got.items()} == {k: v.item() for k, v in values.items()}
