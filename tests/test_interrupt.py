"""SIGINT and SIGTERM as one clean stop: raised at once, or recorded until a safe point; handlers restored."""

from __future__ import annotations

import os
import signal

import pytest

from polyinr.interrupt import DeferredSignals, Interrupted, signals_raise


def _send(signum: int) -> None:
    os.kill(os.getpid(), signum)  # Python runs the handler before the next line of this thread


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_raises_interrupted_and_the_handlers_come_back(signum, code):
    before = signal.getsignal(signum)
    with pytest.raises(Interrupted) as caught, signals_raise():
        _send(signum)
    assert caught.value.signum == signum and caught.value.exit_code == code
    assert str(caught.value) == f"stopped by {signal.Signals(signum).name}"
    assert signal.getsignal(signum) is before


def test_deferred_signals_wait_for_the_safe_point_and_a_second_one_stops_at_once():
    before = signal.getsignal(signal.SIGTERM)
    signals = DeferredSignals()
    signals.install()
    try:
        _send(signal.SIGTERM)
        assert signals.received == signal.SIGTERM  # recorded, not raised
        with pytest.raises(Interrupted) as caught:
            _send(signal.SIGINT)
        assert caught.value.signum == signal.SIGINT
        with pytest.raises(Interrupted), signals.raising():  # long work after a recorded signal does not start
            raise AssertionError("started")
    finally:
        signals.restore()
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_signal_during_long_work_raises_at_once_and_deferral_resumes_after_it():
    signals = DeferredSignals()
    signals.install()
    try:
        with pytest.raises(Interrupted), signals.raising():
            _send(signal.SIGTERM)
        assert signals.received is None
        _send(signal.SIGINT)
        assert signals.received == signal.SIGINT
    finally:
        signals.restore()


def test_notes_say_what_was_kept():
    stop = Interrupted(signal.SIGTERM, "newest snapshot: run/checkpoints/000064").noting("run it again")
    assert str(stop) == "stopped by SIGTERM; newest snapshot: run/checkpoints/000064; run it again"
    assert isinstance(stop, KeyboardInterrupt)  # code that cleans up on Ctrl+C cleans up on SIGTERM too


def test_a_signal_that_surfaces_as_another_error_still_stops_the_command_as_an_interruption():
    """A C extension (safetensors, NumPy) that calls back into Python turns the handler's exception into an error
    of its own; the command line still reports the signal, not a corrupt file."""
    import click
    from click.testing import CliRunner

    from polyinr.cli.group import PolyinrGroup
    from polyinr.errors import PolyinrError

    @click.group(cls=PolyinrGroup)
    def cli() -> None:
        pass

    @cli.command()
    def load() -> None:
        try:
            _send(signal.SIGTERM)
        except Interrupted:
            raise PolyinrError("model.safetensors is truncated or corrupt") from None  # as the extension reports

    result = CliRunner().invoke(cli, ["load"])
    assert result.exit_code == 143 and result.output == "interrupted: stopped by SIGTERM\n"
    assert CliRunner().invoke(cli, ["load", "--help"]).exit_code == 0  # the next command starts with no signal seen
