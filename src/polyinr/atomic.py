"""Atomic writes of files and directories: a crash or a full disk leaves the old version or the new one.

A file is written under a temporary name in its directory, fsynced and renamed onto its name; a directory is
assembled under a temporary name, fsynced and swapped in. Files get the usual permissions (``0o666`` less the
umask), not ``mkstemp``'s owner-only ones.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from polyinr.errors import PolyinrError


class WriteError(PolyinrError):
    """A directory could not be written (no space, no permission); the old one, if any, is untouched."""


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
    return atomic_write(path, lambda p: save_tensor_file(flat, p, metadata))


def atomic_directory(path: str | Path, fill: Callable[[Path], None], what: str = "directory") -> Path:
    """Build a directory with ``fill(tmp_dir)`` and swap it in for ``path`` (replacing an old one).

    An ``OSError`` (no space, no permission) becomes a one-line :class:`WriteError` naming ``what`` and
    ``path``; any failure leaves the old directory, if any, in place and no temporary one behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise WriteError(f"cannot write {what} {path}: {e.strerror or e}") from None
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        fill(tmp)
        for f in tmp.iterdir():
            if f.is_file():
                os.chmod(f, 0o666 & ~_UMASK)  # the usual permissions, whatever the writing library chose
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
        raise WriteError(f"cannot write {what} {path}: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return path


def save_tensor_file(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """``safetensors`` ``save_file`` whose I/O failures (a full disk above all) are ``OSError``s with their errno,
    so every write path reports them in one line and removes its partial output."""
    try:
        save_file(tensors, str(path), metadata={"format": "pt", **(metadata or {})})
    except SafetensorError as e:
        code = re.search(r"code: (\d+)", str(e))
        number = int(code.group(1)) if code else errno.EIO
        raise OSError(number, os.strerror(number) if code else str(e), str(path)) from None
