"""Checkpoints: a directory of ``config.json`` (sorted keys) and ``model.safetensors`` (DESIGN rule 6).

Loading rebuilds the model from its config and never executes code. A checkpoint is written as one atomic
directory (:mod:`polyinr.atomic`), so a crash or a full disk leaves either the old checkpoint or the new one,
never a mixture. A training run directory keeps its snapshots, each a generator checkpoint plus training
state, under ``checkpoints/`` with a ``latest`` pointer; :func:`latest_snapshot` finds the newest complete one,
so a run directory works wherever a checkpoint does (the training state itself is ``training/snapshot.py``'s).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, load_file

from polyinr._version import __version__
from polyinr.atomic import WriteError, atomic_directory, save_tensor_file
from polyinr.errors import PolyinrError
from polyinr.models.generator import Generator
from polyinr.models.registry import build_config, check_config_values, get_entry, state_bytes

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 2  # 2: the mapping network's fields nested under "mapping"
V1_MAPPING_FIELDS = {"z_dim": "z_dim", "w_dim": "w_dim", "num_classes": "num_classes", "class_embed_dim": "embed_dim",
                     "mapping_layers": "num_layers", "mapping_lr_multiplier": "lr_multiplier",
                     "w_avg_beta": "w_avg_beta"}  # fmt: skip


class CheckpointError(PolyinrError):
    """A checkpoint is missing, truncated, of another kind, or cannot be written."""


class CheckpointExists(CheckpointError):
    """A checkpoint is already where a new one was to be written, and replacing it was not asked for."""


# ---------------------------------------------------------------------------- tensor files


def read_tensor_file(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, read into memory (no memory map keeps the file's space in use after
    it is deleted)."""
    return {key: value.clone() for key, value in load(path.read_bytes()).items()}  # owned, writable memory


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
    if (path / SNAPSHOTS_DIR).is_dir() or (path / "training_options.json").exists():
        raise CheckpointError(f"{path} is a training run directory; a checkpoint is never written over one")
    entries = list(path.iterdir())
    if not entries:
        return "empty"
    if not (path / CONFIG_NAME).is_file() or not {e.name for e in entries} <= {CONFIG_NAME, WEIGHTS_NAME}:
        raise CheckpointError(f"{path} is not empty and is not a polyinr checkpoint; choose an empty or new "
                              "directory")  # fmt: skip
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
        staged = atomic_directory(path.resolve().parent / f".{path.resolve().name}.staged-{os.getpid()}",
                                  lambda tmp: write_generator_files(G, tmp, extra), what="checkpoint")  # fmt: skip
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


def read_config(path: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a generator checkpoint, validated; a one-line error otherwise."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_file():
        if path.suffix == ".pkl":
            raise CheckpointError(f"{path} is a pickle, not a polyinr checkpoint; convert it into one first "
                                  f"(converter 'poly-inr')")  # fmt: skip
        raise CheckpointError(f"{path} is a file; a polyinr checkpoint is a directory with {CONFIG_NAME}")
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(f"{path} is not a polyinr checkpoint: it has no {CONFIG_NAME}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{config_path} is corrupt: {e}") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), str):
        raise CheckpointError(f"{path} is not a polyinr generator checkpoint ({CONFIG_NAME} names no model)")
    if not isinstance(config.get("config"), dict):
        raise CheckpointError(f"{path} is not a polyinr generator checkpoint ({CONFIG_NAME} has no model config)")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {version!r}; this polyinr reads up to "
                              f"{FORMAT_VERSION}: upgrade polyinr")  # fmt: skip
    return config


# ---------------------------------------------------------------------------- snapshots in run directories

SNAPSHOTS_DIR = "checkpoints"  # <run>/checkpoints/<snapshot name>/
LATEST_NAME = "latest"  # <run>/checkpoints/latest: a text file naming the newest snapshot
SNAPSHOT_NAME = re.compile(r"\d{6}(\.\d{3})?")  # kimg[.rest]; anything else in checkpoints/ is the user's
STATE_WEIGHTS = "training_state.safetensors"  # a snapshot's training state (written by training/snapshot.py)
STATE_JSON = "training_state.json"


def is_complete(path: Path) -> bool:
    """Whether snapshot directory ``path`` holds all four files (a generator checkpoint + training state)."""
    return all((path / name).is_file() for name in (STATE_JSON, STATE_WEIGHTS, CONFIG_NAME, WEIGHTS_NAME))


def list_snapshots(run_dir: Path) -> list[Path]:
    """Complete snapshot directories of a run, oldest first."""
    root = run_dir / SNAPSHOTS_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if SNAPSHOT_NAME.fullmatch(p.name) and p.is_dir() and is_complete(p)]
    return sorted(found, key=lambda p: float(p.name))


def latest_snapshot(run_dir: Path) -> Path | None:
    """The snapshot ``latest`` points to, or the newest complete one if the pointer is missing or stale."""
    pointer = run_dir / SNAPSHOTS_DIR / LATEST_NAME
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8", errors="replace").strip()
        target = run_dir / SNAPSHOTS_DIR / name
        if SNAPSHOT_NAME.fullmatch(name) and target.is_dir() and is_complete(target):
            return target
    snapshots = list_snapshots(run_dir)
    return snapshots[-1] if snapshots else None


def resolve_checkpoint(path: str | Path) -> Path:
    """``path`` itself, or for a training run directory its latest snapshot (a generator checkpoint)."""
    path = Path(path)
    if path.is_dir() and not (path / CONFIG_NAME).exists() and (path / SNAPSHOTS_DIR).is_dir():
        snapshot = latest_snapshot(path)
        if snapshot is None:
            raise CheckpointError(f"training run {path} has no complete snapshot yet")
        return snapshot
    return path


def load_generator(path: str | Path, device: torch.device | str = "cpu", expect_model: str | None = None) -> Generator:
    """Rebuild a generator from a checkpoint directory (or a run directory's latest snapshot), eval mode.

    ``expect_model`` (e.g. ``'poly-inr'``) turns a checkpoint of another model into a one-line error.
    """
    path = resolve_checkpoint(path)
    config = read_config(path)
    name = config["model"]
    if expect_model is not None and name != expect_model:
        raise CheckpointError(f"{path} holds a {name!r} model, but a {expect_model!r} model is needed")
    try:
        entry = get_entry(name)
    except PolyinrError as e:
        raise CheckpointError(f"{path}: {e}") from None
    values = config["config"] if config["format_version"] >= 2 else upgrade_v1_config(config["config"])
    fields = {f.name for f in dataclasses.fields(entry.config_cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise CheckpointError(f"{path} was written by a newer polyinr: unknown {name} settings {unknown}")
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{path} has no {WEIGHTS_NAME}")
    try:  # validated against the weights actually present before anything is allocated
        cfg = build_config(entry.config_cls, values)
        check_config_values(cfg)
        implied = state_bytes(entry.generator_cls, cfg)
        if implied > weights.stat().st_size:
            raise PolyinrError(f"{WEIGHTS_NAME} is truncated or corrupt, or the config is wrong: it holds "
                               f"{weights.stat().st_size:,} bytes where the config implies {implied:,}")  # fmt: skip
        G = entry.generator_cls(cfg)
    except (TypeError, ValueError, PolyinrError) as e:
        raise CheckpointError(f"{path}: invalid {name} config: {e}") from None
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights} is truncated or corrupt ({e})") from None
    _load_state(G, state, path)
    return G.to(device).eval().requires_grad_(False)


def upgrade_v1_config(values: dict[str, Any]) -> dict[str, Any]:
    """A format-1 config (mapping fields at the top level, under their old names) in today's nested form."""
    values = dict(values)
    mapping = {new: values.pop(old) for old, new in V1_MAPPING_FIELDS.items() if old in values}
    return {**values, "mapping": {**mapping, **values.get("mapping", {})}} if mapping else values


def _load_state(module: torch.nn.Module, state: dict[str, torch.Tensor], origin: Path) -> None:
    """Load ``state`` strictly, naming missing, unexpected and mis-shaped keys in one line."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mis_shaped = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    problems = []
    if missing:
        problems.append(f"missing {missing[:5]}{'…' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected {unexpected[:5]}{'…' if len(unexpected) > 5 else ''}")
    if mis_shaped:
        problems.append(f"wrong shape {mis_shaped[:5]}")
    if problems:
        raise CheckpointError(f"{origin}: weights do not match the config: {'; '.join(problems)}")
    module.load_state_dict(state, strict=True)
