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

A signal that lands while a `__del__` or a weakref callback runs raises
there, and Python does not propagate that: it hands the exception to
`sys.unraisablehook` and goes on.  The hosts are already killed by then, so
going on would end the command with an error ("no new host is started")
instead of the interrupt.  So `install()`'s hook sends the signal again, to
the main thread, once the callback has returned, and the handler raises it;
and a `HostsStopped` (what a job whose host was killed raises) is taken for
the interrupt it is wherever one is caught.  Whichever comes first is the
interrupt: the catcher calls `acknowledge()`, and a redelivery still on its
way then does nothing.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from .runner import kill_all_hosts, reset_hosts


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_state = threading.local()
_received: list[int] = []
#: signals whose Interrupted a `__del__`/weakref callback swallowed: raised again
_redeliver: list[int] = []


def received_signal() -> int | None:
    """The first SIGINT/SIGTERM received, or None."""
    return _received[0] if _received else None


def received_signal_name() -> str:
    return signal.Signals(received_signal() or signal.SIGINT).name


def exit_status(default_signum: int = signal.SIGINT) -> int:
    """128 + the signal that interrupted us (130 SIGINT, 143 SIGTERM)."""
    return 128 + (received_signal() or default_signum)


def acknowledge() -> None:
    """The interrupt is being handled (caught as Interrupted or HostsStopped):
    a swallowed signal still on its way back must not raise a second time."""
    _redeliver.clear()


def _handler(signum: int, frame: object) -> None:
    kill_all_hosts(stop=True)
    if _redeliver:
        if _in_hook:
            # the redelivery came before the hook had returned: raising here
            # would be swallowed again, so it is sent once more, a little later
            _send_later(_redeliver[-1])
            return
        signum = _redeliver.pop()   # the swallowed one, now outside the callback
    else:
        first = not _received
        _received.append(signum)
        if not first:
            return  # already unwinding: a second signal must not cut the cleanup short
    if getattr(_state, "depth", 0):
        _state.pending = signum
        return
    raise Interrupted(signum)


def install() -> None:
    """Handle SIGINT and SIGTERM as described above (main thread only).

    Also wraps `sys.unraisablehook` (whatever it is now) so that an
    `Interrupted` swallowed by a callback is raised again; every other
    unraisable exception goes to the wrapped hook.
    """
    _received.clear()
    _redeliver.clear()
    reset_hosts()
    sys.unraisablehook = _redelivering(sys.unraisablehook)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _handler)


#: a swallowed signal is sent again after this long: the callback that
#: swallowed it has returned by then (if not, the handler sends it again)
REDELIVER_AFTER_S = 0.01
_in_hook = 0


def _redelivering(earlier_hook: Callable[[object], None]) -> Callable[[object], None]:
    def hook(unraisable: object) -> None:
        global _in_hook
        exc = getattr(unraisable, "exc_value", None)
        if not isinstance(exc, Interrupted):
            earlier_hook(unraisable)
            return
        _in_hook += 1
        try:
            _redeliver.append(exc.signum)
            _send_later(exc.signum)
        finally:
            _in_hook -= 1
    return hook


def _send_later(signum: int) -> None:
    """Send `signum` to the main thread from another one, after REDELIVER_AFTER_S.

    Sent to the main thread itself (not the process) so that a main thread
    blocked on a lock (a sweep waiting for its jobs) wakes to run the handler;
    raising it here instead would run the handler before the callback returns.
    """
    main = threading.main_thread().ident

    def send() -> None:
        time.sleep(REDELIVER_AFTER_S)
        signal.pthread_kill(main, signum)

    threading.Thread(target=send, name="leak-harness-redeliver", daemon=True).start()


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
