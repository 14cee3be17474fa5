"""Pickle bombs: each kind, written opcode by opcode or from tiny crafted objects, is one line within seconds.

Every bomb is read in a forked child with a generous deadline and a memory cap (``guarded_child``), so a
regression (a hang, exponential work, a C-level stack overflow in tuple hashing) fails the test instead of
hanging or crashing the test run. No timing is asserted beyond that deadline.
"""

from __future__ import annotations

import io
import pickle
import struct
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from guarded_child import assert_one_line_error
from polyinr.cli import main
from polyinr.errors import PolyinrError
from polyinr.importers import (
    ImporterError,
    convert_checkpoint,
    describe,
    inert_tree,
    list_converters,
    module_tensors,
    restricted_load,
)
from polyinr.importers.registry import build_generator
from polyinr.models.registry import resolve_config

SOURCE = "poly-inr"


def _assert_one_line_error(read: Callable[[], object], *words: str) -> str:
    return assert_one_line_error(read, "ImporterError", *words)


# ---------------------------------------------------------------------------- opcode-level builders

PROTO = b"\x80\x04"


def _str(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _put(i: int) -> bytes:
    return b"r" + struct.pack("<I", i)  # LONG_BINPUT


def _get(i: int) -> bytes:
    return b"j" + struct.pack("<I", i)  # LONG_BINGET


def _new_module() -> bytes:
    """A plain ``nn.Module`` record of a class the reader never imports (GLOBAL, EMPTY_TUPLE, NEWOBJ)."""
    return b"ctraining.networks\nBlock\n)\x81"


def _module_state(modules: bytes) -> bytes:
    """``{'_parameters': {}, '_buffers': {}, '_modules': {…}}`` then BUILD; ``modules`` fills the last dict."""
    empty = _str("_parameters") + b"}s" + _str("_buffers") + b"}s"
    return b"}" + empty + _str("_modules") + b"}" + modules + b"sb"


def _snapshot(g_ema: bytes) -> bytes:
    """``{'G_ema': …}`` around opcodes that push the generator; STOP."""
    return PROTO + b"}" + _str("G_ema") + g_ema + b"s."


def _nested_modules(depth: int) -> bytes:
    """A module chain ``depth`` deep, built iteratively (memo slot i holds level i)."""
    ops = [_new_module(), _module_state(b""), _put(0), b"0"]
    for i in range(1, depth + 1):
        ops += [_new_module(), _module_state(_str("child") + _get(i - 1) + b"s"), _put(i), b"0"]
    return b"".join(ops) + _get(depth)


def _self_containing_module() -> bytes:
    return _new_module() + _put(0) + _module_state(_str("self") + _get(0) + b"s")


def _shared_tuples(depth: int) -> bytes:
    """``t_k = (t_{k-1}, t_{k-1})``: ``depth`` opcodes, 2**depth leaves when hashed."""
    ops = [b"K\x01\x85", _put(0), b"0"]  # t_0 = (1,)
    for i in range(1, depth + 1):
        ops += [_get(i - 1), _get(i - 1), b"\x86", _put(i), b"0"]
    return b"".join(ops) + _get(depth)


def _chained_tuples(depth: int) -> bytes:
    """``t_k = (t_{k-1},)``: hashing it recurses ``depth`` times in C."""
    return b")" + b"\x85" * depth


def _nested_dicts(depth: int) -> bytes:
    """``{'k': {'k': … {}}}`` ``depth`` deep, built with one SETITEM per level."""
    return b"}" + (_str("k") + b"}") * depth + b"s" * depth


def _write(tmp_path, data: bytes, name: str = "bomb.pkl"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _convert(path, out):
    return lambda: convert_checkpoint(SOURCE, path, out)


# ---------------------------------------------------------------------------- object-level builders


class _Block:
    """Pickles as a plain module record: a class global (never imported by the reader) and its state."""

    def __init__(self, parameters: dict | None = None, modules: dict | None = None) -> None:
        self.parameters, self.modules = parameters or {}, modules or {}

    def __reduce__(self):
        return _Block, (), {"_parameters": self.parameters, "_buffers": {}, "_modules": self.modules}


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _typed_storage(t: torch.Tensor):
    """``t.storage()``: deprecated, and still how pickles hold storages by value."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return t.storage()


# ---------------------------------------------------------------------------- the bombs


def test_module_tree_shared_exponentially_is_refused(tmp_path):
    block = _Block({"weight": torch.zeros(2)})
    for _ in range(48):  # 2**48 paths to the leaf, 49 modules in the file
        block = _Block(modules={"a": block, "b": block})
    path = _write(tmp_path, pickle.dumps({"G_ema": block}, protocol=4))
    _assert_one_line_error(_convert(path, tmp_path / "out"), "shares submodules")
    assert not (tmp_path / "out").exists()


def test_shared_submodules_are_read_once_and_named_under_each_parent(tmp_path):
    leaf = _Block({"weight": torch.arange(3.0)})
    root = _Block(modules={"a": _Block(modules={"x": leaf}), "b": leaf})
    tensors = module_tensors(restricted_load(_write(tmp_path, pickle.dumps(root, protocol=4))), "G")
    assert sorted(tensors) == ["a.x.weight", "b.weight"]
    assert tensors["a.x.weight"] is tensors["b.weight"]


def test_module_that_contains_itself_is_refused(tmp_path):
    path = _write(tmp_path, _snapshot(_self_containing_module()))
    _assert_one_line_error(_convert(path, tmp_path / "out"), "contains itself")
    block = _Block()
    block.modules["me"] = block
    path = _write(tmp_path, pickle.dumps({"G_ema": block}, protocol=4), "cycle2.pkl")
    _assert_one_line_error(_convert(path, tmp_path / "out"), "contains itself")
    looped = restricted_load(path)["G_ema"]
    assert inert_tree(looped).state["_modules"]["me"].state["_modules"]["me"] is not None  # cycles are kept


def test_thousands_of_nested_modules_are_refused(tmp_path):
    path = _write(tmp_path, _snapshot(_nested_modules(5000)))
    _assert_one_line_error(_convert(path, tmp_path / "out"), "deep")


def test_exponentially_shared_tuple_as_dict_key_is_refused_while_unpickling(tmp_path):
    path = _write(tmp_path, _snapshot(b"}" + _shared_tuples(62) + b"K\x01s"))  # {t_62: 1}
    _assert_one_line_error(_convert(path, tmp_path / "out"), "tuple")
    _assert_one_line_error(lambda: restricted_load(path), "tuple")


def test_deeply_chained_tuple_as_dict_key_is_refused_while_unpickling(tmp_path):
    path = _write(tmp_path, _snapshot(b"}" + _chained_tuples(200000) + b"K\x01s"))
    _assert_one_line_error(lambda: restricted_load(path), "tuples more than")


def test_tuple_key_hashed_over_and_over_is_refused(tmp_path):
    # t_12 expands to 8190 elements (within the file's bound as a value), then is inserted 200000 times as a key
    inserts = (_get(12) + b"K\x01s") * 200_000
    path = _write(tmp_path, PROTO + _shared_tuples(12) + _put(99) + b"0}" + inserts + b".")
    _assert_one_line_error(lambda: restricted_load(path), "used as a key")
    as_value = _write(tmp_path, PROTO + b"]" + _shared_tuples(12) + b"a.", "value.pkl")
    assert len(restricted_load(as_value)[0]) == 2


@pytest.mark.parametrize("build", ["set", "frozenset", "OrderedDict"])
def test_large_tuple_keys_are_refused_in_collections_built_by_call(tmp_path, build):
    module = "collections" if build == "OrderedDict" else "builtins"
    key = _shared_tuples(12) + (b"K\x01\x86" if build == "OrderedDict" else b"")  # (t_12, 1) as a pair
    call = f"c{module}\n{build}\n".encode() + b"]" + key + b"a\x85R."  # build([key])
    path = _write(tmp_path, PROTO + call)
    _assert_one_line_error(lambda: restricted_load(path), "used as a key")


def test_small_tuple_keys_and_collections_still_load(tmp_path):
    path = _write(tmp_path, PROTO + b"}" + _shared_tuples(6) + b"K\x01s.")
    (key,) = restricted_load(path)
    assert len(key) == 2 and key[0] is key[1]
    obj = {"s": {(1, 2), 3}, "f": frozenset({(1, (2,))}), "od": OrderedDict([((1, 2), "a")]), "b": bytearray(b"x")}
    for protocol in (2, 4):
        assert restricted_load(_write(tmp_path, pickle.dumps(obj, protocol=protocol), f"ok{protocol}.pkl")) == obj


def test_bytearray_of_a_size_is_refused(tmp_path):
    path = _write(tmp_path, PROTO + b"cbuiltins\nbytearray\n\x8a\x06" + (1 << 40).to_bytes(6, "little") + b"\x85R.")
    _assert_one_line_error(lambda: restricted_load(path), "bytearray")


def test_deeply_nested_values_are_refused_by_the_readers(tmp_path):
    path = _write(tmp_path, PROTO + _nested_dicts(100000) + b".")
    _assert_one_line_error(lambda: inert_tree(restricted_load(path)), "deep")
    deep_list = PROTO + b"]" * 100000 + b"a" * 99999 + b"."  # [[[…]]] 100000 deep, as a snapshot's G_ema
    path = _write(tmp_path, PROTO + b"}" + _str("G_ema") + deep_list[2:-1] + b"s.", "list.pkl")
    _assert_one_line_error(_convert(path, tmp_path / "out"), "not a torch module")


def test_stride_zero_view_over_a_tiny_storage_is_refused(tmp_path):
    huge = torch.zeros(1).expand(100_000, 100_000)  # 10**10 elements claimed over one
    for writer in ("pickle", "torch"):
        data = io.BytesIO()
        block = _Block({"weight": huge})
        pickle.dump({"G_ema": block}, data, protocol=4) if writer == "pickle" else torch.save({"w": huge}, data)
        path = _write(tmp_path, data.getvalue(), f"{writer}.pkl")
        _assert_one_line_error(lambda p=path: restricted_load(p), "10,000,000,000 elements")
    small = torch.zeros(1).expand(1000)  # an ordinary expanded buffer still loads, as a view
    got = restricted_load(_write(tmp_path, pickle.dumps(small, protocol=4), "small.pkl"))
    assert got.shape == (1000,) and got.stride() == (0,)


def test_view_beyond_its_storage_is_refused(tmp_path):
    storage = _typed_storage(torch.zeros(4))
    beyond = _Reduce(torch._utils._rebuild_tensor_v2, (storage, 2, (4,), (1,), False, OrderedDict()))
    path = _write(tmp_path, pickle.dumps({"w": beyond}, protocol=4))
    _assert_one_line_error(lambda: restricted_load(path), "reaches element 6 of a storage of 4")
    strided = _Reduce(torch._utils._rebuild_tensor_v2, (storage, 0, (2, 10**12), (1, 10**6), False, OrderedDict()))
    path = _write(tmp_path, pickle.dumps({"w": strided}, protocol=4), "strided.pkl")
    _assert_one_line_error(lambda: restricted_load(path), "reaches element")


def test_storage_blob_claiming_more_than_it_holds_is_refused_before_allocating(tmp_path):
    storage = _typed_storage(torch.zeros(2))
    data = io.BytesIO()
    torch.save(storage, data, _use_new_zipfile_serialization=False)  # the blob _load_from_bytes reads
    blob, n = data.getvalue(), 10**11  # 400 GB claimed, in the persistent id and in the size header
    bad = blob.replace(b"cpuq\x03K\x02Ntq", b"cpuq\x03\x8a\x05" + n.to_bytes(5, "little") + b"Ntq")
    bad = bad[:-16] + n.to_bytes(8, "little") + bad[-8:]
    assert bad != blob
    path = _write(tmp_path, pickle.dumps({"s": _Reduce(torch.storage._load_from_bytes, (bad,))}, protocol=4))
    _assert_one_line_error(lambda: restricted_load(path), "claims 100,000,000,000 elements but the file holds 8")
    good = _write(tmp_path, pickle.dumps({"s": _Reduce(torch.storage._load_from_bytes, (blob,))}), "good.pkl")
    assert restricted_load(good)["s"].size() == 2


def test_zip_entries_unpacking_far_beyond_the_archive_are_refused(tmp_path):
    data = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, data)
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(io.BytesIO(data.getvalue())) as source, zipfile.ZipFile(path, "w") as bomb:
        for info in source.infolist():
            bomb.writestr(info.filename, source.read(info), zipfile.ZIP_DEFLATED)
        bomb.writestr("archive/data/padding", bytes(1 << 25), zipfile.ZIP_DEFLATED)  # 32 MiB of zeros, ~32 KiB
    _assert_one_line_error(lambda: restricted_load(path), "unpack to")


def test_legacy_torch_save_files_are_read_restrictedly_and_their_claims_checked(tmp_path):
    base = torch.arange(6.0).view(2, 3)
    path = tmp_path / "legacy.pt"
    torch.save({"a": base, "view": base[1], "n": 3}, path, _use_new_zipfile_serialization=False)
    got = restricted_load(path)
    assert torch.equal(got["a"], base) and torch.equal(got["view"], base[1]) and got["n"] == 3
    data = path.read_bytes()
    n = 10**11
    header = (6).to_bytes(8, "little")  # the storage's element count, before its 24 bytes
    assert data.count(header) == 1
    bomb = _write(
        tmp_path,
        data.replace(b"K\x06N", b"\x8a\x05" + n.to_bytes(5, "little") + b"N").replace(header, n.to_bytes(8, "little")),
        "legacy-bomb.pt",
    )
    _assert_one_line_error(lambda: restricted_load(bomb), "claims 100,000,000,000 elements")


@pytest.mark.parametrize("opcode", [b"\x8e", b"\x96", b"\x8d"], ids=["BINBYTES8", "BYTEARRAY8", "BINUNICODE8"])
def test_lengths_beyond_the_file_are_refused_before_reading(tmp_path, opcode):
    path = _write(tmp_path, b"\x80\x05" + opcode + struct.pack("<Q", 1 << 50) + b"tiny.")
    _assert_one_line_error(lambda: restricted_load(path), "bytes where only")


def test_recorded_attribute_shared_exponentially_is_described_briefly(authors, tmp_path):
    G = authors.generator(0, n=8)
    dag: list = [1]
    for _ in range(60):  # printing it in full would take 2**60 steps
        dag = [dag, dag]
    G.mapping.z_dim = dag
    path = authors.write(authors.snapshot(G, discriminator=False), writer="pickle")
    _assert_one_line_error(_convert(path, tmp_path / "out"), "z_dim is [a list, a list], but the tensors say 16")


def test_values_no_converter_check_foresaw_are_one_line(authors, tmp_path):
    G = authors.generator(0, n=8)
    G.mapping.fc0.bias_gain = "fast"  # float('fast') inside the converter
    path = authors.write(authors.snapshot(G, discriminator=False), writer="pickle")
    _assert_one_line_error(_convert(path, tmp_path / "out"), "holds values poly-inr cannot use")


def test_describe_is_short_for_any_value():
    assert describe((3, "a", None)) == "(3, 'a', None)" and describe(2**4000) == "an integer of 4,001 bits"
    assert describe("x" * 1000).endswith("…") and len(describe(list(range(100)))) <= 60
    assert describe(torch.zeros(2, 3)) == "a tensor of shape [2, 3]"


def test_build_generator_checks_on_the_meta_device_first():  # first: the children below inherit meta's imports
    def cfg(channels):
        return resolve_config("poly-inr", channels=channels, num_levels=2, img_resolution=8)

    with pytest.raises(ImporterError, match="impossible"):
        build_generator("poly-inr", cfg(10**12), 1000)
    with pytest.raises(ImporterError, match="GiB of weights"):
        build_generator("poly-inr", cfg(60_000), 1000)
    G = build_generator("poly-inr", cfg(8), 1000)
    assert isinstance(G, nn.Module) and next(G.parameters()).device.type == "cpu"


def test_absurd_sizes_from_tensor_shapes_are_refused_before_the_model_is_built(authors, tmp_path):
    G = authors.generator(0, n=8)  # zero-element tensors may carry any shape: here n = 60000
    G.synthesis.fc0_0.weight = nn.Parameter(torch.empty(60000, 0))
    G.synthesis.to_rgb.weight = nn.Parameter(torch.empty(0, 60000, 1, 1))
    G.synthesis.z_dim1, G.synthesis.nc = 60000, 0  # the recorded attributes agree: the file is consistent
    path = authors.write(authors.snapshot(G, discriminator=False), writer="pickle")
    message = _assert_one_line_error(_convert(path, tmp_path / "out"), "GiB of weights")
    assert "channels=60000" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("converter", [c.name for c in list_converters()])
def test_every_converter_refuses_the_module_bombs(tmp_path, converter):
    shared = _Block({"weight": torch.zeros(2)})
    for _ in range(48):
        shared = _Block(modules={"a": shared, "b": shared})
    bombs = [  # a converter that reads no module tree (state dicts only) refuses them as not its format
        _snapshot(_self_containing_module()),
        _snapshot(_nested_modules(5000)),
        pickle.dumps({"G_ema": shared}, protocol=4),
        _snapshot(b"}" + _shared_tuples(62) + b"K\x01s"),
    ]
    for i, data in enumerate(bombs):
        path = _write(tmp_path, data, f"bomb{i}.pkl")
        _assert_one_line_error(lambda p=path: convert_checkpoint(converter, p, tmp_path / "out"))


def test_bomb_errors_are_library_errors_and_one_line_on_the_command_line(tmp_path):
    path = _write(tmp_path, _snapshot(_self_containing_module()))
    with pytest.raises(PolyinrError, match="contains itself"):
        convert_checkpoint(SOURCE, path, tmp_path / "out")
    result = CliRunner().invoke(main, ["convert", "--from", SOURCE, str(path), str(tmp_path / "out")])
    assert result.exit_code != 0 and "contains itself" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


# ---------------------------------------------------------------------------- opcodes that modify real objects


class _Restored:
    """Pickles as a one-element tensor followed by ``BUILD`` with ``state``: unpickling calls the tensor's own
    ``__setstate__``, whose 4-tuple form is ``set_(storage, offset, size, stride)`` with sizes the file chose."""

    def __init__(self, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage = _typed_storage(torch.ones(1))
        self.size, self.stride = size, stride

    def __reduce__(self):
        args = (self.storage, 0, (1,), (1,), False, OrderedDict())
        return torch._utils._rebuild_tensor_v2, args, (self.storage, 0, self.size, self.stride)


@pytest.mark.parametrize(
    "size, stride", [((1 << 28,), (0,)), ((1 << 20,), (1,))], ids=["stride-0-view", "storage-grown"]
)
def test_a_tensor_restored_with_state_from_the_file_is_refused(tmp_path, size, stride):
    path = _write(tmp_path, pickle.dumps({"w": _Restored(size, stride)}, protocol=4))
    message = _assert_one_line_error(lambda: restricted_load(path), "tries to modify a Tensor")
    assert "nothing from it was run" in message


def test_item_and_slice_assignment_to_real_objects_is_refused(tmp_path):
    s = b"cbuiltins\nslice\nK\x00K\x00\x86R" + _put(1) + b"0"  # slice(0, 0), kept in memo slot 1
    doubling = PROTO + s + b"]K\x01a" + _put(0) + (_get(1) + _get(0) + b"s") * 20 + b"."  # l[0:0] = l, 20 times
    _assert_one_line_error(lambda: restricted_load(_write(tmp_path, doubling)), "tries to modify a list")
    tensor = pickle.dumps(torch.zeros(3), protocol=4)[:-1]  # a tensor on the stack; then t[0] = 5.0
    path = _write(tmp_path, tensor + b"K\x00G@\x14\x00\x00\x00\x00\x00\x00s.", "tensor.pkl")
    _assert_one_line_error(lambda: restricted_load(path), "tries to modify a Tensor")
    path = _write(tmp_path, PROTO + b"ctorch\nfloat32\n(K\x01e.", "dtype.pkl")  # APPENDS onto a dtype
    _assert_one_line_error(lambda: restricted_load(path), "tries to modify a dtype")


def test_state_dicts_with_metadata_and_records_with_state_still_load(tmp_path):
    state = nn.Linear(2, 3).state_dict()  # an OrderedDict with a _metadata attribute, restored by BUILD
    data = io.BytesIO()
    torch.save(state, data)
    got = restricted_load(_write(tmp_path, data.getvalue(), "state.pt"))
    assert list(got) == ["weight", "bias"] and all(torch.equal(got[k], state[k]) for k in state)
    block = restricted_load(_write(tmp_path, pickle.dumps(_Block({"w": torch.ones(2)}), protocol=4), "b.pkl"))
    assert torch.equal(block.state["_parameters"]["w"], torch.ones(2))


@pytest.mark.parametrize("converter", [c.name for c in list_converters()])
def test_every_converter_refuses_a_tensor_restored_with_state_from_the_file(tmp_path, converter):
    grown = _Block({"weight": _Restored((4096,), (1,))})
    path = _write(tmp_path, pickle.dumps({"G_ema": grown, "state_dict": {"w": grown}}, protocol=4))
    _assert_one_line_error(lambda: convert_checkpoint(converter, path, tmp_path / "out"), "tries to modify")
    assert not (tmp_path / "out").exists()
