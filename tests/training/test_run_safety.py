"""Run directories under careless use: twin trainers, killed writes, a full disk, users' own folders."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from test_training_parts import _snapshot_parts

from polyinr.atomic import save_tensor_file
from polyinr.checkpoint import CheckpointError, latest_snapshot, list_snapshots, read_tensor_file
from polyinr.errors import PolyinrError
from polyinr.training import snapshot as snapshot_module
from polyinr.training.rundir import RunLock, claim_run_dir, new_run_dir
from polyinr.training.snapshot import save_snapshot

OPTIONS = {"kimg": 1}


def test_a_second_trainer_of_the_same_run_is_refused_with_the_holders_pid(tmp_path):
    run = new_run_dir(tmp_path, "desc")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from polyinr.training.rundir import RunLock; RunLock(Path(sys.argv[1])); "
            "print('locked', flush=True); time.sleep(60)",
            str(run),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(PolyinrError, match=rf"being trained by another process \(PID {holder.pid}\)") as e:
            RunLock(run)
        assert "\n" not in str(e.value)
    finally:
        holder.kill()
        holder.wait()
    RunLock(run).release()  # a killed holder leaves no stale lock


def test_run_numbers_taken_at_the_same_moment_are_skipped(tmp_path, monkeypatch):
    (tmp_path / "00000-desc").mkdir()
    real_mkdir = type(tmp_path).mkdir

    def racing_mkdir(self, *args, **kwargs):  # another process takes 00001 between our scan and our mkdir
        if self.name == "00001-desc" and not self.exists():
            real_mkdir(self)
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(type(tmp_path), "mkdir", racing_mkdir)
    assert new_run_dir(tmp_path, "desc").name == "00002-desc"


def test_a_failed_start_leaves_no_run_directory_but_a_resumed_run_is_kept(tmp_path):
    with pytest.raises(RuntimeError), claim_run_dir("auto", tmp_path, "desc", OPTIONS) as (run, resuming):
        assert run.is_dir() and not resuming
        raise RuntimeError("the networks could not be built")
    assert list(tmp_path.iterdir()) == []
    G, D, opt = _snapshot_parts()
    with claim_run_dir("auto", tmp_path, "desc", OPTIONS) as (run, _):
        (run / "training_options.json").write_text('{"kimg": 1}')
        save_snapshot(run, 1000, G, {"D": D}, {"D": opt}, {"step": 1}, keep=2)
    with pytest.raises(RuntimeError), claim_run_dir("auto", tmp_path, "desc", OPTIONS) as (again, resuming):
        assert again == run and resuming
        raise RuntimeError("interrupted")
    assert latest_snapshot(run) is not None


def test_interrupted_snapshot_temporaries_are_cleaned_on_the_next_start(tmp_path):
    run = new_run_dir(tmp_path, "desc")
    G, D, opt = _snapshot_parts()
    save_snapshot(run, 1000, G, {"D": D}, {"D": opt}, {"step": 1}, keep=2)
    leftovers = [run / "checkpoints" / ".000004.k2j3.tmp", run / "checkpoints" / ".000002.old-4242"]
    for path in leftovers:  # what kill -9 during a snapshot write leaves
        path.mkdir(parents=True)
        (path / "training_state.safetensors").write_bytes(b"partial")
    with claim_run_dir(str(run), tmp_path, "desc", {}) as (claimed, resuming):
        assert claimed == run and resuming
        assert not any(p.exists() for p in leftovers)
        assert len(list_snapshots(run)) == 1


def test_a_users_folder_under_checkpoints_is_not_a_snapshot(tmp_path):
    G, D, opt = _snapshot_parts()
    first = save_snapshot(tmp_path, 1000, G, {"D": D}, {"D": opt}, {"step": 1}, keep=2)
    best = tmp_path / "checkpoints" / "best"
    best.mkdir()
    for f in first.iterdir():
        (best / f.name).write_bytes(f.read_bytes())  # a complete copy, named by the user
    (tmp_path / "checkpoints" / "latest").write_text("best\n")
    second = save_snapshot(tmp_path, 2000, G, {"D": D}, {"D": opt}, {"step": 2}, keep=2)
    assert list_snapshots(tmp_path) == [first, second]
    assert latest_snapshot(tmp_path) == second and best.is_dir()


def test_a_short_disk_prunes_old_snapshots_before_writing_never_the_newest(tmp_path, monkeypatch):
    G, D, opt = _snapshot_parts()
    made = [save_snapshot(tmp_path, n, G, {"D": D}, {"D": opt}, {"step": 1}, keep=5) for n in (1000, 2000, 3000)]

    class Usage:
        free = 0  # nothing fits: every old snapshot but the newest goes

    monkeypatch.setattr(snapshot_module.shutil, "disk_usage", lambda _path: Usage)
    removed = snapshot_module.make_room(tmp_path, needed=10**6)
    assert removed == made[:2] and list_snapshots(tmp_path) == [made[2]]


def test_a_full_disk_is_an_oserror_with_its_errno(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    def full(*args, **kwargs):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "x" })')

    monkeypatch.setattr("polyinr.atomic.save_file", full)
    with pytest.raises(OSError) as e:
        save_tensor_file({"x": torch.zeros(2)}, tmp_path / "t.safetensors")
    assert e.value.errno == 28


def test_resume_reads_tensors_into_memory(tmp_path):
    path = tmp_path / "t.safetensors"
    save_tensor_file({"x": torch.arange(6.0)}, path)
    tensors = read_tensor_file(path)
    path.unlink()  # the space is free: nothing maps the file any more
    assert torch.equal(tensors["x"], torch.arange(6.0))


def test_snapshot_errors_are_one_line(tmp_path, monkeypatch):
    G, D, opt = _snapshot_parts()
    monkeypatch.setattr("polyinr.atomic.save_file", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space")))
    with pytest.raises(CheckpointError) as e:
        save_snapshot(tmp_path, 1000, G, {"D": D}, {"D": opt}, {"step": 1}, keep=2)
    assert "\n" not in str(e.value)
    assert not any(p.name.startswith(".") for p in (tmp_path / "checkpoints").iterdir())
