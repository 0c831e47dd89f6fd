"""SIGINT and SIGTERM for the command line: stop every host, keep what finished.

CI cancels a job with SIGTERM, a user with Ctrl-C; both must end a `run` or
`sweep` the same way: the hosts (each in a session of its own, so the
terminal's signal never reaches them) are killed with their process groups,
no new host starts, results already written stay whole, the summary is
printed, and the exit status says which signal it was (128 + its number:
130 for SIGINT, 143 for SIGTERM).

The handler raises `Interrupted` (a KeyboardInterrupt, so every existing
`except KeyboardInterrupt` and `finally` runs) in the main thread, except
inside `deferred()`, where it waits until a result line is written whole.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from .runner import kill_all_hosts, reset_hosts


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_state = threading.local()
_received: list[int] = []


def received_signal() -> int | None:
    """The first SIGINT/SIGTERM received, or None."""
    return _received[0] if _received else None


def received_signal_name() -> str:
    return signal.Signals(received_signal() or signal.SIGINT).name


def exit_status(default_signum: int = signal.SIGINT) -> int:
    """128 + the signal that interrupted us (130 SIGINT, 143 SIGTERM)."""
    return 128 + (received_signal() or default_signum)


def _handler(signum: int, frame: object) -> None:
    kill_all_hosts(stop=True)
    first = not _received
    _received.append(signum)
    if not first:
        return  # already unwinding: a second signal must not cut the cleanup short
    if getattr(_state, "depth", 0):
        _state.pending = signum
        return
    raise Interrupted(signum)


def install() -> None:
    """Handle SIGINT and SIGTERM as described above (main thread only)."""
    _received.clear()
    reset_hosts()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _handler)


@contextmanager
def deferred() -> Iterator[None]:
    """A signal arriving inside waits for the block's end (a line written whole)."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
        pending = getattr(_state, "pending", None)
        if pending is not None and not _state.depth:
            _state.pending = None
            raise Interrupted(pending)
