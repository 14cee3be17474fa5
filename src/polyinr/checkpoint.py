"""Checkpoints: a directory of ``config.json`` (sorted keys) and ``model.safetensors`` (DESIGN rule 6).

Loading rebuilds the model from its config and never executes code. Every write is atomic: files are
written under a temporary name, fsynced and renamed; a directory is assembled under a temporary name and
swapped in, so a crash or a full disk leaves either the old checkpoint or the new one, never a mixture.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from polyinr._version import __version__
from polyinr.errors import PolyinrError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 2  # 2: the mapping network's fields nested under "mapping"
V1_MAPPING_FIELDS = {"z_dim": "z_dim", "w_dim": "w_dim", "num_classes": "num_classes", "class_embed_dim": "embed_dim",
                     "mapping_layers": "num_layers", "mapping_lr_multiplier": "lr_multiplier",
                     "w_avg_beta": "w_avg_beta"}  # fmt: skip


class CheckpointError(PolyinrError):
    """A checkpoint is missing, truncated, of another kind, or cannot be written."""


# ---------------------------------------------------------------------------- atomic writes


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask can only be read by setting it


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then fsync and rename onto ``path``; on failure ``path`` is untouched.

    The file gets the usual permissions (``0o666`` less the umask), not ``mkstemp``'s owner-only ones.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        write(tmp_path)
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_save_tensors(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> Path:
    """Write a safetensors file atomically (tensors are made contiguous and moved to CPU)."""
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda p: save_file(flat, str(p), metadata={"format": "pt", **(metadata or {})}))


def atomic_directory(path: str | Path, fill: Callable[[Path], None]) -> Path:
    """Build a directory with ``fill(tmp_dir)`` and swap it in for ``path`` (replacing an old one)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise CheckpointError(f"cannot write checkpoint {path}: {e.strerror or e}") from None
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        fill(tmp)
        for f in tmp.iterdir():
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not path.exists():
            os.replace(old, path)
        raise CheckpointError(f"cannot write checkpoint {path}: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return path


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
    save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt", "model": G.model_name})
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def save_generator(G: torch.nn.Module, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Save generator ``G`` as a checkpoint directory at ``path``, atomically."""
    return atomic_directory(path, lambda tmp: write_generator_files(G, tmp, extra))


def read_config(path: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a generator checkpoint, validated; a one-line error otherwise."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_file():
        if path.suffix == ".pkl":
            raise CheckpointError(f"{path} is a pickle; convert it first: polyinr convert --from poly-inr-official "
                                  f"{path} OUT_DIR")  # fmt: skip
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


def resolve_checkpoint(path: str | Path) -> Path:
    """``path`` itself, or for a training run directory its latest snapshot (a generator checkpoint)."""
    path = Path(path)
    if path.is_dir() and not (path / CONFIG_NAME).exists() and (path / "checkpoints").is_dir():
        from polyinr.training.snapshot import latest_snapshot

        snapshot = latest_snapshot(path)
        if snapshot is None:
            raise CheckpointError(f"training run {path} has no complete snapshot yet")
        return snapshot
    return path


def load_generator(path: str | Path, device: torch.device | str = "cpu", expect_model: str | None = None):
    """Rebuild a generator from a checkpoint directory, in eval mode on ``device``.

    ``expect_model`` (e.g. ``'poly-inr'``) turns a checkpoint of another model into a one-line error.
    """
    from polyinr.models.registry import build_config, get_entry

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
    try:
        G = entry.generator_cls(build_config(entry.config_cls, values))
    except (TypeError, ValueError, PolyinrError) as e:
        raise CheckpointError(f"{path}: invalid {name} config: {e}") from None
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{path} has no {WEIGHTS_NAME}")
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
