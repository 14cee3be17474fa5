"""Atomic writes: a crash while writing leaves the old file or directory and no temporary behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from polyinr.atomic import atomic_directory, atomic_save_tensors, atomic_write, atomic_write_json


def leftovers(directory: Path) -> list[str]:
    """Temporary files or directories an interrupted write could leave behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_atomic_file_writes(tmp_path):
    path = tmp_path / "state.json"
    atomic_write_json(path, {"b": 1, "a": [1, 2]})
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'

    def crash(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}
    assert leftovers(tmp_path) == []
    tensors = {"x": torch.arange(6.0).view(2, 3).t(), "y": torch.ones(2, dtype=torch.int64)}
    atomic_save_tensors(tmp_path / "t.safetensors", tensors, metadata={"step": "3"})
    back = load_file(str(tmp_path / "t.safetensors"))
    assert torch.equal(back["x"], tensors["x"]) and torch.equal(back["y"], tensors["y"])


def test_atomic_directory_failure_keeps_the_old_directory(tmp_path):
    path = tmp_path / "run"
    atomic_directory(path, lambda d: (d / "a.txt").write_text("old"))

    def fill(d: Path) -> None:
        (d / "a.txt").write_text("new")
        raise ValueError("boom")

    with pytest.raises(ValueError):
        atomic_directory(path, fill)
    assert (path / "a.txt").read_text() == "old" and leftovers(tmp_path) == []
    atomic_directory(path, lambda d: (d / "b.txt").write_text("new"))
    assert sorted(p.name for p in path.iterdir()) == ["b.txt"]
