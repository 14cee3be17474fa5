"""Ctrl+C and SIGTERM: one prompt, clean stop for every command.

Inside :func:`signals_raise` (the command line wraps every command in it) SIGINT and SIGTERM both raise
:class:`Interrupted` in the main thread wherever it is — a training step, a metric pass, a render — so a command
stops within moments and cleans up as the exception unwinds (temporary files, worker and child processes).
Work whose end is the next consistent state, such as a training step before a snapshot, runs in
:class:`DeferredSignals`: a signal there is only recorded, the caller stops at its next safe point, and a second
signal stops it at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A SIGINT or SIGTERM stopped the work; ``notes`` say what was kept. Exit status: 128 + the signal."""

    def __init__(self, signum: int, *notes: str) -> None:
        super().__init__(signum, *notes)
        self.signum, self.notes = signum, notes

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def noting(self, note: str) -> Interrupted:
        """The same interruption with ``note`` added."""
        return Interrupted(self.signum, *self.notes, note)

    def __str__(self) -> str:
        return "; ".join((f"stopped by {signal.Signals(self.signum).name}", *self.notes))


_received: list[int] = []  # every SIGINT / SIGTERM a handler of this module has seen, since forget_signals()


def received_signal() -> int | None:
    """The first SIGINT or SIGTERM seen since :func:`forget_signals`, if any. A signal that lands inside a C
    extension's callback (safetensors, NumPy) may come out as that extension's own error: a command that ends in
    an error after a signal was stopped by the signal."""
    return _received[0] if _received else None


def forget_signals() -> None:
    """Start a new command with no signal seen."""
    _received.clear()


def _raise(signum: int, _frame: FrameType | None) -> None:
    _received.append(signum)
    raise Interrupted(signum)


def _install(handler: Callable[[int, FrameType | None], None]) -> dict[int, Any]:
    """SIGINT and SIGTERM go to ``handler``; returns the previous handlers. Off the main thread (where Python
    delivers no signals) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, handler) for sig in SIGNALS}


def _restore(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


@contextmanager
def signals_raise() -> Iterator[None]:
    """Inside, SIGINT and SIGTERM raise :class:`Interrupted` at once."""
    previous = _install(_raise)
    try:
        yield
    finally:
        _restore(previous)


class DeferredSignals:
    """From :meth:`install` until :meth:`restore`, the first SIGINT or SIGTERM is recorded in ``received`` (its
    number) instead of raised; a second one raises :class:`Interrupted` at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        self._previous = _install(self._record)

    def restore(self) -> None:
        _restore(self._previous)
        self._previous = {}

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        _received.append(signum)
        if self.received is not None:  # asked twice: stop now
            raise Interrupted(signum)
        self.received = signum

    @contextmanager
    def raising(self) -> Iterator[None]:
        """Inside, a signal raises at once (one already recorded raises on entry): for long work that a stop may
        cut, such as a metric pass after its snapshot is saved."""
        if self.received is not None:
            raise Interrupted(self.received)
        with signals_raise():
            yield
