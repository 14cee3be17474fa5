"""The restricted unpickler: read a pickle or a ``torch.save`` archive without running code from it.

Loading a foreign checkpoint with :mod:`pickle` imports the modules it names and may run anything (the Poly-INR
authors' ``dill`` snapshots even carry functions and code objects). :func:`restricted_load` reads it instead
with an unpickler that

- resolves for real only an allow-list: the torch tensor/parameter/storage rebuild functions (wrapped, with
  their arguments checked; a storage pickled by value is parsed here, its pickles read restrictedly), torch
  dtypes and a few harmless builtins (``collections.OrderedDict``, ``set``, …);
- turns every other global into an inert :class:`StandIn` that only records its constructor arguments and
  state: nothing is imported, no source text is compiled, no code or function object is created;
- applies the opcodes that fill or modify an object (``BUILD``, ``SETITEM(S)``, ``APPEND(S)``, ``ADDITEMS``)
  only to the objects they are meant for: ``BUILD`` to stand-ins alone (a plain ``OrderedDict``'s attributes,
  such as a state dict's ``_metadata``, are dropped), items to dicts and stand-ins, elements to lists and
  stand-ins, members to sets; never to a tensor, a storage or another real object, so a tensor is final when
  it is made and no state the file chooses reaches its own ``__setstate__`` / ``set_``;
- refuses, with a one-line :class:`UnsafePickleError` naming the global, a pickle that calls something that
  could run code or touch the system (``os.system``, ``builtins.eval``, ``subprocess.Popen``, …).

Every storage is rebuilt on the CPU, whatever device the file names. The work and memory of a read are bounded
by the size of the file (pickle bombs are refused with one line): no length a pickle or archive claims is
allocated before it is checked against the bytes actually present; tuples (which Python hashes recursively and
without a depth guard) may neither nest deeper than :data:`MAX_TUPLE_DEPTH` nor expand, shared parts counted
each time, beyond the file's size; and a tensor's size, stride and offset must lie within the storage present,
without claiming more elements than it holds (beyond :data:`MAX_VIEW_ELEMENTS`), checked on the tensor as made:
every tensor that comes out is backed by bytes present in the file.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import torch

from polyinr.errors import PolyinrError
from polyinr.terminal import printable


class ImporterError(PolyinrError):
    """A file to convert is missing, corrupt, or not the kind of checkpoint it was said to be."""


class UnsafePickleError(ImporterError):
    """A pickle asks to call something that could run code; it was refused and nothing was run."""


MAX_TUPLE_DEPTH = 64  # tuples nested deeper are refused (hashing one recurses in C, with no guard)
MAX_VIEW_ELEMENTS = 1 << 24  # a tensor may claim more elements than its storage holds (stride 0) up to this
MAX_TENSOR_DIMS = 64  # torch's own limit
MAX_KEY_SIZE = 256  # a tuple used as a dict key or set member may hold at most this many elements, nested


def _check_keys(keys: Any) -> None:
    """Dict keys and set members must be cheap to hash: a tuple key (hashed recursively, every time it is
    inserted) may hold at most :data:`MAX_KEY_SIZE` elements counting nested tuples; each check is bounded."""
    for key in keys:
        if type(key) is not tuple:
            continue
        left, todo = MAX_KEY_SIZE, [key]
        while todo:
            items = todo.pop()
            left -= len(items)
            if left < 0:
                raise ImporterError(f"a tuple used as a key holds over {MAX_KEY_SIZE} elements (nested or shared)")
            todo.extend(item for item in items if type(item) is tuple)


def describe(value: Any, limit: int = 60) -> str:
    """A short text for an untrusted value in an error message, in time bounded by ``limit``.

    Never a full ``repr``: a pickled structure that shares its parts prints in exponential time, and one
    nested deeply enough recurses without end. Scalars and flat sequences of them print as Python would; the
    names of stand-in classes (taken from the file) with control characters escaped.
    """
    if value is None or isinstance(value, (bool, float, complex)):
        text = repr(value)
    elif isinstance(value, int):
        text = repr(value) if value.bit_length() <= 128 else f"an integer of {value.bit_length():,} bits"
    elif isinstance(value, (str, bytes, bytearray)):
        text = repr(value[: limit + 1])
    elif isinstance(value, (tuple, list)):
        inner = ", ".join(_describe_item(v) for v in value[:8]) + (", …" if len(value) > 8 else "")
        text = f"({inner}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{inner}]"
    elif isinstance(value, torch.Tensor):
        text = f"a tensor of shape {list(value.shape)}"
    elif isinstance(value, StandIn):
        text = f"<stand-in {printable(type(value).module[:limit])}.{printable(type(value).name[:limit])}>"
    else:
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe_item(value: Any) -> str:
    flat = value is None or isinstance(value, (bool, int, float, str))
    return describe(value, 20) if flat else f"a {type(value).__name__}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# ---------------------------------------------------------------------------- stand-ins


class StandIn:
    """Inert record of an object a pickle builds from the global ``module.name``, which is never imported.

    Pickle opcodes land here instead of running anything: a call or ``__new__`` records ``args`` /
    ``kwargs``, ``BUILD`` records ``state``, ``SETITEMS`` fills ``items`` and ``APPENDS`` fills ``elements``.
    Calling a stand-in instance (e.g. the result of a recorded ``getattr``) gives another inert record.
    """

    module: ClassVar[str] = ""
    name: ClassVar[str] = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> StandIn:
        self = object.__new__(cls)
        self.args, self.kwargs = args, kwargs
        self.state: Any = None
        self.items: dict[Any, Any] = {}
        self.elements: list[Any] = []
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # everything was recorded by __new__, which NEWOBJ calls without __init__

    @classmethod
    def qualname(cls) -> str:
        return f"{cls.module}.{cls.name}"

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.elements.append(value)

    def extend(self, values: Any) -> None:
        self.elements.extend(values)

    def __call__(self, *args: Any, **kwargs: Any) -> StandIn:
        return _stand_in_class("(call)", self.qualname())(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<stand-in {printable(self.qualname())}>"


class _Forbidden(StandIn):
    """Stand-in of a global that could run code: building or calling it refuses the whole pickle."""

    def __new__(cls, *args: Any, **kwargs: Any) -> StandIn:
        raise UnsafePickleError(f"it calls {printable(cls.qualname())}, which could run code or touch the system")


class _TypeFactory(StandIn):
    """Stand-in of ``dill._dill._create_type`` (a class pickled by value): makes an inert stand-in class."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        name = args[1] if len(args) > 1 and isinstance(args[1], str) else "class"
        return _stand_in_class("(pickled by value)", name)


def _stand_in_class(module: str, name: str, base: type[StandIn] = StandIn) -> type[StandIn]:
    return type(name if name.isidentifier() else "StandIn", (base,), {"module": module, "name": name})


# Callables with no business in a checkpoint: a pickle that calls one is refused outright, so the user learns
# the file is hostile. Safety does not rest on these lists: every global outside the allow-list is inert anyway.
# Modules match on their first dotted component; _DANGEROUS_GLOBALS entries match a name or a module prefix.
_DANGEROUS_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "sys",
        "shutil",
        "importlib",
        "runpy",
        "pty",
        "socket",
        "ctypes",
        "multiprocessing",
        "webbrowser",
        "code",
        "codeop",
        "pickle",
        "_pickle",
        "marshal",
        "signal",
        "pdb",
        "asyncio",
        "threading",
        "_thread",
        "tempfile",
        "shelve",
        "http",
        "urllib",
        "ftplib",
        "smtplib",
        "zipimport",
        "commands",
        "popen2",
    }
)
_DANGEROUS_BUILTINS = frozenset(
    {
        "eval",
        "exec",
        "compile",
        "__import__",
        "open",
        "breakpoint",
        "input",
        "exit",
        "quit",
        "help",
        "globals",
        "locals",
        "vars",
    }
)
_DANGEROUS_GLOBALS = frozenset(
    {
        "io.open",
        "_io.open",
        "io.FileIO",
        "_io.FileIO",
        "io.open_code",
        "codecs.open",
        "zipfile.ZipFile",
        "tarfile.open",
        "logging.FileHandler",
        "logging.handlers",
        "numpy.load",
        "numpy.save",
        "numpy.memmap",
        "torch.load",
        "torch.save",
        "torch.hub",
        "torch.jit.load",
        "dill.load",
        "dill.loads",
    }
)


def _is_dangerous(module: str, name: str) -> bool:
    if module == "builtins":
        return name in _DANGEROUS_BUILTINS
    qualname = f"{module}.{name}"
    return module.split(".")[0] in _DANGEROUS_MODULES or any(
        qualname == g or qualname.startswith(g + ".") for g in _DANGEROUS_GLOBALS
    )


# ---------------------------------------------------------------------------- the allow-list


def _check_ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise ImporterError(f"tensor {what} must be non-negative integers, got {describe(value)}")
    return tuple(value)


def _rebuild_tensor(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2`` with its arguments checked; hooks and metadata are dropped."""
    if not isinstance(storage, torch.storage.TypedStorage):
        raise ImporterError(f"tensor data is not a torch storage but {describe(storage)}")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise ImporterError(f"tensor storage offset must be a non-negative integer, got {describe(storage_offset)}")
    size, stride = _check_ints(size, "size"), _check_ints(stride, "stride")
    if len(size) != len(stride) or len(size) > MAX_TENSOR_DIMS:
        raise ImporterError(
            f"tensor size {size!s:.80} and stride {stride!s:.80} differ in length or have over "
            f"{MAX_TENSOR_DIMS} dimensions"
        )
    _check_view(storage._size(), storage_offset, size, stride)  # before torch allocates anything for the view
    tensor = torch._utils._rebuild_tensor(storage, storage_offset, size, stride)
    _check_view(storage._size(), tensor.storage_offset(), tuple(tensor.shape), tuple(tensor.stride()))
    if tensor.untyped_storage().nbytes() != storage._untyped_storage.nbytes():
        raise ImporterError("a tensor's storage changed size while it was rebuilt")
    return tensor


def _check_view(available: int, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
    """A view ``size`` / ``stride`` at ``offset`` must lie within a storage of ``available`` elements and not
    claim more elements than it holds beyond :data:`MAX_VIEW_ELEMENTS` (a stride-0 view is never materialised
    bigger than that)."""
    numel = math.prod(size)
    if numel == 0:
        return
    end = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) + 1
    if end > available:
        raise ImporterError(
            f"a tensor of size {list(size)} (stride {list(stride)}, offset {offset}) reaches element {end} of a "
            f"storage of {available}"
        )
    if numel > max(available, MAX_VIEW_ELEMENTS):
        raise ImporterError(
            f"a tensor of size {list(size)} claims {numel:,} elements over a storage of {available:,} "
            f"(a stride-0 view larger than {MAX_VIEW_ELEMENTS:,} elements)"
        )


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None, state: Any = None):
    """``torch._utils._rebuild_parameter(_with_state)``: the parameter's data as a plain tensor."""
    if not isinstance(data, torch.Tensor):
        raise ImporterError(f"parameter data is not a tensor but {describe(data)}")
    return data


def _rebuild_from_type(func: Any, new_type: Any, args: Any, state: Any) -> torch.Tensor:
    """``torch._tensor._rebuild_from_type_v2`` (a tensor carrying Python attributes): the plain tensor."""
    if not (isinstance(func, _Allowed) and func.func in (_rebuild_tensor, _rebuild_parameter)):
        raise ImporterError(f"unexpected tensor rebuild {describe(func)}")
    if not isinstance(args, tuple):
        raise ImporterError("malformed tensor rebuild arguments")
    return func(*args)


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch's legacy (non-zip) serialization
_LEGACY_PROTOCOL = 1001
_LEGACY_HEAD = b"\x80\x02\x8a\x0a" + _LEGACY_MAGIC.to_bytes(10, "little")[:8]  # its first pickle's first bytes


def _load_from_bytes(data: Any) -> torch.storage.TypedStorage:
    """``torch.storage._load_from_bytes``: a storage in torch's legacy ``torch.save`` format, read here (or
    in its zip format, read as :func:`restricted_load` reads a zip archive).

    A legacy blob is four pickles (magic number, protocol, system info, the storage as a persistent id
    ``('storage', type, key, location, numel, None)``), a pickled list of keys, then the storage's element
    count (int64) and its bytes. Each pickle is read by the restricted unpickler, and the count must match
    the bytes actually present before anything is allocated.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise ImporterError(f"storage data is not bytes but {type(data).__name__}")
    try:
        if bytes(data[:4]) == b"PK\x03\x04":  # written by torch.save's default (zip) format instead
            storage = _load_zip(io.BytesIO(data), len(data))
            if not isinstance(storage, torch.storage.TypedStorage):
                raise ImporterError(f"it holds {describe(storage)}, not a storage")
            return storage
        return _legacy_storage(io.BytesIO(data), len(data))
    except UnsafePickleError as e:
        raise UnsafePickleError(f"a tensor's data is not a plain torch storage ({e})") from None
    except ImporterError as e:
        raise ImporterError(f"a tensor's data is not a plain torch storage ({e})") from None


def _legacy_storage(f: BinaryIO, size: int) -> torch.storage.TypedStorage:
    storage = _load_legacy(f, size)
    if not isinstance(storage, torch.storage.TypedStorage):
        raise ImporterError(f"it holds {describe(storage)}, not a storage")
    return storage


def _load_legacy(f: BinaryIO, size: int) -> Any:
    """A file in torch's legacy ``torch.save`` format: four pickles (magic number, protocol, system info, the
    object, whose storages are persistent ids ``('storage', type, key, location, numel, None)``), a pickled
    list of keys, then each storage's element count (int64) and bytes.

    The object is read twice: first with storages on the meta device (nothing allocated) to learn what they
    claim, then, once every claim has matched the bytes actually present, with the real storages.
    """

    def next_pickle(storages: dict[str, Any] | None = None) -> Any:
        return _LegacyStorageUnpickler(f, size - f.tell(), storages).load()

    magic, protocol, info = next_pickle(), next_pickle(), next_pickle()
    if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL:
        raise ImporterError("it lacks torch's magic number")
    if not (isinstance(info, dict) and info.get("little_endian") is True):
        raise ImporterError("it is not little-endian")
    start, claimed = f.tell(), {}
    next_pickle(claimed)  # storages on the meta device: claims only
    keys = next_pickle()
    if not (isinstance(keys, list) and sorted(map(str, keys)) == sorted(claimed)):
        raise ImporterError("its list of storages does not match the storages it uses")
    storages = {}
    for key in keys:
        header = f.read(8)
        if len(header) != 8:
            raise ImporterError("it ends before a storage's size")
        (numel,) = struct.unpack("<q", header)
        storage = claimed[key]
        nbytes = storage._untyped_storage.nbytes()
        if numel != storage._size() or nbytes > size - f.tell():
            raise ImporterError(
                f"storage {describe(key)} claims {storage._size():,} elements but the file holds "
                f"{max(size - f.tell(), 0):,} more bytes"
            )
        data = f.read(nbytes)
        untyped = torch.UntypedStorage.from_buffer(data, dtype=torch.uint8) if nbytes else torch.UntypedStorage(0)
        storages[key] = torch.storage.TypedStorage(wrap_storage=untyped, dtype=storage.dtype, _internal=True)
    f.seek(start)
    return next_pickle(storages)


def _slice(*args: Any) -> slice:
    """``builtins.slice`` of integers or None only (a slice hashes its members)."""
    if not 1 <= len(args) <= 3 or not all(a is None or type(a) is int for a in args):
        raise ImporterError("a slice in the pickle holds something other than integers")
    return slice(*args)


def _items(args: tuple[Any, ...], pairs: bool) -> list[Any]:
    """The one iterable argument of a set / frozenset / OrderedDict call, as a list (keys checked)."""
    if len(args) > 1:
        raise ImporterError(f"a pickled collection is built from {len(args)} arguments")
    items = list(args[0]) if args else []
    if pairs:
        if isinstance(args[0] if args else None, dict):
            return list(args[0].items())
        if not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in items):
            raise ImporterError("a pickled OrderedDict is built from something other than pairs")
    _check_keys([p[0] for p in items] if pairs else items)
    return items


def _ordered_dict(*args: Any) -> OrderedDict:
    """``collections.OrderedDict`` (empty, or from pairs / a dict) with its keys checked."""
    return OrderedDict(_items(args, pairs=True))


def _set(*args: Any) -> set:
    return set(_items(args, pairs=False))


def _frozenset(*args: Any) -> frozenset:
    return frozenset(_items(args, pairs=False))


def _bytearray(*args: Any) -> bytearray:
    """``builtins.bytearray`` of bytes, or of latin-1 text as protocol 2 writes it; never of a size."""
    if not args:
        return bytearray()
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytearray(args[0])
    if len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
        return bytearray(args[0], "latin-1")
    raise ImporterError("a pickled bytearray is built from something other than bytes")


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: latin-1 text only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ImporterError(f"unexpected _codecs.encode({type(text).__name__}, {describe(encoding)}) in the pickle")
    return text.encode("latin1")


class _Allowed:
    """An allow-listed function, as the unpickler hands it out."""

    __slots__ = ("func",)

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func

    def __call__(self, *args: Any) -> Any:
        return self.func(*args)

    def __repr__(self) -> str:
        return f"<allowed {self.func.__name__}>"


class _StorageType:
    """What ``torch.FloatStorage`` & co. resolve to: only a dtype tag for persistent-id storages."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"<storage type {self.dtype}>"


_STORAGE_TYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
_DTYPES = (
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
)

_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _Allowed(_ordered_dict),
    ("builtins", "set"): _Allowed(_set),
    ("builtins", "frozenset"): _Allowed(_frozenset),
    ("builtins", "slice"): _Allowed(_slice),
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): _Allowed(_bytearray),
    ("_codecs", "encode"): _Allowed(_codecs_encode),
    ("torch._utils", "_rebuild_tensor_v2"): _Allowed(_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): _Allowed(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Allowed(_rebuild_parameter),
    ("torch._tensor", "_rebuild_from_type_v2"): _Allowed(_rebuild_from_type),
    ("torch.storage", "_load_from_bytes"): _Allowed(_load_from_bytes),
    **{("torch", str(dtype).removeprefix("torch.")): dtype for dtype in _DTYPES},
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_TYPES.items()},
}
_BASES: dict[str, type[StandIn]] = {"dill._dill._create_type": _TypeFactory}  # globals that build classes
_COMPAT_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # Python 2 names still written by dill


# ---------------------------------------------------------------------------- the unpickler


class _Budget:
    """A binary file that refuses a read beyond its remaining bytes before anything is allocated for it."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self.file, self.left = file, size

    def read(self, n: int = -1) -> bytes:
        if n > self.left:
            raise ImporterError(f"it claims {n:,} bytes where only {self.left:,} remain")
        data = self.file.read(n)
        self.left -= len(data)
        return data

    def readline(self) -> bytes:
        line = self.file.readline()
        self.left -= len(line)
        return line


_TUPLE_OPCODES = (pickle.TUPLE, pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3)


class _RestrictedUnpickler(pickle._Unpickler):  # the Python unpickler: its opcodes can be checked one by one
    """A pickle reader that resolves only :data:`_SAFE_GLOBALS`; every other global is a :class:`StandIn`.

    ``file`` holds ``size`` bytes: no length the pickle claims beyond them is read, and no tuple may expand
    beyond ``size`` elements (shared parts counted each time) or nest deeper than :data:`MAX_TUPLE_DEPTH`.
    """

    dispatch: ClassVar[dict[int, Callable[..., None]]] = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: BinaryIO, size: int, read_record: Callable[[str, int], bytes] | None = None) -> None:
        super().__init__(_Budget(file, size))
        self._read_record = read_record  # storage bytes by key and expected length, for torch zip archives
        self._stand_ins: dict[tuple[str, str], type[StandIn]] = {}
        self._max_tuple = max(size, 1 << 16)
        self._tuples: dict[int, tuple[tuple[Any, ...], int, int]] = {}  # id → (tuple, expanded size, depth)

    def _check_tuple(self) -> None:
        """After a tuple opcode: its expanded size and depth, from those of the tuples it holds."""
        t = self.stack[-1]
        size, depth = len(t), 1
        for item in t:
            if type(item) is tuple and item:
                _, item_size, item_depth = self._tuples.get(id(item), (item, len(item), 1))
                size, depth = size + item_size, max(depth, item_depth + 1)
        if depth > MAX_TUPLE_DEPTH:
            raise ImporterError(f"it nests tuples more than {MAX_TUPLE_DEPTH} deep")
        if size > self._max_tuple:
            raise ImporterError(f"a tuple in it expands to over {self._max_tuple:,} elements (shared over and over)")
        self._tuples[id(t)] = (t, size, depth)  # the tuple is kept alive, so its id stays its own

    def _load_bytearray8(self) -> None:
        (n,) = struct.unpack("<Q", self.read(8))
        self.append(bytearray(self.read(n)))  # read (and checked) before any allocation

    def _load_build(self) -> None:
        """``BUILD``: a stand-in records the state; a plain ``OrderedDict``'s attribute dict (a state dict's
        ``_metadata``) is dropped; anything else (a tensor, a storage, an allow-listed object) is refused."""
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, StandIn):
            target.__setstate__(state)
        elif not (type(target) is OrderedDict and isinstance(state, dict)):
            raise UnsafePickleError(f"it tries to modify a {type(target).__name__}: {describe(target)}")

    def find_class(self, module: str, name: str) -> Any:
        module = _COMPAT_MODULES.get(module, module)
        safe = _SAFE_GLOBALS.get((module, name))
        if safe is not None:
            return safe
        key = (module, name)
        if key not in self._stand_ins:
            base = _Forbidden if _is_dangerous(module, name) else _BASES.get(f"{module}.{name}", StandIn)
            self._stand_ins[key] = _stand_in_class(module, name, base)
        return self._stand_ins[key]

    def persistent_load(self, pid: Any) -> torch.storage.TypedStorage:
        """A storage of a ``torch.save`` zip archive: ``('storage', type, key, location, numel)``."""
        if self._read_record is None:
            raise ImporterError("it refers to external storages (persistent ids) but is not a torch zip archive")
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ImporterError(f"it has an unknown persistent id {describe(pid)}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not isinstance(numel, int):
            raise ImporterError(f"it has a malformed storage reference {describe(pid, 80)}")
        itemsize = torch.empty((), dtype=storage_type.dtype).element_size()
        data = self._read_record(key, numel * itemsize)
        untyped = torch.UntypedStorage.from_buffer(data, dtype=torch.uint8) if data else torch.UntypedStorage(0)
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=storage_type.dtype, _internal=True)


class _LegacyStorageUnpickler(_RestrictedUnpickler):
    """A pickle of torch's legacy format. With ``storages`` None, persistent ids are not allowed; with a dict
    that is empty, each becomes a storage on the meta device recorded there (a claim, nothing allocated);
    otherwise each is looked up in it (real storages whose claims were checked)."""

    def __init__(self, file: BinaryIO, size: int, storages: dict[str, Any] | None) -> None:
        super().__init__(file, size)
        self._storages = storages
        self._claiming = storages is not None and not storages

    def persistent_load(self, pid: Any) -> torch.storage.TypedStorage:
        if self._storages is None:
            raise ImporterError("it has a persistent id where none belongs")
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage" and pid[5] is None):
            raise ImporterError(f"it has an unknown persistent id {describe(pid)}")
        _, storage_type, key, _location, numel, _ = pid
        if not (isinstance(storage_type, _StorageType) and isinstance(key, str) and type(numel) is int and numel >= 0):
            raise ImporterError(f"it has a malformed storage reference {describe(pid, 80)}")
        if self._claiming and key not in self._storages:
            itemsize = torch.empty((), dtype=storage_type.dtype).element_size()
            untyped = torch.UntypedStorage(numel * itemsize, device="meta")
            self._storages[key] = torch.storage.TypedStorage(
                wrap_storage=untyped, dtype=storage_type.dtype, _internal=True
            )
        storage = self._storages.get(key)
        if storage is None or storage.dtype != storage_type.dtype or storage._size() != numel:
            raise ImporterError(f"storage {describe(key)} is referred to inconsistently")
        return storage


def _wrap_tuple_opcode(load: Callable[[_RestrictedUnpickler], None]) -> Callable[[_RestrictedUnpickler], None]:
    def checked(self: _RestrictedUnpickler) -> None:
        load(self)
        self._check_tuple()

    return checked


def _guard(
    opcode: bytes,
    target: Callable[[_RestrictedUnpickler], Any] | None = None,
    kinds: tuple[type, ...] = (),
    keys: Callable[[_RestrictedUnpickler], Any] | None = None,
) -> None:
    """Check ``opcode`` before pickle applies it: the object it fills (``target``) must be a stand-in or of one
    of ``kinds`` exactly (a list's slice assignment, a tensor's or a storage's item assignment never happen);
    the dict keys or set members it inserts (``keys``) must be cheap to hash."""
    load = pickle._Unpickler.dispatch[opcode[0]]

    def checked(self: _RestrictedUnpickler) -> None:
        if target is not None:
            obj = target(self)
            if type(obj) not in kinds and not isinstance(obj, StandIn):
                raise UnsafePickleError(f"it tries to modify a {type(obj).__name__}: {describe(obj)}")
        if keys is not None:
            _check_keys(keys(self))
        load(self)

    _RestrictedUnpickler.dispatch[opcode[0]] = checked


def _marked(u: _RestrictedUnpickler) -> Any:
    return u.metastack[-1][-1]  # the object below the MARK whose items follow it


_guard(pickle.SETITEM, lambda u: u.stack[-3], (dict, OrderedDict), keys=lambda u: u.stack[-2:-1])  # dict, key, value
_guard(pickle.SETITEMS, _marked, (dict, OrderedDict), keys=lambda u: u.stack[0::2])  # after MARK: key, value, …
_guard(pickle.APPEND, lambda u: u.stack[-2], (list,))  # list, value
_guard(pickle.APPENDS, _marked, (list,))
_guard(pickle.ADDITEMS, _marked, (set,), keys=lambda u: u.stack)  # after MARK: the members
_guard(pickle.FROZENSET, keys=lambda u: u.stack)
for _opcode in _TUPLE_OPCODES:
    _RestrictedUnpickler.dispatch[_opcode[0]] = _wrap_tuple_opcode(pickle._Unpickler.dispatch[_opcode[0]])
_RestrictedUnpickler.dispatch[pickle.BUILD[0]] = _RestrictedUnpickler._load_build
_RestrictedUnpickler.dispatch[pickle.BYTEARRAY8[0]] = _RestrictedUnpickler._load_bytearray8


def _load_zip(f: BinaryIO, size: int) -> Any:
    """A ``torch.save`` zip archive: ``*/data.pkl`` read restrictedly, storages from ``*/data/<key>``.

    The archive's entries may not unpack to more than twice the archive's ``size`` (plus a MiB) in all.
    """
    with zipfile.ZipFile(f) as archive:
        names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(names) != 1:
            raise ImporterError("it is a zip file but not a torch archive (no single data.pkl)")
        unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > 2 * size + (1 << 20):
            raise ImporterError(f"its entries unpack to {unpacked:,} bytes, far more than the archive's {size:,}")
        prefix = names[0][: -len("data.pkl")]

        def read_record(key: str, nbytes: int) -> bytes:
            try:
                info = archive.getinfo(f"{prefix}data/{key}")
            except KeyError:
                raise ImporterError(f"its storage {describe(key)} is missing from the archive") from None
            if info.file_size != nbytes:
                raise ImporterError(f"storage {key} holds {info.file_size:,} bytes, expected {nbytes:,}")
            return archive.read(info)

        with archive.open(names[0]) as data:
            return _RestrictedUnpickler(data, archive.getinfo(names[0]).file_size, read_record).load()


def restricted_load(path: str | Path) -> Any:
    """Read a pickle (protocol ≥ 2) or a ``torch.save`` zip archive without running code from it.

    Tensors come back as CPU tensors (parameters as plain tensors); objects of any class the allow-list does
    not name come back as :class:`StandIn` records. Raises :class:`UnsafePickleError` for a pickle that calls
    something dangerous and :class:`ImporterError` for a missing, truncated or non-pickle file or a pickle
    bomb (lengths beyond the file, tuples nested or shared beyond bounds, tensor views beyond their storage),
    in one line. Time and memory are bounded by the file's size.
    """
    path = Path(path)
    if not path.is_file():
        raise ImporterError(f"{path}: {'not a file' if path.exists() else 'no such file'}")
    with _one_line_errors(str(path)), open(path, "rb") as f:
        return _load_stream(f, os.fstat(f.fileno()).st_size)


def restricted_load_bytes(data: bytes | bytearray, origin: str) -> Any:
    """:func:`restricted_load` of bytes in memory (e.g. an archive another pickle holds); ``origin`` names
    them in error messages."""
    with _one_line_errors(origin):
        return _load_stream(io.BytesIO(data), len(data))


def _load_stream(f: BinaryIO, size: int) -> Any:
    """A pickle, a torch zip archive or a legacy ``torch.save`` file of ``size`` bytes from ``f``."""
    head = f.read(4)
    f.seek(0)
    if head.startswith(b"PK\x03\x04"):
        return _load_zip(f, size)
    if f.read(12) == _LEGACY_HEAD:
        f.seek(0)
        return _load_legacy(f, size)
    f.seek(0)
    if not head:
        raise ImporterError("the file is empty")
    if head[0] != 0x80 or head[1:2] > b"\x05":
        raise ImporterError(f"it is not a pickle (it starts with {head!r})")
    return _RestrictedUnpickler(f, size).load()


@contextlib.contextmanager
def _one_line_errors(origin: str) -> Iterator[None]:
    """Every failure to read ``origin`` as one :class:`ImporterError` line (refusals as
    :class:`UnsafePickleError`)."""
    try:
        yield
    except UnsafePickleError as e:
        raise UnsafePickleError(f"refused {origin}: {e}; nothing from it was run") from None
    except ImporterError as e:
        raise ImporterError(f"cannot read {origin}: {e}") from None
    except OSError as e:
        raise ImporterError(f"cannot read {origin}: {e.strerror or e}") from None
    except RecursionError:
        raise ImporterError(f"cannot read {origin}: it nests objects too deeply to read") from None
    except MemoryError:
        raise ImporterError(f"cannot read {origin}: it needs more memory than is available") from None
    except Exception as e:  # any failure to decode untrusted bytes means the file is damaged
        raise ImporterError(f"cannot read {origin}: truncated or corrupt pickle ({_first_line(e)})") from None
