"""The one path from seeds, latent files and classes to ``z`` and ``ws``: every tool, metric, the training loop's
sample grids and the viewer go through it, so a seed gives the same image everywhere.

- A seed ``s`` gives ``z = np.random.RandomState(s).randn(1, z_dim)`` (NVIDIA's StyleGAN tools), so a sample
  does not depend on the batch it is drawn in (:func:`latents_from_seeds`).
- Classes are ``None`` (an unconditional generator), one index for every sample, or one index per sample
  (:func:`labels_for`).
- :func:`ws_for` maps seeds (with classes and truncation) or reads latent files; :func:`iter_ws` yields the
  same ``ws`` in batches, for sample counts that do not fit at once (metrics).
- A latent file is a safetensors file with one tensor ``ws [N, num_ws, w_dim]`` (float32) and metadata naming
  the generator it belongs to (``model``, ``z_dim``, ``num_ws``, ``w_dim``) and the class it was made for
  (``class``: an index, or ``none``); loading checks it against the generator (:func:`load_latents`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from polyinr.atomic import atomic_save_tensors
from polyinr.errors import PolyinrError
from polyinr.models.generator import Generator

Classes = int | Sequence[int] | np.ndarray | torch.Tensor | None  # one class for all samples, or one per sample
WS_KEY = "ws"
NO_CLASS = "none"


# ---------------------------------------------------------------------------- seeds


def latents_from_seeds(seeds: Iterable[int], z_dim: int) -> torch.Tensor:
    """``[len(seeds), z_dim]`` float32: seed ``s`` gives ``np.random.RandomState(s).randn(1, z_dim)``."""
    rows = [np.random.RandomState(int(s)).randn(1, z_dim) for s in seeds]
    if not rows:
        return torch.zeros(0, z_dim)
    return torch.from_numpy(np.concatenate(rows)).float()


MAX_SEED = 2**32 - 1  # numpy's RandomState seeds are 32-bit


class RangeList(Sequence[int]):
    """The integers of a list of inclusive ranges, in order, without materialising them (``0-10000000`` is
    ten million seeds in a few bytes); slicing materialises only the slice."""

    def __init__(self, ranges: Sequence[range]) -> None:
        self.ranges = list(ranges)
        self._starts = np.cumsum([0, *(len(r) for r in self.ranges)])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        block = int(np.searchsorted(self._starts, index, side="right")) - 1
        return self.ranges[block][index - int(self._starts[block])]

    def __iter__(self) -> Iterator[int]:
        for r in self.ranges:
            yield from r

    def __add__(self, other: Sequence[int]) -> RangeList:
        other_ranges = other.ranges if isinstance(other, RangeList) else [range(v, v + 1) for v in other]
        return RangeList([*self.ranges, *other_ranges])

    def __radd__(self, other: Sequence[int]) -> RangeList:
        return RangeList([range(v, v + 1) for v in other]) + self

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, RangeList)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __repr__(self) -> str:
        return f"RangeList({self.ranges!r})"


def parse_range_list(text: str, what: str = "seeds", maximum: int = MAX_SEED) -> RangeList:
    """Parse ``'0,3-7'`` into the integers ``0, 3, 4, 5, 6, 7`` (a lazy :class:`RangeList`); a one-line error
    for ``'7-3'``, negatives, values above ``maximum`` or junk."""
    values: list[range] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            raise PolyinrError(f"empty item in {what} {text!r}")
        if part.startswith("-"):
            raise PolyinrError(f"{what} must not be negative, got {part!r}")
        lo_text, sep, hi_text = part.partition("-")
        try:
            lo = int(lo_text)
            hi = int(hi_text) if sep else lo
        except ValueError:
            raise PolyinrError(f"{what} must look like '0,3-7', got {text!r}") from None
        if hi < lo:
            raise PolyinrError(f"{what} range {part!r} is empty: its end is before its start")
        if hi > maximum:
            raise PolyinrError(f"{what} must be at most {maximum:,}, got {hi:,}")
        values.append(range(lo, hi + 1))
    return RangeList(values)


# ---------------------------------------------------------------------------- classes, z, ws


def labels_for(G: Generator, classes: Classes, count: int, device: torch.device | str) -> torch.Tensor | None:
    """Class indices int64 ``[count]`` for a conditional ``G``, None for an unconditional one; clear errors.

    ``classes`` is one index for all ``count`` samples or ``count`` indices, one per sample.
    """
    if G.num_classes == 0:
        if classes is not None:
            raise PolyinrError("this generator is unconditional: it takes no class")
        return None
    if classes is None:
        raise PolyinrError(f"this generator is class-conditional: give a class (0..{G.num_classes - 1})")
    if isinstance(classes, (int, np.integer)):
        labels = torch.full((count,), int(classes), dtype=torch.long)
    else:
        labels = torch.as_tensor(np.asarray(classes, dtype=np.int64) if not torch.is_tensor(classes) else classes)
        if labels.shape != (count,):
            raise PolyinrError(f"{count} samples need {count} classes, got {tuple(labels.shape)}")
        labels = labels.long()
    bad = labels[(labels < 0) | (labels >= G.num_classes)]
    if len(bad):
        raise PolyinrError(f"unknown class {int(bad[0])}: this generator has classes 0..{G.num_classes - 1}")
    return labels.to(device)


def sample_inputs(
    G: Generator, seeds: Sequence[int], classes: Classes = None, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``z [N, z_dim]`` and labels ``[N]`` (None when unconditional) for ``N = len(seeds)`` samples."""
    seeds = list(seeds)
    return latents_from_seeds(seeds, G.z_dim).to(device), labels_for(G, classes, len(seeds), device)


@torch.no_grad()
def iter_ws(
    G: Generator,
    seeds: Sequence[int],
    classes: Classes = None,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
) -> Iterator[torch.Tensor]:
    """``ws [b, num_ws, w_dim]`` for the seeds, ``batch_size`` at a time, in order (see :func:`ws_for`); only
    the current batch is ever mapped, so millions of seeds stream in bounded memory."""
    labels = labels_for(G, classes, len(seeds), "cpu")
    for start in range(0, len(seeds), batch_size):
        stop = min(start + batch_size, len(seeds))
        z = latents_from_seeds(seeds[start:stop], G.z_dim).to(device)
        c = None if labels is None else labels[start:stop].to(device)
        yield G.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)


@torch.no_grad()
def ws_for(
    G: Generator,
    seeds: Sequence[int] | None = None,
    latents: Sequence[str | Path] | None = None,
    classes: Classes = None,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    device: torch.device | str = "cpu",
    batch_size: int | None = None,
) -> torch.Tensor:
    """``ws [N, num_ws, w_dim]`` from seeds (mapped with classes and truncation) or from latent files.

    Exactly one of ``seeds`` and ``latents`` (latent file paths, concatenated in order) is given. A latent
    already holds its class and truncation, so ``classes`` and truncation do not apply to it. Seeds are
    mapped ``batch_size`` at a time (None: all at once). ``truncation_cutoff`` truncates only the first that
    many ws (None: all).
    """
    has_seeds, has_latents = seeds is not None and len(seeds) > 0, latents is not None and len(latents) > 0
    if has_seeds and has_latents:
        raise PolyinrError("give seeds or latent files, not both")
    if not has_seeds and not has_latents:
        raise PolyinrError("give seeds or latent files")
    if has_seeds:
        batches = iter_ws(G, seeds, classes, truncation_psi, truncation_cutoff, device, batch_size or len(seeds))
        return torch.cat(list(batches))
    if classes is not None or truncation_psi != 1 or truncation_cutoff is not None:
        raise PolyinrError("a class and truncation do not apply to latent files: a latent already holds its w")
    return torch.cat([load_latents(p, G, device).ws for p in latents])


def one_sample(ws: torch.Tensor) -> torch.Tensor:
    """``ws [1, num_ws, w_dim]`` unchanged; a one-line error when it holds another number of samples."""
    if len(ws) != 1:
        raise PolyinrError(f"the latent file holds {len(ws)} latents; one sample is needed here")
    return ws


# ---------------------------------------------------------------------------- latent files


class LatentFileError(PolyinrError):
    """A latent file is missing, of another kind, or made for another generator."""


@dataclass(frozen=True)
class Latents:
    """``ws [N, num_ws, w_dim]`` float32 and the class they were made for (None = unconditional / unknown)."""

    ws: torch.Tensor
    class_idx: int | None


def save_latents(path: str | Path, ws: torch.Tensor, G: Generator, class_idx: int | None = None) -> Path:
    """Write ``ws [N, num_ws, w_dim]`` of generator ``G`` to the safetensors file ``path``, atomically."""
    if ws.ndim != 3 or ws.shape[1:] != (G.num_ws, G.w_dim):
        raise LatentFileError(f"latents must be [N, {G.num_ws}, {G.w_dim}] for this generator, got {tuple(ws.shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "model": G.model_name,
        "z_dim": str(G.z_dim),
        "num_ws": str(G.num_ws),
        "w_dim": str(G.w_dim),
        "class": NO_CLASS if class_idx is None else str(int(class_idx)),
    }
    return atomic_save_tensors(path, {WS_KEY: ws.detach().float()}, metadata)


def read_latent_file(
    path: Path, error: type[PolyinrError] = LatentFileError, what: str = f"a latent file (safetensors with {WS_KEY!r})"
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every tensor and the metadata of the latent file ``path`` (plain or canvas): a missing or unreadable
    file is a one-line ``error``, ``{path} is not {what}: …``."""
    if not path.is_file():
        raise error(f"latent file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}  # noqa: SIM118 (not a mapping)
    except (SafetensorError, OSError, ValueError) as e:
        raise error(f"{path} is not {what}: {e}") from None


def load_latents(path: str | Path, G: Generator, device: torch.device | str = "cpu") -> Latents:
    """Read a latent file written by :func:`save_latents` and check it belongs to ``G``."""
    path = Path(path)
    tensors, metadata = read_latent_file(path)
    if WS_KEY not in tensors:
        raise LatentFileError(f"{path} is not a latent file: it holds no {WS_KEY!r} tensor")
    ws = tensors[WS_KEY]
    expected = {"model": G.model_name, "z_dim": str(G.z_dim), "num_ws": str(G.num_ws), "w_dim": str(G.w_dim)}
    for key, value in expected.items():
        if metadata.get(key) != value:
            raise LatentFileError(
                f"{path} was made for a generator with {key} {metadata.get(key)!r}, this one has {value!r}"
            )
    if ws.ndim != 3 or ws.shape[1:] != (G.num_ws, G.w_dim) or len(ws) == 0:
        raise LatentFileError(f"{path} holds ws of shape {tuple(ws.shape)}, expected [N>0, {G.num_ws}, {G.w_dim}]")
    class_idx = _parse_class(metadata.get("class", NO_CLASS), path)
    if class_idx is not None and not 0 <= class_idx < G.num_classes:
        raise LatentFileError(f"{path} was made for class {class_idx}, which this generator does not have")
    return Latents(ws.to(device=device, dtype=torch.float32), class_idx)


def _parse_class(text: str, path: Path) -> int | None:
    if text == NO_CLASS:
        return None
    try:
        return int(text)
    except ValueError:
        raise LatentFileError(f"{path} has an invalid class {text!r} in its metadata") from None
