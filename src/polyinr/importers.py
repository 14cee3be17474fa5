"""Other code bases' checkpoints → polyinr checkpoints, read without ever running code from the file.

The Poly-INR authors (a fork of StyleGAN-XL) publish training snapshots written with ``dill.dump``: a dict of
live modules (``G``, ``D``, ``G_ema``, ``augment_pipe``, ``training_set_kwargs``, ``progress``) whose classes
live in their repository, some of them StyleGAN "persistent" classes that carry their own source text, and a
discriminator holding pickled functions and code objects. Loading such a file with :mod:`pickle` imports
their modules and may run anything. :func:`restricted_load` reads it instead with an unpickler that

- resolves for real only an allow-list: the torch tensor/parameter/storage rebuild functions (wrapped, with
  their arguments checked; storage bytes are read by ``torch.load(weights_only=True)``), torch dtypes and a
  few harmless builtins (``collections.OrderedDict``, ``set``, …);
- turns every other global into an inert :class:`StandIn` that only records its constructor arguments and
  state: nothing is imported, no source text is compiled, no code or function object is created;
- refuses, with a one-line :class:`UnsafePickleError` naming the global, a pickle that calls something that
  could run code or touch the system (``os.system``, ``builtins.eval``, ``subprocess.Popen``, …).

:func:`poly_inr_from_snapshot` then reads the authors' ``G_ema`` from those records, maps its parameter names
to ours (reading every size from the tensors' shapes and checking each one loudly), and reports how far the
stored (trained) input grid is from the uniform grid. :func:`convert_checkpoint` is the one entry point the
command line calls; :data:`CONVERTERS` names the formats it reads.
"""

from __future__ import annotations

import io
import math
import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np
import torch

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.models.poly_inr import PolyINRGenerator
from polyinr.models.registry import create


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


# ---------------------------------------------------------------------------- pickled module trees

PERSISTENT_OBJ = "torch_utils.persistence._reconstruct_persistent_obj"  # StyleGAN's persistent classes


def _as_dict(value: Any) -> dict[Any, Any]:
    """A pickled mapping: a real dict, or a stand-in of a dict subclass (e.g. ``dnnlib.EasyDict``)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, StandIn):
        return value.items
    return {}


_NUMPY_SCALARS = ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar")
_NUMPY_CODES = frozenset(["f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"])


def plain_number(value: Any) -> Any:
    """A pickled numpy scalar record (e.g. StyleGAN's ``weight_gain``, an ``np.float64``) as a Python number.

    Decoded from the recorded dtype code and bytes only; anything else is returned unchanged.
    """
    if not (isinstance(value, StandIn) and value.qualname() in _NUMPY_SCALARS and len(value.args) == 2):
        return value
    dtype, data = value.args
    if not (isinstance(dtype, StandIn) and dtype.qualname() == "numpy.dtype" and dtype.args
            and dtype.args[0] in _NUMPY_CODES and isinstance(data, bytes)):  # fmt: skip
        return value
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    order = state[1] if len(state) > 1 and state[1] in ("<", ">") else "="
    code = np.dtype(dtype.args[0]).newbyteorder(order)
    if len(data) != code.itemsize:
        return value
    return np.frombuffer(data, dtype=code)[0].item()


def module_record(obj: Any, path: str) -> tuple[str, dict[str, Any]]:
    """``(class name, attribute dict)`` of a pickled ``nn.Module``, plain or StyleGAN-persistent.

    A persistent object's ``module_src`` is never looked at, let alone compiled: only its recorded state.
    """
    if isinstance(obj, StandIn) and obj.qualname() == PERSISTENT_OBJ:
        meta = obj.args[0] if len(obj.args) == 1 else None
        if isinstance(meta, dict) and meta.get("type") == "class" and isinstance(meta.get("state"), dict):
            return str(meta.get("class_name")), meta["state"]
        raise ImporterError(f"{path} is an unreadable StyleGAN persistent object")
    if isinstance(obj, StandIn) and isinstance(obj.state, dict) and "_parameters" in obj.state:
        return obj.qualname(), obj.state
    found = obj.qualname() if isinstance(obj, StandIn) else type(obj).__name__
    raise ImporterError(f"{path} is not a torch module (found {found})")


def module_tensors(obj: Any, path: str) -> dict[str, torch.Tensor]:
    """Every parameter and buffer below a pickled module, by dotted name (like ``state_dict``)."""
    _, state = module_record(obj, path)
    tensors: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, value in _as_dict(state.get(group)).items():
            if value is None:
                continue
            if not isinstance(value, torch.Tensor):
                raise ImporterError(f"{path}.{name} is not a tensor")
            tensors[str(name)] = value
    for name, child in _as_dict(state.get("_modules")).items():
        if child is not None:
            tensors.update({f"{name}.{k}": v for k, v in module_tensors(child, f"{path}.{name}").items()})
    return tensors


def submodule_attrs(obj: Any, path: str, dotted: str) -> dict[str, Any]:
    """The plain attributes of the submodule ``dotted`` (e.g. ``'mapping.fc0'``) of a pickled module."""
    for part in dotted.split(".") if dotted else []:
        _, state = module_record(obj, path)
        obj, path = _as_dict(state.get("_modules")).get(part), f"{path}.{part}"
    return module_record(obj, path)[1]


# ---------------------------------------------------------------------------- Poly-INR (authors' code)

_LEVEL0_PARTS = {"fc0_3": "grid_matrix", "fc0_4": "grid_shift", "fc0_1": "coord_weight", "fc0_2": "coord_bias",
                 "fc0_0": "linear"}  # fmt: skip
_BLOCK_PARTS = {"fc0_5": "style", "fc0_3": "grid_matrix", "fc0_4": "grid_shift", "fc0_1": "coord_weight",
                "fc0_2": "coord_bias", "fb0.fc1": "linear"}  # fmt: skip
_SYNTHESIS_KEY = re.compile(r"synthesis\.(?:fb(\d+)\.)?(fc0_\d|fb0\.fc1)\.(weight|bias)")
_MAPPING_KEY = re.compile(r"mapping\.fc(\d+)\.(weight|bias)")
_SAME_NAMES = frozenset({"synthesis.to_rgb.weight", "synthesis.to_rgb.bias", "mapping.w_avg", "mapping.embed.weight",
                         "mapping.embed_proj.weight", "mapping.embed_proj.bias"})  # fmt: skip


def _our_name(key: str) -> str | None:
    """Our state-dict name for one of the authors' ``G_ema`` keys; None when it has no counterpart."""
    if m := _SYNTHESIS_KEY.fullmatch(key):
        level = int(m[1] or 0)
        part = (_BLOCK_PARTS if m[1] else _LEVEL0_PARTS).get(m[2])
        return None if part is None or (m[1] and level == 0) else f"synthesis.levels.{level}.{part}.{m[3]}"
    if m := _MAPPING_KEY.fullmatch(key):
        return f"mapping.layers.{m[1]}.{m[2]}"
    return key if key in _SAME_NAMES else None


@dataclass(frozen=True)
class ConversionReport:
    """What a conversion read and wrote; :meth:`lines` is the text the command line prints."""

    source: str  # converter name, e.g. 'poly-inr-official'
    source_class: str  # the authors' generator class
    model: str  # our model name
    channels: int  # n
    num_levels: int
    img_resolution: int  # native resolution: the side of the stored grid
    num_classes: int  # 0 = unconditional
    z_dim: int
    parameters: int  # of our generator
    grid_max_deviation: float  # stored grid vs the uniform grid, max |Δ| in frame units
    grid_mean_deviation: float  # mean |Δ| in frame units
    dataset_resolution: int | None  # the authors' training_set_kwargs['resolution'], if recorded
    dataset_labels: bool | None  # training_set_kwargs['use_labels'], if recorded
    training_kimg: float | None  # progress['cur_nimg'] / 1000, if recorded
    dropped: tuple[str, ...] = ()  # what of theirs has no counterpart in ours, and why
    output: Path | None = None  # the checkpoint directory written

    @property
    def pixel_step(self) -> float:
        """One pixel of the native grid in frame units."""
        return 1.0 / max(self.img_resolution - 1, 1)

    def lines(self) -> list[str]:
        step = self.pixel_step
        labels = {None: "not recorded", True: "yes", False: "no"}[self.dataset_labels]
        lines = [
            f"read {self.source_class} ({self.source}): n={self.channels}, {self.num_levels} levels, "
            f"z_dim={self.z_dim}, {self.num_classes or 'no'} classes, native {self.img_resolution}x"
            f"{self.img_resolution}",
            f"stored input grid vs uniform: max {self.grid_max_deviation:.3g} ({self.grid_max_deviation / step:.3g} "
            f"px), mean {self.grid_mean_deviation:.3g} ({self.grid_mean_deviation / step:.3g} px); used only at "
            f"the native frame, other grids are uniform",
            f"authors' dataset: resolution {self.dataset_resolution or 'not recorded'}, labels {labels}, "
            f"classes {self.num_classes}"
            + ("" if self.training_kimg is None else f", trained {self.training_kimg:g} kimg"),
        ]
        lines += [f"dropped: {d}" for d in self.dropped]
        if self.output is not None:
            lines.append(f"wrote {self.output} ({self.model}, {self.parameters:,} parameters)")
        return lines


def _need(tensors: dict[str, torch.Tensor], key: str, ndim: int, where: str) -> torch.Tensor:
    if key not in tensors:
        raise ImporterError(f"{where} does not look like a Poly-INR generator: it has no {key}")
    t = tensors[key]
    if t.ndim != ndim:
        raise ImporterError(f"{where}: {key} has shape {tuple(t.shape)}, expected {ndim} dimensions")
    return t


def _check_attr(attrs: dict[str, Any], name: str, expected: Any, where: str) -> None:
    """If the authors recorded ``name``, it must agree with what the tensors say."""
    value = plain_number(attrs.get(name, expected))
    if isinstance(expected, float) and isinstance(value, (int, float)):
        ok = math.isclose(value, expected, rel_tol=1e-5)
    else:
        ok = value == expected
    if not ok:
        raise ImporterError(f"{where}.{name} is {value!r}, but the tensors say {expected!r}")


def _snapshot_info(snapshot: dict[str, Any]) -> tuple[int | None, bool | None, float | None]:
    """Dataset resolution, use of labels and kimg from a snapshot's ``training_set_kwargs`` / ``progress``."""
    kwargs, progress = _as_dict(snapshot.get("training_set_kwargs")), _as_dict(snapshot.get("progress"))
    resolution, labels = plain_number(kwargs.get("resolution")), plain_number(kwargs.get("use_labels"))
    nimg = plain_number(progress.get("cur_nimg"))
    if isinstance(nimg, torch.Tensor) and nimg.numel() == 1:
        nimg = int(nimg.item())
    return (resolution if isinstance(resolution, int) else None, labels if isinstance(labels, bool) else None,
            nimg / 1000 if isinstance(nimg, int) else None)  # fmt: skip


def poly_inr_from_snapshot(snapshot: Any) -> tuple[PolyINRGenerator, ConversionReport]:
    """Our :class:`PolyINRGenerator` from the authors' snapshot (as :func:`restricted_load` returns it).

    Reads ``G_ema``; every size comes from the tensors' shapes and every recorded attribute is checked
    against them. The stored input grid ``[1, R·R, 2]`` becomes ``synthesis.input_grid`` ``[R·R, 2]``, so at
    the native frame ours computes exactly what theirs does; other grids are uniform.
    """
    if not isinstance(snapshot, dict) or "G_ema" not in snapshot:
        found = sorted(map(str, snapshot)) if isinstance(snapshot, dict) else type(snapshot).__name__
        raise ImporterError(
            f"not a Poly-INR / StyleGAN-XL training snapshot: expected a dict with G_ema, found {found}"
        )
    src = snapshot["G_ema"]
    source_class, _ = module_record(src, "G_ema")
    where = f"G_ema ({source_class})"
    theirs = module_tensors(src, "G_ema")

    # Sizes, from the shapes.
    n = _need(theirs, "synthesis.fc0_0.weight", 2, where).shape[0]
    w_dim = _need(theirs, "synthesis.fc0_1.weight", 2, where).shape[1]
    blocks = sorted({int(m[1]) for k in theirs if (m := re.match(r"synthesis\.fb(\d+)\.", k))})
    num_levels = len(blocks) + 1
    if blocks != list(range(1, num_levels)):
        raise ImporterError(f"{where}: synthesis blocks are fb{blocks}, expected fb1..fb{num_levels - 1}")
    mapping_layers = len([k for k in theirs if _MAPPING_KEY.fullmatch(k) and k.endswith(".weight")])
    conditional = "mapping.embed_proj.weight" in theirs
    w_avg = _need(theirs, "mapping.w_avg", 2 if conditional else 1, where)  # [c_dim, w_dim] or [w_dim]
    num_classes = w_avg.shape[0] if conditional else 0
    fc0_in = _need(theirs, "mapping.fc0.weight", 2, where).shape[1]
    z_dim = fc0_in // 2 if conditional else fc0_in
    grid = _need(theirs, "synthesis.grid", 3, where)  # [1, R·R, 2], the Parameter the synthesis reads
    resolution = math.isqrt(grid.shape[1])
    if grid.shape[0] != 1 or grid.shape[2] != 2 or resolution**2 != grid.shape[1]:
        raise ImporterError(f"{where}: synthesis.grid is {tuple(grid.shape)}, expected a square grid [1, R·R, 2]")
    grid = grid[0]  # [R·R, 2] (row, col)
    to_rgb = _need(theirs, "synthesis.to_rgb.weight", 4, where)  # [C, n, 1, 1]
    if to_rgb.shape[1:] != (n, 1, 1):
        raise ImporterError(f"{where}: to_rgb weight is {tuple(to_rgb.shape)}, expected a 1x1 convolution from {n}")
    embed = theirs.get("mapping.embed.weight")  # [rows, embed_dim], rows ≥ c_dim (1000 ImageNet classes)
    embed_dim = embed.shape[1] if embed is not None and embed.ndim == 2 else 320

    # What the authors recorded must agree with the shapes.
    mapping = submodule_attrs(src, "G_ema", "mapping")
    for name, value in dict(z_dim=z_dim, c_dim=num_classes, w_dim=w_dim, num_ws=num_levels,
                            num_layers=mapping_layers).items():  # fmt: skip
        _check_attr(mapping, name, value, "G_ema.mapping")
    synthesis = submodule_attrs(src, "G_ema", "synthesis")
    for name, value in dict(img_resolution=resolution, z_dim=w_dim, z_dim1=n, nc=to_rgb.shape[0]).items():
        _check_attr(synthesis, name, value, "G_ema.synthesis")
    lr_multiplier = plain_number(submodule_attrs(src, "G_ema", "mapping.fc0").get("bias_gain", 0.1))
    w_avg_beta = plain_number(mapping.get("w_avg_beta", 0.998))

    mapping_cfg = dict(z_dim=z_dim, w_dim=w_dim, num_classes=num_classes, embed_dim=embed_dim,
                       num_layers=mapping_layers,
                       lr_multiplier=float(lr_multiplier), w_avg_beta=float(w_avg_beta))  # fmt: skip
    G = create("poly-inr", channels=n, num_levels=num_levels, img_resolution=resolution, img_channels=to_rgb.shape[0],
               stored_grid=True, mapping=mapping_cfg)  # fmt: skip
    ours = G.state_dict()

    # Their names → ours; anything left over on either side, or of another shape, is an error.
    state: dict[str, torch.Tensor] = {"synthesis.input_grid": grid}
    source_of = {"synthesis.input_grid": "synthesis.grid"}  # our name → theirs
    dropped: list[str] = []
    unexpected: list[str] = []
    for key, value in theirs.items():
        if key == "synthesis.grid":
            continue  # already in state
        if key == "gridt":
            if not torch.equal(value.reshape(grid.shape), grid):
                dropped.append("gridt (the generator's copy of the grid; differs from synthesis.grid, which is used)")
            continue
        if key == "mapping.embed.weight" and not conditional:
            dropped.append(f"mapping.embed.weight {tuple(value.shape)} (unused: the generator is unconditional)")
            continue
        name = _our_name(key)
        if name is None or name not in ours or name in state:
            unexpected.append(key)
            continue
        if key == "mapping.embed.weight" and value.shape[0] > num_classes:
            dropped.append(f"rows {num_classes}..{value.shape[0] - 1} of mapping.embed.weight (unused: the generator "
                           f"has {num_classes} classes)")  # fmt: skip
            value = value[:num_classes]
        elif key == "synthesis.to_rgb.weight":
            value = value.flatten(1)  # 1×1 convolution [C, n, 1, 1] → linear [C, n]
        elif key == "mapping.w_avg" and not conditional:
            value = value.unsqueeze(0)  # [w_dim] → one row [1, w_dim]
        state[name], source_of[name] = value, key
    missing = sorted(set(ours) - set(state))
    wrong = sorted(f"{source_of[k]} {tuple(v.shape)} for {k} {tuple(ours[k].shape)}" for k, v in state.items()
                   if v.shape != ours[k].shape)  # fmt: skip
    problems = (("has unexpected", sorted(unexpected)), ("lacks what ours needs for", missing), ("mis-shaped", wrong))
    for problem, keys in problems:
        if keys:
            raise ImporterError(f"{where} does not match Poly-INR: {problem} {keys[:6]}{'…' if len(keys) > 6 else ''}")
    _check_gains(src, G)
    G.load_state_dict(state, strict=True)
    G.eval().requires_grad_(False)

    uniform = Grid.frame(resolution).coords(dtype=torch.float64).view(-1, 2)
    deviation = (grid.double() - uniform).abs()
    dataset_resolution, dataset_labels, kimg = _snapshot_info(snapshot)
    report = ConversionReport(
        source="poly-inr-official", source_class=source_class, model=G.model_name, channels=n,
        num_levels=num_levels, img_resolution=resolution, num_classes=num_classes, z_dim=z_dim,
        parameters=G.parameter_count(), grid_max_deviation=float(deviation.max()),
        grid_mean_deviation=float(deviation.mean()), dataset_resolution=dataset_resolution,
        dataset_labels=dataset_labels, training_kimg=kimg, dropped=tuple(dropped),
    )  # fmt: skip
    return G, report


def _check_gains(src: Any, G: PolyINRGenerator) -> None:
    """Their equalised-lr layers must scale and activate exactly as ours do (gains are code, not weights)."""
    pairs = [(f"mapping.fc{i}", layer) for i, layer in enumerate(G.mapping.layers)]
    if G.mapping.embed_proj is not None:
        pairs.append(("mapping.embed_proj", G.mapping.embed_proj))
    pairs += [(f"synthesis.fb{i}.fc0_5", level.style) for i, level in enumerate(G.synthesis.levels) if i > 0]
    for path, layer in pairs:
        attrs = submodule_attrs(src, "G_ema", path)
        for name in ("weight_gain", "bias_gain"):
            _check_attr(attrs, name, float(getattr(layer, name)), f"G_ema.{path}")
        _check_attr(attrs, "activation", layer.activation, f"G_ema.{path}")


def convert_poly_inr_official(in_path: str | Path, out_dir: str | Path) -> ConversionReport:
    """The authors' ``network-snapshot-*.pkl`` / ``best_model.pkl`` → a polyinr checkpoint at ``out_dir``."""
    G, report = poly_inr_from_snapshot(restricted_load(in_path))
    imported = {"converter": report.source, "file": Path(in_path).name, "source_class": report.source_class,
                "grid_max_deviation": report.grid_max_deviation,
                "grid_mean_deviation": report.grid_mean_deviation}  # fmt: skip
    path = G.save(out_dir, extra={"imported_from": imported})
    return replace(report, output=path)


CONVERTERS: dict[str, Callable[[str | Path, str | Path], ConversionReport]] = {
    "poly-inr-official": convert_poly_inr_official,  # Rajhans0/Poly_INR snapshots (training/networks_gmgan.py)
}


def convert_checkpoint(source: str, in_path: str | Path, out_dir: str | Path) -> ConversionReport:
    """Convert ``in_path``, a checkpoint of format ``source`` (a key of :data:`CONVERTERS`), into ``out_dir``."""
    if source not in CONVERTERS:
        raise ImporterError(f"unknown source format {source!r}; known: {', '.join(sorted(CONVERTERS))}")
    return CONVERTERS[source](in_path, out_dir)
