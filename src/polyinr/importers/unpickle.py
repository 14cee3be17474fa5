"""The restricted unpickler: read a pickle or a ``torch.save`` archive without running code from it.

Loading a foreign checkpoint with :mod:`pickle` imports the modules it names and may run anything (the Poly-INR
authors' ``dill`` snapshots even carry functions and code objects). :func:`restricted_load` reads it instead
with an unpickler that

- resolves for real only an allow-list: the torch tensor/parameter/storage rebuild functions (wrapped, with
  their arguments checked; storage bytes are read by ``torch.load(weights_only=True)``), torch dtypes and a
  few harmless builtins (``collections.OrderedDict``, ``set``, …);
- turns every other global into an inert :class:`StandIn` that only records its constructor arguments and
  state: nothing is imported, no source text is compiled, no code or function object is created;
- refuses, with a one-line :class:`UnsafePickleError` naming the global, a pickle that calls something that
  could run code or touch the system (``os.system``, ``builtins.eval``, ``subprocess.Popen``, …).

Every storage is rebuilt on the CPU, whatever device the file names.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import torch

from polyinr.errors import PolyinrError


class ImporterError(PolyinrError):
    """A file to convert is missing, corrupt, or not the kind of checkpoint it was said to be."""


class UnsafePickleError(ImporterError):
    """A pickle asks to call something that could run code; it was refused and nothing was run."""


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
        return f"<stand-in {self.qualname()}>"


class _Forbidden(StandIn):
    """Stand-in of a global that could run code: building or calling it refuses the whole pickle."""

    def __new__(cls, *args: Any, **kwargs: Any) -> StandIn:
        raise UnsafePickleError(f"it calls {cls.qualname()}, which could run code or touch the system")


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
_DANGEROUS_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "sys", "shutil", "importlib", "runpy", "pty", "socket", "ctypes",
    "multiprocessing", "webbrowser", "code", "codeop", "pickle", "_pickle", "marshal", "signal", "pdb", "asyncio",
    "threading", "_thread", "tempfile", "shelve", "http", "urllib", "ftplib", "smtplib", "zipimport", "commands",
    "popen2",
})  # fmt: skip
_DANGEROUS_BUILTINS = frozenset({
    "eval", "exec", "compile", "__import__", "open", "breakpoint", "input", "exit", "quit", "help", "globals",
    "locals", "vars",
})  # fmt: skip
_DANGEROUS_GLOBALS = frozenset({
    "io.open", "_io.open", "io.FileIO", "_io.FileIO", "io.open_code", "codecs.open", "zipfile.ZipFile", "tarfile.open",
    "logging.FileHandler", "logging.handlers", "numpy.load", "numpy.save", "numpy.memmap", "torch.load", "torch.save",
    "torch.hub", "torch.jit.load", "dill.load", "dill.loads",
})  # fmt: skip


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
        raise ImporterError(f"tensor {what} must be non-negative integers, got {value!r}")
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
        raise ImporterError(f"tensor data is not a torch storage but {storage!r}")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise ImporterError(f"tensor storage offset must be a non-negative integer, got {storage_offset!r}")
    size, stride = _check_ints(size, "size"), _check_ints(stride, "stride")
    if len(size) != len(stride):
        raise ImporterError(f"tensor size {size} and stride {stride} differ in length")
    return torch._utils._rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None, state: Any = None):
    """``torch._utils._rebuild_parameter(_with_state)``: the parameter's data as a plain tensor."""
    if not isinstance(data, torch.Tensor):
        raise ImporterError(f"parameter data is not a tensor but {data!r}")
    return data


def _rebuild_from_type(func: Any, new_type: Any, args: Any, state: Any) -> torch.Tensor:
    """``torch._tensor._rebuild_from_type_v2`` (a tensor carrying Python attributes): the plain tensor."""
    if not (isinstance(func, _Allowed) and func.func in (_rebuild_tensor, _rebuild_parameter)):
        raise ImporterError(f"unexpected tensor rebuild {func!r:.60}")
    if not isinstance(args, tuple):
        raise ImporterError("malformed tensor rebuild arguments")
    return func(*args)


def _load_from_bytes(data: Any) -> torch.storage.TypedStorage:
    """``torch.storage._load_from_bytes``: a ``torch.save``'d storage, read by torch's weights-only loader."""
    if not isinstance(data, (bytes, bytearray)):
        raise ImporterError(f"storage data is not bytes but {type(data).__name__}")
    try:
        storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        raise UnsafePickleError(f"a tensor's data is not a plain torch storage ({_first_line(e)})") from None
    if not isinstance(storage, torch.storage.TypedStorage):
        raise ImporterError(f"a tensor's data holds {type(storage).__name__}, not a storage")
    return storage


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: latin-1 text only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ImporterError(f"unexpected _codecs.encode({type(text).__name__}, {encoding!r}) in the pickle")
    return text.encode("latin1")


class _Sealed:
    """Allow-listed objects refuse pickle's ``BUILD``, which would otherwise set attributes on them."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError(f"it tries to modify {self!r}")


class _Allowed(_Sealed):
    """An allow-listed function, as the unpickler hands it out."""

    __slots__ = ("func",)

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func

    def __call__(self, *args: Any) -> Any:
        return self.func(*args)

    def __repr__(self) -> str:
        return f"<allowed {self.func.__name__}>"


class _StorageType(_Sealed):
    """What ``torch.FloatStorage`` & co. resolve to: only a dtype tag for persistent-id storages."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"<storage type {self.dtype}>"


_STORAGE_TYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}  # fmt: skip
_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
           torch.int8, torch.uint8, torch.bool)  # fmt: skip

_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
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


class _RestrictedUnpickler(pickle.Unpickler):
    """A pickle reader that resolves only :data:`_SAFE_GLOBALS`; every other global is a :class:`StandIn`."""

    def __init__(self, file: BinaryIO, read_record: Callable[[str], bytes] | None = None) -> None:
        super().__init__(file)
        self._read_record = read_record  # storage bytes by key, for torch zip archives
        self._stand_ins: dict[tuple[str, str], type[StandIn]] = {}

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
            raise ImporterError(f"it has an unknown persistent id {pid!r:.60}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not isinstance(numel, int):
            raise ImporterError(f"it has a malformed storage reference {pid!r:.80}")
        data = self._read_record(key)
        itemsize = torch.empty((), dtype=storage_type.dtype).element_size()
        if len(data) != numel * itemsize:
            raise ImporterError(f"storage {key} holds {len(data)} bytes, expected {numel * itemsize}")
        untyped = torch.UntypedStorage.from_buffer(data, dtype=torch.uint8) if data else torch.UntypedStorage(0)
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=storage_type.dtype, _internal=True)


def _load_zip(f: BinaryIO) -> Any:
    """A ``torch.save`` zip archive: ``*/data.pkl`` read restrictedly, storages from ``*/data/<key>``."""
    with zipfile.ZipFile(f) as archive:
        names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(names) != 1:
            raise ImporterError("it is a zip file but not a torch archive (no single data.pkl)")
        prefix = names[0][: -len("data.pkl")]

        def read_record(key: str) -> bytes:
            try:
                return archive.read(f"{prefix}data/{key}")
            except KeyError:
                raise ImporterError(f"its storage {key!r} is missing from the archive") from None

        with archive.open(names[0]) as data:
            return _RestrictedUnpickler(data, read_record).load()


def restricted_load(path: str | Path) -> Any:
    """Read a pickle (protocol ≥ 2) or a ``torch.save`` zip archive without running code from it.

    Tensors come back as CPU tensors (parameters as plain tensors); objects of any class the allow-list does
    not name come back as :class:`StandIn` records. Raises :class:`UnsafePickleError` for a pickle that calls
    something dangerous and :class:`ImporterError` for a missing, truncated or non-pickle file, in one line.
    """
    path = Path(path)
    if not path.is_file():
        raise ImporterError(f"{path}: {'not a file' if path.exists() else 'no such file'}")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(0)
            if head.startswith(b"PK\x03\x04"):
                return _load_zip(f)
            if not head:
                raise ImporterError("the file is empty")
            if head[0] != 0x80 or head[1:2] > b"\x05":
                raise ImporterError(f"it is not a pickle (it starts with {head!r})")
            return _RestrictedUnpickler(f).load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"refused {path}: {e}; nothing from it was run") from None
    except ImporterError as e:
        raise ImporterError(f"cannot read {path}: {e}") from None
    except OSError as e:
        raise ImporterError(f"cannot read {path}: {e.strerror or e}") from None
    except Exception as e:  # any failure to decode untrusted bytes means the file is damaged
        raise ImporterError(f"cannot read {path}: truncated or corrupt pickle ({_first_line(e)})") from None
