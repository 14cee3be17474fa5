"""Writing a checkpoint never deletes what a user had: create / convert over existing directories."""

from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner

import polyinr
from polyinr.checkpoint import CheckpointExists, save_generator
from polyinr.cli import main


def run(*args):
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_a_folder_with_a_users_file_is_refused_and_kept(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    code, out = run("create", str(folder))
    assert code == 1 and "not empty and is not a polyinr checkpoint" in out and len(out.strip().splitlines()) == 1
    assert (folder / "thesis.tex").read_text() == "precious" and sorted(os.listdir(folder)) == ["thesis.tex"]


def test_a_training_run_directory_is_never_written_over(tmp_path):
    run_dir = tmp_path / "00000-run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "training_options.json").write_text("{}")
    for extra in ([], ["--force"]):
        code, out = run("create", str(run_dir), *extra)
        assert code == 1 and "training run directory" in out
    assert sorted(os.listdir(run_dir)) == ["checkpoints", "training_options.json"]


def test_replacing_a_checkpoint_needs_force(tmp_path):
    target = tmp_path / "ckpt"
    assert run("create", str(target), "--seed", "1")[0] == 0
    before = (target / "model.safetensors").read_bytes()
    code, out = run("create", str(target), "--seed", "2")
    assert code == 1 and "already holds a polyinr checkpoint; add --force" in out
    assert (target / "model.safetensors").read_bytes() == before
    assert run("create", str(target), "--seed", "2", "--force")[0] == 0
    assert (target / "model.safetensors").read_bytes() != before
    with pytest.raises(CheckpointExists):
        save_generator(polyinr.load(target), target)


def test_create_dot_fills_the_working_directory_and_leaves_nothing_else(tmp_path, monkeypatch):
    here = tmp_path / "empty"
    here.mkdir()
    monkeypatch.chdir(here)
    assert run("create", ".")[0] == 0
    assert sorted(os.listdir(here)) == ["config.json", "model.safetensors"]
    assert os.listdir(tmp_path) == ["empty"]  # no staging or temporary directory left beside it
    assert run("create", ".", "--force")[0] == 0
    assert sorted(os.listdir(here)) == ["config.json", "model.safetensors"] and os.listdir(tmp_path) == ["empty"]
    polyinr.load(here)


def test_convert_checks_its_target_before_reading_anything(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("keep")
    code, out = run("convert", "--from", "poly-inr", str(tmp_path / "missing.pkl"), str(target))
    assert code == 1 and "not empty" in out and (target / "notes.txt").read_text() == "keep"


def test_weights_follow_the_umask_like_every_other_file(tmp_path):
    old = os.umask(0o027)
    try:
        path = polyinr.create("poly-inr", "cpu").save(tmp_path / "ckpt")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()}
    assert modes["model.safetensors"] == modes["config.json"]
