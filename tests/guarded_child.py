"""Running a hostile read in a forked child with a deadline and a memory cap, so a regression (a hang,
exponential work, memory without end, a C-level stack overflow) fails a test instead of taking the test run, or
the machine, down with it. No timing is asserted beyond the deadline.
"""

from __future__ import annotations

import os
import resource
import select
import signal
import time
from collections.abc import Callable

DEADLINE_S = 60.0  # far above the few seconds any case needs, even on a loaded machine
MEMORY_BYTES = 1 << 30  # the address space a child may add to what it inherits, far above what any case needs


def _virtual_size() -> int:
    """This process's address space in bytes (``VmSize``)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def outcome(read: Callable[[], object], memory_bytes: int = MEMORY_BYTES) -> tuple[str, str]:
    """``(kind, message)`` of ``read()`` run in a forked child that may add at most ``memory_bytes`` of address
    space: the exception's class names (``'|'``-joined along its MRO), ``'ok'``, ``'killed'`` (past
    :data:`DEADLINE_S`) or ``'crashed'`` (a signal, e.g. a segfault)."""
    r, w = os.pipe()
    limit = _virtual_size() + memory_bytes
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running the parent's cleanup
        os.close(r)
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            read()
            report = "ok\t"
        except BaseException as e:
            report = "|".join(c.__name__ for c in type(e).__mro__) + "\t" + str(e)
        os.write(w, report.encode("utf-8", "replace")[:60000])
        os._exit(0)
    os.close(w)
    chunks, deadline = [], time.monotonic() + DEADLINE_S
    while (left := deadline - time.monotonic()) > 0 and select.select([r], [], [], left)[0]:
        if not (chunk := os.read(r, 65536)):
            break
        chunks.append(chunk)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
        return "killed", ""
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) or not chunks:
        return "crashed", f"status {status}"
    kind, _, message = b"".join(chunks).decode().partition("\t")
    return kind, message


def assert_one_line_error(read: Callable[[], object], error: str, *words: str) -> str:
    """Assert that ``read()`` raises an ``error`` (a class name along the exception's MRO) with a short one-line
    message holding each of ``words``; return the message."""
    kind, message = outcome(read)
    assert error in kind.split("|"), f"{kind}: {message}"
    assert "\n" not in message and message.strip() and len(message) < 500, message
    for word in words:
        assert word in message, message
    return message
