"""Ctrl+C (SIGINT) and SIGTERM stop a long command within seconds in every phase — training, a snapshot's metric
pass, compare's measurements and its big render, compare's --parallel processes — with one line, no traceback,
exit status 128 + the signal, and leave work that the same command continues.

Each test starts the real command in a subprocess, waits until its output or its run directory shows the phase,
then sends the signal. The phases that must be caught in the act are made slow by size (a metric over thousands
of samples, a 4096² render)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from child_env import child_env
from polyinr.checkpoint import STATE_JSON, latest_snapshot
from polyinr.tools import compare as cmp

STOP_SECONDS = 20  # a generous bound on how long a signalled command may take to exit
PHASE_SECONDS = 300  # how long a command may take to reach the phase a test signals it in


# 8×8 digits, a 16-wide generator, a tick every 2 steps: a budget it never reaches before the signal.
TRAIN = [
    "train",
    "--data",
    "builtin:digits",
    "--cond",
    "true",
    "--resolution",
    "8",
    "--batch",
    "8",
    "--kimg",
    "100",
    "--tick",
    "0.016",
    "--channels",
    "16",
    "--workers",
    "0",
    "--device",
    "cpu",
    "--seed",
    "3",
]
# Two tiny models; equivariance metrics only, so that no metric runs at the snapshots (the curve metric is a
# quality metric).
COMPARE = [
    "compare",
    "--data",
    "builtin:digits",
    "--resolution",
    "16",
    "--batch",
    "8",
    "--snap-kimg",
    "0.016",
    "--seeds",
    "0",
    "--big-render",
    "4096",
]


class Command:
    """A ``polyinr`` command in a subprocess; its stdout and stderr go to one file."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "polyinr", *args], stdout=out, stderr=subprocess.STDOUT, env=child_env()
            )

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, phase: Callable[[], bool]) -> None:
        """Until ``phase()`` holds; fails if the command ends first."""
        deadline = time.time() + PHASE_SECONDS
        while not phase():
            assert self.proc.poll() is None, f"ended before the phase:\n{self.output()[-2000:]}"
            assert time.time() < deadline, f"never reached the phase:\n{self.output()[-2000:]}"
            time.sleep(0.05)

    def interrupt(self, signum: int) -> str:
        """Send ``signum``; check the command exits with 128 + ``signum`` within :data:`STOP_SECONDS`, saying one
        line and no traceback; returns that line."""
        self.proc.send_signal(signum)
        assert self.proc.wait(timeout=STOP_SECONDS) == 128 + signum, self.output()[-2000:]
        output = self.output()
        assert "Traceback" not in output, output[-2000:]
        said = [line for line in re.split(r"[\r\n]", output) if line.startswith("interrupted: ")]
        assert len(said) == 1, output[-2000:]
        assert said[0].startswith(f"interrupted: stopped by {signal.Signals(signum).name}")
        return said[0]

    def finish(self) -> str:
        """Wait for a normal end; returns the output."""
        assert self.proc.wait(timeout=PHASE_SECONDS) == 0, self.output()[-2000:]
        return self.output()


@pytest.fixture
def command(tmp_path: Path) -> Iterator[Callable[[list[str]], Command]]:
    """Starts commands, and kills (by PID) any still running when the test ends."""
    started: list[Command] = []

    def start(args: list[str]) -> Command:
        started.append(Command(args, tmp_path / f"output-{len(started)}.txt"))
        return started[-1]

    yield start
    for cmd in started:
        if cmd.proc.poll() is None:
            cmd.proc.kill()
            cmd.proc.wait()


def _cur_nimg(snapshot: Path) -> int:
    return json.loads((snapshot / STATE_JSON).read_text(encoding="utf-8"))["cur_nimg"]


def _run_dir(outdir: Path) -> Path | None:
    return next((p for p in outdir.glob("*") if p.is_dir()), None) if outdir.is_dir() else None


def _ticks(outdir: Path) -> int:
    """Ticks the run in ``outdir`` has written (lines of its ``stats.jsonl``)."""
    stats = list(outdir.glob("*/stats.jsonl"))
    return len(stats[0].read_text(encoding="utf-8").splitlines()) if stats else 0


def _ticked(outdir: Path, after: int = 0) -> Callable[[], bool]:
    """The run in ``outdir`` has written a tick beyond the first ``after`` (it is in its training steps)."""
    return lambda: _ticks(outdir) > after


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_signal_in_training_saves_the_step_and_the_same_command_resumes_from_it(tmp_path, command):
    outdir = tmp_path / "runs"
    args = [*TRAIN, "--outdir", str(outdir), "--snap", "1000"]  # no snapshot but the one the signal asks for
    first = command(args)
    first.wait_for(_ticked(outdir))
    said = first.interrupt(signal.SIGTERM)
    snapshot = latest_snapshot(_run_dir(outdir))
    assert snapshot is not None and _cur_nimg(snapshot) > 0
    assert f"newest snapshot: {snapshot}" in said and said.endswith("run the same command to continue")

    again = command(args)
    again.wait_for(_ticked(outdir, after=_ticks(outdir)))
    again.interrupt(signal.SIGINT)
    assert f"resuming {snapshot.parents[1]} from {snapshot.name}" in again.output()
    assert _cur_nimg(latest_snapshot(_run_dir(outdir))) > _cur_nimg(snapshot)  # it trained on, and saved again


@pytest.mark.slow
def test_a_signal_in_a_snapshot_metric_pass_stops_at_once_and_leaves_the_pass_to_the_resumed_run(tmp_path, command):
    outdir = tmp_path / "runs"
    args = [*TRAIN, "--outdir", str(outdir), "--snap", "1", "--metrics", "eqt5k_int"]  # minutes per snapshot
    first = command(args)
    first.wait_for(lambda: (run := _run_dir(outdir)) is not None and latest_snapshot(run) is not None)
    said = first.interrupt(signal.SIGTERM)  # in the metric pass of the first snapshot
    run_dir = _run_dir(outdir)
    snapshot = latest_snapshot(run_dir)
    assert f"newest snapshot: {snapshot}" in said
    assert not (run_dir / "metric-eqt5k_int.jsonl").exists()  # nothing recorded of the cut pass

    again = command(args)  # resumes from the snapshot and first computes its missing metric: cut as promptly
    again.wait_for(lambda: f"resuming {run_dir} from {snapshot.name}" in again.output())
    again.interrupt(signal.SIGINT)
    assert latest_snapshot(run_dir) == snapshot and not (run_dir / "metric-eqt5k_int.jsonl").exists()


@pytest.mark.slow
def test_compare_stops_in_a_models_training_without_moving_on_and_the_same_command_continues_it(tmp_path, command):
    outdir = tmp_path / "cmp"
    args = [
        *COMPARE,
        "--models",
        "poly-inr,inr-gan",
        "--kimg",
        "0.256",
        "--metrics",
        "eqt0.01k_int",
        "--big-render",
        "16",
        "--outdir",
        str(outdir),
    ]
    first = command(args)
    first.wait_for(_ticked(outdir / "runs" / "poly-inr"))
    said = first.interrupt(signal.SIGTERM)
    snapshot = latest_snapshot(_run_dir(outdir / "runs" / "poly-inr"))
    assert f"newest snapshot: {snapshot}" in said and said.endswith("run the same command to continue")
    for marker in ("trained.json", "refused.json"):  # the interrupted model is neither finished nor refused
        assert not (outdir / "runs" / "poly-inr" / marker).exists()
    assert not (outdir / "runs" / "inr-gan").exists()  # and the comparison did not move on

    output = command(args).finish()
    assert f"poly-inr: resuming {snapshot.parents[1]} from {snapshot.name}" in output
    assert "inr-gan: training" in output and (outdir / "report.md").is_file()


@pytest.mark.slow
def test_compare_stops_in_its_metric_pass_and_in_its_big_render_and_trains_nothing_again(tmp_path, command):
    outdir = tmp_path / "cmp"
    base = [*COMPARE, "--models", "poly-inr", "--kimg", "0.032", "--outdir", str(outdir)]
    settings = cmp.CompareSettings(
        data="builtin:digits",
        models=("poly-inr",),
        kimg=0.032,
        resolution=16,
        batch=8,
        snap_kimg=0.016,
        metrics=("eqt0.01k_int",),
    )
    for _ in cmp.run_comparison(settings, outdir, evaluate=False):  # trained here, in this process
        pass
    run_dir = cmp.finished_run(outdir, cmp.check_settings(settings), "poly-inr")
    assert run_dir is not None
    snapshots = sorted(p.name for p in (run_dir / "checkpoints").iterdir())

    measuring = command([*base, "--metrics", "eqt5k_int"])  # a metric pass of minutes
    measuring.wait_for(lambda: "poly-inr: measuring" in measuring.output())
    measuring.interrupt(signal.SIGTERM)
    assert "poly-inr: already trained" in measuring.output()
    assert not (outdir / "runs" / "poly-inr" / "evaluation.json").exists()

    rendering = command([*base, "--metrics", "eqt0.01k_int"])  # quick metrics, then a 4096² render of minutes
    rendering.wait_for(lambda: bool(_children(rendering.proc.pid)))
    child = _children(rendering.proc.pid)[0]
    rendering.interrupt(signal.SIGINT)
    assert not Path(f"/proc/{child}").exists()  # the render process went with it
    assert not (outdir / "runs" / "poly-inr" / "evaluation.json").exists()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == snapshots  # nothing trained again


@pytest.mark.slow
def test_compare_parallel_passes_the_signal_on_to_every_training_process(tmp_path, command):
    outdir = tmp_path / "cmp"
    args = [
        *COMPARE,
        "--models",
        "poly-inr,inr-gan",
        "--kimg",
        "100",
        "--metrics",
        "eqt0.01k_int",
        "--parallel",
        "--outdir",
        str(outdir),
    ]
    parent = command(args)
    parent.wait_for(lambda: all(_ticked(outdir / "runs" / m)() for m in ("poly-inr", "inr-gan")))
    children = _children(parent.proc.pid)
    assert len(children) == 2
    parent.interrupt(signal.SIGINT)
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)
    for model in ("poly-inr", "inr-gan"):  # each saved its last step, for the same command to continue
        log = (outdir / "logs" / f"{model}.log").read_text(encoding="utf-8")
        assert "interrupted: stopped by SIGINT; newest snapshot" in log and "Traceback" not in log
        assert latest_snapshot(_run_dir(outdir / "runs" / model)) is not None


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    from polyinr.checkpoint import save_generator
    from polyinr.models.registry import create

    path = tmp_path / "ckpt"
    save_generator(create("poly-inr", "cpu", img_resolution=16, channels=16), path)
    return path


def test_a_signal_stops_a_big_render_and_leaves_no_partial_file(tmp_path, command, checkpoint):
    out = tmp_path / "render"
    out.mkdir()
    render = command(
        [
            "render",
            "--network",
            str(checkpoint),
            "--seed",
            "0",
            "--size",
            "8192x8192",
            "--tile",
            "256",
            "--device",
            "cpu",
            "--out",
            str(out / "big.png"),
        ]
    )
    render.wait_for(lambda: "tile" in render.output())
    render.interrupt(signal.SIGTERM)
    assert list(out.iterdir()) == []


def test_a_signal_stops_the_viewer(command, checkpoint):
    serve = command(["serve", "--network", str(checkpoint), "--port", "0", "--device", "cpu"])
    serve.wait_for(lambda: "open http" in serve.output())
    serve.interrupt(signal.SIGINT)
