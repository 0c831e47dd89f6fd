"""Run one host process and collect what it streams: samples, errors, its end.

One OS process per (case, mode, backend): a crash or a hang costs one case.
The host writes JSON lines to a pipe of its own (the case may print to stdout
freely); this module reads them as they come and enforces the timeout.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

OUTPUT_TAIL_CHARS = 4000

# Hosts run in sessions of their own (so a timeout kills what they started);
# Ctrl-C at the terminal therefore does not reach them: kill_all_hosts does.
_active: set[subprocess.Popen] = set()
_active_lock = threading.Lock()


def kill_all_hosts() -> None:
    with _active_lock:
        procs = list(_active)
    for proc in procs:
        _kill_group(proc)


@dataclass
class HostRun:
    """What one host process left: its samples and how it ended."""

    samples: list[dict] = field(default_factory=list)
    error: dict | None = None          # the host's "error" event (the case raised)
    hook_error: dict | None = None     # the host's "hook-error" event (a --main-hook raised)
    returncode: int | None = None
    signal_name: str | None = None     # set when the host died of a signal
    timed_out: bool = False
    completed: bool = False            # the host reached its "done" event
    output_tail: str = ""              # last of the host's stdout+stderr
    wall_s: float = 0.0
    artifacts: Any = None              # what the backend read from the run's work dir
    fallback_reason: str | None = None  # why the pure-Python host ran instead of the C one
    companions: dict[int, "HostRun"] = field(default_factory=dict)  # same case, other cycle counts
    #: parallel mode: thread index -> the last cycle that thread completed
    thread_cycles: dict[int, int] = field(default_factory=dict)
    #: parallel mode: cycle -> host clock (ms) when its slowest thread ended it
    round_end_ms: dict[int, float] = field(default_factory=dict)
    #: counting host: cycle -> [[caller pc, live native blocks, bytes], ...]
    native_sites: dict[int, list] = field(default_factory=dict)
    #: counting host: the loaded objects at the end ({"path", "base", "segments"})
    objects: list[dict] = field(default_factory=list)

    @property
    def last_cycle(self) -> int:
        return self.samples[-1]["cycle"] if self.samples else 0

    def threads_note(self, threads: int) -> str:
        """'thread 0: last cycle 3; thread 1: last cycle 2': where each of the
        `threads` parallel threads got to, which tells a thread stuck in its
        own cycle apart from the ones parked at the round's barrier."""
        return "; ".join(f"thread {t}: last cycle {self.thread_cycles.get(t, 0)}"
                         for t in range(threads))

    def cycles_per_s(self, after_cycle: int, threads: int) -> float | None:
        """Interpreter cycles per second over the rounds after `after_cycle`
        (the warm-up) up to the last round every thread completed.

        Rounds are fenced by the host's barriers, so a round lasts as long as
        its slowest thread: round k ends at the latest progress time for k.
        None when fewer than one complete round follows `after_cycle`.
        """
        if len(self.thread_cycles) < threads:
            return None
        start = max(after_cycle, 1)
        last = min(self.thread_cycles.values())
        if last <= start or start not in self.round_end_ms or last not in self.round_end_ms:
            return None
        elapsed_s = (self.round_end_ms[last] - self.round_end_ms[start]) / 1000.0
        return threads * (last - start) / elapsed_s if elapsed_s > 0 else None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_host(
    argv: list[str],
    out_fd_placeholder: str,
    env: dict[str, str],
    timeout_s: float,
) -> HostRun:
    """Run `argv` (where `out_fd_placeholder` is replaced by the pipe's fd number).

    The process gets its own session so a timeout kills what it started too.
    """
    read_fd, write_fd = os.pipe()
    argv = [str(write_fd) if a == out_fd_placeholder else a for a in argv]
    run = HostRun()
    started = time.monotonic()
    with tempfile.TemporaryFile(mode="w+b") as output:
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                pass_fds=(write_fd,), env=env, start_new_session=True,
            )
        finally:
            os.close(write_fd)
        with _active_lock:
            _active.add(proc)
        try:
            _read_events(proc, read_fd, run, started + timeout_s)
        finally:
            os.close(read_fd)
            if proc.poll() is None:
                _kill_group(proc)
            proc.wait()
            with _active_lock:
                _active.discard(proc)
        run.returncode = proc.returncode
        if proc.returncode is not None and proc.returncode < 0 and not run.timed_out:
            try:
                run.signal_name = signal.Signals(-proc.returncode).name
            except ValueError:
                run.signal_name = f"signal {-proc.returncode}"
        output.seek(0, os.SEEK_END)
        size = output.tell()
        output.seek(max(0, size - OUTPUT_TAIL_CHARS))
        run.output_tail = output.read().decode("utf-8", "replace")
    run.wall_s = time.monotonic() - started
    return run


def _read_events(proc: subprocess.Popen, read_fd: int, run: HostRun, deadline: float) -> None:
    selector = selectors.DefaultSelector()
    selector.register(read_fd, selectors.EVENT_READ)
    pending = b""
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                run.timed_out = True
                _kill_group(proc)
                return
            if not selector.select(timeout=min(remaining, 1.0)):
                continue
            chunk = os.read(read_fd, 65536)
            if not chunk:  # every writer closed: the host ended
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                _take_event(line, run)
    finally:
        selector.close()
    remaining = deadline - time.monotonic()
    try:
        proc.wait(timeout=max(remaining, 0.1))
    except subprocess.TimeoutExpired:
        run.timed_out = True
        _kill_group(proc)


def _take_event(line: bytes, run: HostRun) -> None:
    if not line.strip():
        return
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return  # a line cut by a crash mid-write
    kind = event.pop("event", None)
    if kind == "sample":
        run.samples.append(event)
    elif kind == "error":
        run.error = event
    elif kind == "hook-error":
        run.hook_error = event
    elif kind == "done":
        run.completed = True
    elif kind == "native-sites" and isinstance(event.get("cycle"), int):
        run.native_sites[event["cycle"]] = event.get("sites") or []
    elif kind == "objects":
        run.objects = event.get("objects") or []
    elif kind == "progress":  # parallel mode: one per thread per cycle
        thread, cycle, t_ms = event.get("thread"), event.get("cycle"), event.get("t_ms")
        if isinstance(thread, int) and isinstance(cycle, int) and isinstance(t_ms, (int, float)):
            run.thread_cycles[thread] = max(cycle, run.thread_cycles.get(thread, 0))
            run.round_end_ms[cycle] = max(t_ms, run.round_end_ms.get(cycle, 0.0))
