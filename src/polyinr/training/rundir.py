"""Run directories ``<outdir>/NNNNN-<desc>/``: naming, finding the run to resume, and the run's logs.

A run is resumed automatically when the same command is run again: the newest run directory with the same
description and the same training options (duration, logging and worker settings may differ) that holds a
snapshot is continued.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polyinr.atomic import atomic_write_json
from polyinr.checkpoint import latest_snapshot
from polyinr.errors import PolyinrError
from polyinr.training.snapshot import clean_interrupted_snapshots

OPTIONS_NAME = "training_options.json"
LOCK_NAME = ".lock"
RUN_NAME = re.compile(r"(\d{5})-.+")
# Options that may change between a run and its continuation.
RESUMABLE_CHANGES = {
    "kimg",
    "schedule",
    "tick_kimg",
    "snap_ticks",
    "keep_snapshots",
    "workers",
    "metrics",
    "device",
    "outdir",
    "desc",
}


def describe(options: Any, dataset_name: str) -> str:
    """``poly-inr-cpu-digits-residual-b32-cond[-desc]`` (the recipe's name after the preset's when they differ)."""
    presets = [options.preset] if options.recipe == options.preset else [options.preset, options.recipe]
    words = [options.model, *presets, dataset_name, options.disc, f"b{options.batch}"]
    if options.cond:
        words.append("cond")
    if options.desc:
        words.append(options.desc)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(words))


def _comparable(options_json: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options_json.items() if k not in RESUMABLE_CHANGES}


def find_resumable(outdir: Path, desc: str, options_json: dict[str, Any]) -> Path | None:
    """The newest run in ``outdir`` named ``NNNNN-desc`` with matching options and a snapshot."""
    if not outdir.is_dir():
        return None
    candidates = sorted(
        (p for p in outdir.iterdir() if re.fullmatch(rf"\d{{5}}-{re.escape(desc)}", p.name)), reverse=True
    )
    for run in candidates:
        try:
            saved = json.loads((run / OPTIONS_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if _comparable(saved) == _comparable(options_json) and latest_snapshot(run) is not None:
            return run
    return None


def new_run_dir(outdir: Path, desc: str) -> Path:
    """Create ``<outdir>/NNNNN-desc`` with the next free number (atomic: a number taken by a process starting
    at the same moment is skipped)."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        numbers = [int(m.group(1)) for p in outdir.iterdir() if (m := RUN_NAME.fullmatch(p.name))]
        number = max(numbers, default=-1) + 1
        while True:
            run = outdir / f"{number:05d}-{desc}"
            try:
                run.mkdir()
                return run
            except FileExistsError:
                number += 1
    except OSError as e:
        raise PolyinrError(f"cannot create a run directory in {outdir}: {e.strerror or e}") from None


class RunLock:
    """An exclusive OS lock on a run directory (``<run>/.lock``, holding the owner's PID).

    ``flock`` locks belong to the open file, so the operating system releases them when the process dies,
    however it dies: a killed run never leaves a stale lock.
    """

    def __init__(self, run_dir: Path) -> None:
        path = run_dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise PolyinrError(
                f"run {run_dir} is being trained by another process (PID {holder}); wait for it to "
                "finish or start a new run"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def claim_run_dir(resume: str, outdir: Path, desc: str, options_json: dict[str, Any]) -> Iterator[tuple[Path, bool]]:
    """Resolve the run directory (:func:`resolve_run_dir`), lock it for this process and yield
    ``(run_dir, resuming)``; snapshot temporaries left by a killed run are removed first. When training a new
    run fails before its first snapshot, its directory is removed again (no empty runs are left behind)."""
    run_dir, resuming = resolve_run_dir(resume, outdir, desc, options_json)
    try:
        lock = RunLock(run_dir)
    except BaseException:
        if not resuming:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    try:
        clean_interrupted_snapshots(run_dir)
        yield run_dir, resuming
    except BaseException:
        if not resuming and latest_snapshot(run_dir) is None:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        lock.release()


def resolve_run_dir(resume: str, outdir: Path, desc: str, options_json: dict[str, Any]) -> tuple[Path, bool]:
    """``(run_dir, resuming)`` for ``--resume auto|new|RUN_DIR``."""
    if resume == "new":
        return new_run_dir(outdir, desc), False
    if resume == "auto":
        found = find_resumable(outdir, desc, options_json)
        return (found, True) if found is not None else (new_run_dir(outdir, desc), False)
    run = Path(resume)
    if not run.is_dir():
        raise PolyinrError(f"cannot resume {resume}: no such run directory (resume auto, new, or a run directory)")
    if latest_snapshot(run) is None:
        raise PolyinrError(f"cannot resume {resume}: the run has no complete snapshot to resume from")
    return run, True


class RunLog:
    """``log.txt``, ``stats.jsonl`` and TensorBoard events of a run (rank 0 only)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._log = open(run_dir / "log.txt", "a", encoding="utf-8")
        self._stats = open(run_dir / "stats.jsonl", "a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(run_dir))
        except ImportError:
            self._tb = None

    def write_options(self, options_json: dict[str, Any]) -> None:
        atomic_write_json(self.run_dir / OPTIONS_NAME, options_json)

    def line(self, text: str) -> None:
        self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
        self._log.flush()

    def stats(self, cur_nimg: int, values: dict[str, float]) -> None:
        self._stats.write(json.dumps({"kimg": cur_nimg / 1000, "timestamp": time.time(), **values}) + "\n")
        self._stats.flush()
        if self._tb is not None:
            for name, value in values.items():
                self._tb.add_scalar(name, value, global_step=cur_nimg)
            self._tb.flush()

    def close(self) -> None:
        self._log.close()
        self._stats.close()
        if self._tb is not None:
            self._tb.close()
