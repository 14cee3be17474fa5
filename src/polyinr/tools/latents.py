"""Latent files: ``ws`` that work wherever seeds do (``--latent FILE`` in generate, render, video, mix).

A latent file is a safetensors file with one tensor ``ws [N, num_ws, w_dim]`` (float32) and metadata naming
the generator it belongs to (``model``, ``z_dim``, ``num_ws``, ``w_dim``) and the class it was made for
(``class``: an index, or ``none``). Loading checks the file against the generator and turns every mismatch into
a one-line :class:`LatentFileError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from polyinr.atomic import atomic_save_tensors
from polyinr.errors import PolyinrError
from polyinr.models.generator import Generator
from polyinr.tools.render import seed_ws

WS_KEY = "ws"
NO_CLASS = "none"


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


def load_latents(path: str | Path, G: Generator, device: torch.device | str = "cpu") -> Latents:
    """Read a latent file written by :func:`save_latents` and check it belongs to ``G``."""
    path = Path(path)
    if not path.is_file():
        raise LatentFileError(f"latent file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            if WS_KEY not in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                raise LatentFileError(f"{path} is not a latent file: it holds no {WS_KEY!r} tensor")
            ws = f.get_tensor(WS_KEY)
    except (SafetensorError, OSError, ValueError) as e:
        raise LatentFileError(f"{path} is not a latent file (safetensors with {WS_KEY!r}): {e}") from None
    expected = {"model": G.model_name, "z_dim": str(G.z_dim), "num_ws": str(G.num_ws), "w_dim": str(G.w_dim)}
    for key, value in expected.items():
        if metadata.get(key) != value:
            raise LatentFileError(f"{path} was made for a generator with {key} {metadata.get(key)!r}, "
                                  f"this one has {value!r}")  # fmt: skip
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


def ws_from_source(
    G: Generator,
    seeds: Sequence[int] | None = None,
    latent_paths: Sequence[str | Path] | None = None,
    class_idx: int | None = None,
    truncation_psi: float = 1.0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``ws [N, num_ws, w_dim]`` from seeds (mapped with ``class_idx`` and truncation) or from latent files.

    Exactly one of ``seeds`` and ``latent_paths`` is given; latent files are concatenated in order. A latent
    already holds its class and truncation, so ``class_idx`` and ``truncation_psi`` do not apply to it.
    """
    if seeds and latent_paths:
        raise PolyinrError("give seeds (--seeds / --seed) or latent files (--latent), not both")
    if not seeds and not latent_paths:
        raise PolyinrError("give seeds (--seeds / --seed) or latent files (--latent)")
    if seeds:
        return seed_ws(G, list(seeds), class_idx, truncation_psi, device)
    if class_idx is not None or truncation_psi != 1:
        raise PolyinrError("--class and --trunc do not apply to --latent: a latent already holds its class and w")
    return torch.cat([load_latents(p, G, device).ws for p in latent_paths])


def one_sample(ws: torch.Tensor) -> torch.Tensor:
    """``ws [1, num_ws, w_dim]`` unchanged; a one-line error when it holds another number of samples."""
    if len(ws) != 1:
        raise PolyinrError(f"the latent file holds {len(ws)} latents; this command renders one sample")
    return ws
