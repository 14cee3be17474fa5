"""Reading the StyleGAN family's pickled networks as data: modules, persistent classes, numpy values.

NVIDIA's StyleGAN2-ADA / StyleGAN3 code, and the code bases forked from it (StyleGAN-XL, Poly-INR, INR-GAN),
pickle live ``nn.Module`` trees. Classes decorated with ``torch_utils.persistence.persistent_class`` pickle as a
call ``_reconstruct_persistent_obj(meta)`` whose ``meta`` carries ``class_name``, the object's ``state`` and
the defining module's source text ``module_src``; other modules pickle as plain objects whose state holds
``_parameters``, ``_buffers`` and ``_modules``. After :func:`~polyinr.importers.unpickle.restricted_load` both
are inert :class:`~polyinr.importers.unpickle.StandIn` records, and this module reads them:

- :func:`module_record`, :func:`module_tensors`, :func:`submodule_attrs`: one pickled module's class name and
  attributes, every parameter and buffer below it by dotted name (like ``state_dict``), a submodule's
  attributes; ``module_src`` is never looked at, let alone compiled;
- :func:`plain_number` / :func:`plain_array`: numpy scalars and arrays decoded from their recorded dtype code
  and bytes (never an object dtype);
- :func:`inert_tree`: a whole loaded pickle as plain data (dicts, lists, tuples, numbers, strings, CPU
  tensors) with each object of a foreign class as a :class:`PickledObject` (module, class name, state). Dict
  subclasses such as ``dnnlib.EasyDict`` become dicts; an ``omegaconf`` config (INR-GAN) stays a
  :class:`PickledObject` whose ``state['_content']`` holds its nodes, each a record with its value in
  ``state['_val']``.

Every walk is bounded, whatever the pickle holds: each object is visited once (shared parts and reference
cycles cost nothing extra; a module that contains itself is refused), modules may nest at most
:data:`MAX_MODULE_DEPTH` deep and other values :data:`MAX_NESTING` deep, and a module tree whose shared
submodules would name more than :data:`MAX_TENSOR_NAMES` tensors is refused, each in one line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from polyinr.importers.unpickle import ImporterError, StandIn
from polyinr.models.layers import LRELU_GAIN, LRELU_SLOPE

PERSISTENT_OBJ = "torch_utils.persistence._reconstruct_persistent_obj"  # StyleGAN's persistent classes
MAX_MODULE_DEPTH = 64  # submodules nested deeper are refused (real networks nest under 10)
MAX_NESTING = 150  # containers and records nested deeper in inert_tree are refused
MAX_TENSOR_NAMES = 1 << 18  # names module_tensors may produce in all, shared submodules counted each time


def as_dict(value: Any) -> dict[Any, Any]:
    """A pickled mapping: a real dict, or a stand-in of a dict subclass (e.g. ``dnnlib.EasyDict``); else ``{}``."""
    if isinstance(value, dict):
        return value
    if isinstance(value, StandIn):
        return value.items
    return {}


_NUMPY_SCALARS = ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar")
_NUMPY_ARRAYS = ("numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct")
_NUMPY_FROMBUFFER = ("numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer")
_NUMPY_CODES = frozenset(["f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"])


def _numpy_dtype(record: Any) -> np.dtype | None:
    """A pickled ``numpy.dtype(code, …)`` record of a plain numeric type, with its byte order; else None."""
    if not (isinstance(record, StandIn) and record.qualname() == "numpy.dtype" and record.args):
        return None
    if record.args[0] not in _NUMPY_CODES:
        return None
    state = record.state if isinstance(record.state, tuple) else ()
    order = state[1] if len(state) > 1 and state[1] in ("<", ">") else "="
    return np.dtype(record.args[0]).newbyteorder(order)


def plain_number(value: Any) -> Any:
    """A pickled numpy scalar record (e.g. StyleGAN's ``weight_gain``, an ``np.float64``) as a Python number.

    Decoded from the recorded dtype code and bytes only; anything else is returned unchanged.
    """
    if not (isinstance(value, StandIn) and value.qualname() in _NUMPY_SCALARS and len(value.args) == 2):
        return value
    dtype, data = _numpy_dtype(value.args[0]), value.args[1]
    if dtype is None or not isinstance(data, bytes) or len(data) != dtype.itemsize:
        return value
    return np.frombuffer(data, dtype=dtype)[0].item()


def recorded_init_kwargs(attrs: dict[str, Any]) -> dict[str, Any]:
    """A persistent module's recorded constructor keywords (``_init_kwargs``), numbers decoded, others left out."""
    kwargs = attrs.get("_init_kwargs")
    if not isinstance(kwargs, dict):
        return {}
    values = {k: plain_number(v) for k, v in kwargs.items()}
    return {k: v for k, v in values.items() if isinstance(v, (int, float, bool))}


def recorded_number(attrs: dict[str, Any], name: str, default: Any) -> Any:
    """A number a module recorded under ``name`` (numpy scalars decoded), or ``default`` when it recorded none."""
    value = plain_number(attrs.get(name, default))
    return value if isinstance(value, (int, float, bool)) else default


def plain_array(value: Any) -> Any:
    """A pickled numpy array record as a CPU tensor (a copy), decoded from dtype code, shape and bytes only.

    Reads both pickle forms: ``_reconstruct(ndarray, …)`` + state ``(version, shape, dtype, fortran, bytes)``
    (protocols ≤ 4) and ``_frombuffer(bytes, dtype, shape, order)`` (protocol 5). Anything else, object
    arrays included, is returned unchanged.
    """
    if not isinstance(value, StandIn):
        return value
    if value.qualname() in _NUMPY_ARRAYS and isinstance(value.state, tuple) and len(value.state) == 5:
        _, shape, dtype, fortran, data = value.state
        order = "F" if fortran is True else "C"
    elif value.qualname() in _NUMPY_FROMBUFFER and len(value.args) == 4:
        data, dtype, shape, order = value.args
    else:
        return value
    dtype = _numpy_dtype(dtype)
    if dtype is None or not isinstance(data, (bytes, bytearray)) or order not in ("C", "F"):
        return value
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
        return value
    if len(data) != math.prod(shape) * dtype.itemsize:
        return value
    array = np.frombuffer(bytes(data), dtype=dtype).reshape(shape, order=order)
    return torch.from_numpy(np.array(array, dtype=dtype.newbyteorder("="), order="C", copy=True))


def module_record(obj: Any, path: str) -> tuple[str, dict[str, Any]]:
    """``(class name, attribute dict)`` of a pickled ``nn.Module``, plain or StyleGAN-persistent.

    A persistent object's ``module_src`` is never looked at, let alone compiled: only its recorded state.
    ``path`` names ``obj`` in error messages (e.g. ``'G_ema.mapping'``).
    """
    if isinstance(obj, StandIn) and obj.qualname() == PERSISTENT_OBJ:
        meta = obj.args[0] if len(obj.args) == 1 else None
        if (
            isinstance(meta, dict)
            and meta.get("type") == "class"
            and isinstance(meta.get("state"), dict)
            and isinstance(meta.get("class_name"), str)
        ):
            return meta["class_name"], meta["state"]
        raise ImporterError(f"{path} is an unreadable StyleGAN persistent object")
    if isinstance(obj, StandIn) and isinstance(obj.state, dict) and "_parameters" in obj.state:
        return obj.qualname(), obj.state
    found = obj.qualname() if isinstance(obj, StandIn) else type(obj).__name__
    raise ImporterError(f"{path} is not a torch module (found {found})")


def module_tensors(obj: Any, path: str) -> dict[str, torch.Tensor]:
    """Every parameter and buffer below a pickled module, by dotted name (like ``state_dict``).

    A submodule shared by several parents is read once and its tensors named under each of them; a module
    that contains itself, nesting deeper than :data:`MAX_MODULE_DEPTH` or more than :data:`MAX_TENSOR_NAMES`
    names in all is an :class:`ImporterError`.
    """
    return _ModuleWalk().tensors(obj, path, 0)


class _ModuleWalk:
    """One :func:`module_tensors` walk: each module's tensors computed once (by id), names counted."""

    def __init__(self) -> None:
        self.done: dict[int, tuple[Any, dict[str, torch.Tensor]]] = {}  # id → (module, its tensors)
        self.open: set[int] = set()  # the modules on the current path
        self.names = 0

    def tensors(self, obj: Any, path: str, depth: int) -> dict[str, torch.Tensor]:
        if id(obj) in self.done:
            return self.done[id(obj)][1]
        if id(obj) in self.open:
            raise ImporterError(f"{path} contains itself (a module that is its own submodule)")
        if depth > MAX_MODULE_DEPTH:
            raise ImporterError(f"{path.split('.')[0]} nests modules more than {MAX_MODULE_DEPTH} deep")
        _, state = module_record(obj, path)
        self.open.add(id(obj))
        tensors: dict[str, torch.Tensor] = {}
        for group in ("_parameters", "_buffers"):
            for name, value in as_dict(state.get(group)).items():
                if value is None:
                    continue
                if not isinstance(value, torch.Tensor):
                    raise ImporterError(f"{path}.{_name(name, path)} is not a tensor")
                tensors[_name(name, path)] = value
        for name, child in as_dict(state.get("_modules")).items():
            if child is None:
                continue
            name = _name(name, path)
            below = self.tensors(child, f"{path}.{name}", depth + 1)
            self.names += len(below)
            if self.names > MAX_TENSOR_NAMES:
                raise ImporterError(
                    f"{path.split('.')[0]} shares submodules so often that it would name over "
                    f"{MAX_TENSOR_NAMES:,} tensors"
                )
            tensors.update({f"{name}.{k}": v for k, v in below.items()})
        self.open.discard(id(obj))
        self.done[id(obj)] = (obj, tensors)
        return tensors


def _name(name: Any, path: str) -> str:
    """A parameter or submodule name: a string (or a number) only."""
    if isinstance(name, (str, int)) and not isinstance(name, bool):
        return str(name)
    raise ImporterError(f"{path} has a member named by a {type(name).__name__}, not a string")


def submodule_attrs(obj: Any, path: str, dotted: str) -> dict[str, Any]:
    """The plain attributes of the submodule ``dotted`` (e.g. ``'mapping.fc0'``) of a pickled module."""
    for part in dotted.split(".") if dotted else []:
        _, state = module_record(obj, path)
        obj, path = as_dict(state.get("_modules")).get(part), f"{path}.{part}"
    return module_record(obj, path)[1]


@dataclass
class PickledObject:
    """An object of a class that was never imported, as :func:`inert_tree` gives it.

    ``module`` is the defining module's name (``'(persistent)'`` for a StyleGAN persistent class, whose module
    exists only as the never-read ``module_src``); ``state`` is what ``__setstate__`` would have received (an
    ``nn.Module``'s ``__dict__``: ``_parameters``, ``_buffers``, ``_modules`` and plain attributes); ``args`` /
    ``kwargs`` are its constructor arguments; ``items`` / ``elements`` what it was filled with as a mapping /
    list. Everything inside is already an inert tree.
    """

    module: str
    class_name: str
    state: Any = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    items: dict[Any, Any] = field(default_factory=dict)
    elements: list[Any] = field(default_factory=list)

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.class_name}"


def inert_tree(obj: Any) -> Any:
    """A loaded pickle (:func:`~polyinr.importers.unpickle.restricted_load`) as plain data.

    Dicts, lists, tuples, sets, numbers, strings, bytes and tensors stay as they are (containers rebuilt with
    converted contents); numpy scalars and arrays become Python numbers and CPU tensors; a stand-in that only
    holds mapping items (a dict subclass such as ``dnnlib.EasyDict``) becomes a dict; a StyleGAN persistent
    object becomes the :class:`PickledObject` of its class with its recorded state; any other stand-in becomes
    a :class:`PickledObject`. Shared objects stay shared and reference cycles are kept; each object is
    converted once. Nesting deeper than :data:`MAX_NESTING` is an :class:`ImporterError`.
    """
    return _Tree().convert(obj)


class _Tree:
    """One :func:`inert_tree` walk; ``done`` maps ``id(record)`` to its conversion (shared objects, cycles)."""

    def __init__(self) -> None:
        self.done: dict[int, Any] = {}
        self.keep: list[Any] = []  # converted originals, kept alive so that their ids stay theirs
        self.depth = 0

    def convert(self, obj: Any) -> Any:
        if (
            isinstance(obj, (str, bytes, bytearray, int, float, complex, bool, torch.Tensor, torch.dtype))
            or obj is None
        ):
            return obj
        if id(obj) in self.done:
            return self.done[id(obj)]
        if self.depth >= MAX_NESTING:
            raise ImporterError(f"the pickle nests values more than {MAX_NESTING} deep")
        self.depth += 1
        try:
            out = self._convert(obj)
        finally:
            self.depth -= 1
        self.keep.append(obj)
        self.done[id(obj)] = out
        return out

    def _convert(self, obj: Any) -> Any:
        if isinstance(obj, dict):
            out: Any = type(obj)() if type(obj) is not dict else {}
            self.done[id(obj)] = out
            out.update({self.convert(k): self.convert(v) for k, v in obj.items()})
            return out
        if isinstance(obj, list):
            out = self.done[id(obj)] = []
            out.extend(self.convert(v) for v in obj)
            return out
        if isinstance(obj, (tuple, set, frozenset)):
            return type(obj)(self.convert(v) for v in obj)
        if not isinstance(obj, StandIn):
            return obj  # an allow-listed value (slice, storage type, …)
        plain = plain_array(plain_number(obj))
        if plain is not obj:
            return plain
        if obj.items and not (obj.args or obj.kwargs or obj.state or obj.elements):
            out = self.done[id(obj)] = {}
            out.update({self.convert(k): self.convert(v) for k, v in obj.items.items()})
            return out
        module, name, args, state = obj.module, obj.name, obj.args, obj.state
        if obj.qualname() == PERSISTENT_OBJ and len(args) == 1 and isinstance(args[0], dict):
            class_name = args[0].get("class_name")
            module, name = "(persistent)", class_name if isinstance(class_name, str) else "(unnamed)"
            args, state = (), args[0].get("state")
        record = self.done[id(obj)] = PickledObject(module, name)
        record.state, record.args = self.convert(state), self.convert(tuple(args))
        record.kwargs = self.convert(dict(obj.kwargs))
        record.items = {self.convert(k): self.convert(v) for k, v in obj.items.items()}
        record.elements = [self.convert(v) for v in obj.elements]
        return record


def read_g_ema(data: Any, network: str) -> tuple[Any, str, dict[str, torch.Tensor]]:
    """``(G_ema record, its class name, its tensors by name)`` of a network pickle (a dict holding ``G_ema``, as
    :func:`~polyinr.importers.unpickle.restricted_load` returns it); anything else is a one-line
    :class:`ImporterError` naming ``network``."""
    if not isinstance(data, dict) or "G_ema" not in data:
        found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise ImporterError(f"not a {network} network pickle: expected a dict with G_ema, found {found}")
    src = data["G_ema"]
    source_class, _ = module_record(src, "G_ema")
    return src, source_class, module_tensors(src, "G_ema")


def load_g_ema(G: torch.nn.Module, state: dict[str, torch.Tensor], network: str) -> None:
    """Load ``state`` (their ``G_ema`` under our names) into ``G`` as float32, frozen for inference; a tensor
    ours needs that is missing, or one of another shape, is a one-line :class:`ImporterError` naming
    ``network``."""
    ours = G.state_dict()
    missing = sorted(set(ours) - set(state))
    wrong = sorted(k for k, v in state.items() if k in ours and v.shape != ours[k].shape)
    if missing or wrong:
        raise ImporterError(f"G_ema does not match {network}: missing {missing[:4]}, mis-shaped {wrong[:4]}")
    G.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    G.eval().requires_grad_(False)


TensorReader = Callable[[str, torch.Tensor], "dict[str, torch.Tensor] | None"]


def g_ema_state(
    theirs: dict[str, torch.Tensor], ours: Collection[str], network: str, read: TensorReader
) -> dict[str, torch.Tensor]:
    """Their ``G_ema``'s tensors under our names. ``read(key, value)`` gives what a tensor it knows becomes
    (``{}``: nothing, it is dropped or read elsewhere) and None for the others, which keep their names; one of
    those that ``ours`` lacks is a one-line :class:`ImporterError` naming ``network``."""
    state: dict[str, torch.Tensor] = {}
    for key, value in theirs.items():
        renamed = read(key, value)
        if renamed is not None:
            state.update(renamed)
        elif key in ours:
            state[key] = value
        else:
            raise ImporterError(f"G_ema has {key}, which {network} does not")
    return state


def need_tensor(tensors: dict[str, torch.Tensor], key: str, ndim: int, network: str) -> torch.Tensor:
    """``tensors[key]``, which must exist with ``ndim`` dimensions; else a one-line error naming ``network``."""
    if key not in tensors:
        raise ImporterError(f"G_ema does not look like a {network} generator: it has no {key}")
    if tensors[key].ndim != ndim:
        raise ImporterError(f"G_ema: {key} has shape {tuple(tensors[key].shape)}, expected {ndim} dimensions")
    return tensors[key]


def mapping_config(src: Any, theirs: dict[str, torch.Tensor], network: str) -> dict[str, Any]:
    """Our shared mapping's settings (``mapping.*`` config overrides) read from NVIDIA's StyleGAN2 / StyleGAN3
    ``MappingNetwork`` in ``G_ema``: sizes from its tensors, learning-rate multiplier and ``w_avg`` decay as
    recorded. A mapping ours does not compute is a one-line :class:`ImporterError`."""
    fc = sorted(int(m[1]) for k in theirs if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", k)))
    if not fc or fc != list(range(len(fc))):
        raise ImporterError("G_ema's mapping has no fc0, fc1, … layers")
    w_dim = need_tensor(theirs, f"mapping.fc{fc[-1]}.weight", 2, network).shape[0]
    embed = "mapping.embed.weight"
    num_classes = need_tensor(theirs, embed, 2, network).shape[1] if embed in theirs else 0
    z_dim = need_tensor(theirs, "mapping.fc0.weight", 2, network).shape[1] - (w_dim if num_classes else 0)
    if num_classes and z_dim != w_dim:
        raise ImporterError(f"a conditional G_ema with z_dim {z_dim} != w_dim {w_dim} has no counterpart here")
    fc0, mapping = submodule_attrs(src, "G_ema", "mapping.fc0"), submodule_attrs(src, "G_ema", "mapping")
    return {
        "mapping.z_dim": z_dim,
        "mapping.w_dim": w_dim,
        "mapping.num_classes": num_classes,
        "mapping.embed_dim": z_dim,
        "mapping.num_layers": len(fc),
        "mapping.lr_multiplier": float(recorded_number(fc0, "bias_gain", 0.01)),
        "mapping.w_avg_beta": float(recorded_number(mapping, "w_avg_beta", 0.998)),
    }


def class_table(weight: torch.Tensor, bias: torch.Tensor, weight_gain: float) -> torch.Tensor:
    """Their embedding of each one-hot class ``[C, w_dim]``, pre-imaged through our projection's lrelu·√2."""
    y = weight.t() * weight_gain + bias  # [C, w_dim]: one-hot row c selects column c
    y = y / LRELU_GAIN
    return torch.where(y >= 0, y, y / LRELU_SLOPE)


def mapping_state(
    src: Any, theirs: dict[str, torch.Tensor], G: torch.nn.Module, network: str
) -> dict[str, torch.Tensor]:
    """Our shared mapping's state from NVIDIA's StyleGAN2 / StyleGAN3 ``MappingNetwork`` in ``G_ema``: the layers
    ``mapping.fc{i}``, ``w_avg`` repeated for each class, and their class embedding ``mapping.embed`` pre-imaged
    into our class table, with our projection the identity. A ``mapping.*`` tensor of another name is a one-line
    :class:`ImporterError` naming ``network``."""
    num_classes = G.mapping.num_classes
    state: dict[str, torch.Tensor] = {}
    for key, value in theirs.items():
        if m := re.fullmatch(r"mapping\.fc(\d+)\.(weight|bias)", key):
            state[f"mapping.layers.{m[1]}.{m[2]}"] = value
        elif key == "mapping.w_avg":
            state["mapping.w_avg"] = value.reshape(1, -1).expand(max(num_classes, 1), -1).clone()
        elif key.startswith("mapping.") and not key.startswith("mapping.embed."):
            raise ImporterError(f"G_ema has {key}, which {network} does not")
    if num_classes:
        embed = submodule_attrs(src, "G_ema", "mapping.embed")
        gain = float(recorded_number(embed, "weight_gain", 1 / math.sqrt(num_classes)))
        bias = theirs["mapping.embed.bias"] * float(recorded_number(embed, "bias_gain", 1.0))
        state["mapping.embed.weight"] = class_table(theirs["mapping.embed.weight"], bias, gain)
        proj = G.mapping.embed_proj
        state["mapping.embed_proj.weight"] = torch.eye(G.z_dim) / proj.weight_gain
        state["mapping.embed_proj.bias"] = torch.zeros(G.z_dim)
    return state
