"""Writing a generator checkpoint: a directory of ``config.json`` (sorted keys) and ``model.safetensors``.

The models layer's half of the checkpoint format (DESIGN rule 6), so that :meth:`Generator.save
<polyinr.models.generator.Generator.save>` needs nothing above the models; reading checkpoints and the snapshots
of run directories are :mod:`polyinr.checkpoint`'s. A checkpoint is written as one atomic directory
(:mod:`polyinr.atomic`), so a crash or a full disk leaves either the old checkpoint or the new one, never a mixture.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from polyinr._version import __version__
from polyinr.atomic import WriteError, atomic_directory, save_tensor_file
from polyinr.errors import PolyinrError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 2  # 2: the mapping network's fields nested under "mapping"
SNAPSHOTS_DIR = "checkpoints"  # <run>/checkpoints/<snapshot name>/
RUN_OPTIONS_NAME = "training_options.json"  # beside checkpoints/ in a training run directory


class CheckpointError(PolyinrError):
    """A checkpoint is missing, truncated, of another kind, or cannot be written."""


class CheckpointExists(CheckpointError):
    """A checkpoint is already where a new one was to be written, and replacing it was not asked for."""


# ---------------------------------------------------------------------------- generators


def write_generator_files(G: torch.nn.Module, directory: Path, extra: dict[str, Any] | None = None) -> None:
    """Write ``config.json`` and ``model.safetensors`` of generator ``G`` into an existing ``directory``.

    ``G`` is unwrapped from DDP / ``torch.compile`` wrappers first. Use inside :func:`atomic_directory`.
    """
    G = getattr(G, "module", G)
    G = getattr(G, "_orig_mod", G)
    config = {
        "format_version": FORMAT_VERSION,
        "polyinr_version": __version__,
        "model": G.model_name,
        "config": dataclasses.asdict(G.cfg),
        **(extra or {}),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    save_tensor_file(state, directory / WEIGHTS_NAME, metadata={"model": G.model_name})
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def check_checkpoint_target(path: str | Path, overwrite: bool = False) -> str:
    """Whether a checkpoint may be written at ``path``, before any work: ``'new'`` (nothing there), ``'empty'``
    (an empty directory, filled in place) or ``'replace'`` (a polyinr checkpoint, replaced only when
    ``overwrite``). A file, a training run directory or any other non-empty directory is refused in one line:
    writing a checkpoint never deletes what a user had."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return "new"
    if not path.is_dir():
        raise CheckpointError(f"{path} exists and is not a directory; choose another place for the checkpoint")
    if (path / SNAPSHOTS_DIR).is_dir() or (path / RUN_OPTIONS_NAME).exists():
        raise CheckpointError(f"{path} is a training run directory; a checkpoint is never written over one")
    entries = list(path.iterdir())
    if not entries:
        return "empty"
    if not (path / CONFIG_NAME).is_file() or not {e.name for e in entries} <= {CONFIG_NAME, WEIGHTS_NAME}:
        raise CheckpointError(f"{path} is not empty and is not a polyinr checkpoint; choose an empty or new directory")
    if not overwrite:
        raise CheckpointExists(f"{path} already holds a polyinr checkpoint")
    return "replace"


def save_generator(
    G: torch.nn.Module, path: str | Path, extra: dict[str, Any] | None = None, overwrite: bool = False
) -> Path:
    """Save generator ``G`` as a checkpoint directory at ``path``, atomically (see
    :func:`check_checkpoint_target` for what may be there already)."""
    path = Path(path)
    target = check_checkpoint_target(path, overwrite)
    try:
        if target == "new" or (target == "replace" and not _holds_cwd(path)):
            return atomic_directory(path, lambda tmp: write_generator_files(G, tmp, extra), what="checkpoint")
        # An empty directory, or one the process stands in ('.'), keeps its identity: the files are written
        # beside it and moved in, one atomic rename each.
        staged = atomic_directory(
            path.resolve().parent / f".{path.resolve().name}.staged-{os.getpid()}",
            lambda tmp: write_generator_files(G, tmp, extra),
            what="checkpoint",
        )
        try:
            for name in (WEIGHTS_NAME, CONFIG_NAME):
                os.replace(staged / name, path / name)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        return path
    except WriteError as e:
        raise CheckpointError(str(e)) from None
    except OSError as e:
        raise CheckpointError(f"cannot write checkpoint {path}: {e.strerror or e}") from None


def _holds_cwd(path: Path) -> bool:
    """True when ``path`` is the working directory or one of its parents (it cannot be swapped away)."""
    here, there = Path.cwd().resolve(), path.resolve()
    return here == there or there in here.parents
