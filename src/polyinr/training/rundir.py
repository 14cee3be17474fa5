"""Run directories ``<outdir>/NNNNN-<desc>/``: naming, finding the run to resume, and the run's logs.

A run is resumed automatically when the same command is run again: the newest run directory with the same
description and the same training options (duration, logging and worker settings may differ) that holds a
snapshot is continued.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from polyinr.checkpoint import atomic_write_json
from polyinr.errors import PolyinrError
from polyinr.training.snapshot import latest_snapshot

OPTIONS_NAME = "training_options.json"
# Options that may change between a run and its continuation.
RESUMABLE_CHANGES = {"kimg", "schedule", "tick_kimg", "snap_ticks", "keep_snapshots", "workers", "metrics",
                     "device", "outdir", "desc"}  # fmt: skip


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
    candidates = sorted((p for p in outdir.iterdir() if re.fullmatch(rf"\d{{5}}-{re.escape(desc)}", p.name)),
                        reverse=True)  # fmt: skip
    for run in candidates:
        try:
            saved = json.loads((run / OPTIONS_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if _comparable(saved) == _comparable(options_json) and latest_snapshot(run) is not None:
            return run
    return None


def new_run_dir(outdir: Path, desc: str) -> Path:
    """Create ``<outdir>/NNNNN-desc`` with the next free number."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PolyinrError(f"cannot create output directory {outdir}: {e.strerror or e}") from None
    numbers = [int(m.group(1)) for p in outdir.iterdir() if (m := re.match(r"(\d{5})-", p.name))]
    run = outdir / f"{max(numbers, default=-1) + 1:05d}-{desc}"
    run.mkdir()
    return run


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
