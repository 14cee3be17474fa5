"""Checkpoints: a directory of ``config.json`` (sorted keys) and ``model.safetensors`` (DESIGN rule 6).

Loading rebuilds the model from its config and never executes code. Writing one is the models layer's
(:mod:`polyinr.models.saving`, re-exported here): one atomic directory, so a crash or a full disk leaves either
the old checkpoint or the new one, never a mixture. A training run directory keeps its snapshots, each a
generator checkpoint plus training state, under ``checkpoints/`` with a ``latest`` pointer;
:func:`latest_snapshot` finds the newest complete one, so a run directory works wherever a checkpoint does (the
training state itself is ``training/snapshot.py``'s).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, load_file

from polyinr.errors import PolyinrError
from polyinr.models.generator import Generator
from polyinr.models.registry import build_config, check_config_values, get_entry, state_bytes
from polyinr.models.saving import (
    CONFIG_NAME,
    FORMAT_VERSION,
    SNAPSHOTS_DIR,
    WEIGHTS_NAME,
    CheckpointError,
    CheckpointExists,
    check_checkpoint_target,
    save_generator,
    write_generator_files,
)

__all__ = [  # with the writing half of the format, from the models layer
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "LATEST_NAME",
    "SNAPSHOTS_DIR",
    "SNAPSHOT_NAME",
    "STATE_JSON",
    "STATE_WEIGHTS",
    "V1_MAPPING_FIELDS",
    "WEIGHTS_NAME",
    "CheckpointError",
    "CheckpointExists",
    "check_checkpoint_target",
    "is_complete",
    "latest_snapshot",
    "list_snapshots",
    "load_generator",
    "read_config",
    "read_tensor_file",
    "resolve_checkpoint",
    "save_generator",
    "upgrade_v1_config",
    "write_generator_files",
]

V1_MAPPING_FIELDS = {
    "z_dim": "z_dim",
    "w_dim": "w_dim",
    "num_classes": "num_classes",
    "class_embed_dim": "embed_dim",
    "mapping_layers": "num_layers",
    "mapping_lr_multiplier": "lr_multiplier",
    "w_avg_beta": "w_avg_beta",
}


# ---------------------------------------------------------------------------- tensor files


def read_tensor_file(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, read into memory (no memory map keeps the file's space in use after
    it is deleted)."""
    return {key: value.clone() for key, value in load(path.read_bytes()).items()}  # owned, writable memory


# ---------------------------------------------------------------------------- reading generators


def read_config(path: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a generator checkpoint, validated; a one-line error otherwise."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_file():
        if path.suffix == ".pkl":
            raise CheckpointError(
                f"{path} is a pickle, not a polyinr checkpoint; convert it into one first (converter 'poly-inr')"
            )
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
        raise CheckpointError(
            f"{path} has checkpoint format {version!r}; this polyinr reads up to {FORMAT_VERSION}: upgrade polyinr"
        )
    return config


# ---------------------------------------------------------------------------- snapshots in run directories

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
            raise PolyinrError(
                f"{WEIGHTS_NAME} is truncated or corrupt, or the config is wrong: it holds "
                f"{weights.stat().st_size:,} bytes where the config implies {implied:,}"
            )
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
