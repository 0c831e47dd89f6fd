"""Run one host process and collect what it streams: samples, errors, its end.

One OS process per (case, mode, backend): a crash or a hang costs one case.
The host writes JSON lines to a pipe of its own (the case may print to stdout
freely); this module reads them as they come and enforces the timeout.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import HarnessError
from .strays import kill_group, kill_session, kill_strays

OUTPUT_TAIL_CHARS = 4000
#: in a host's argv, replaced by the fd of the pipe the host writes its lines to
OUT_FD = "{out_fd}"
#: in a host's argv, replaced by the fd of a pipe holding the run's token
TOKEN_FD = "{token_fd}"
#: in a host's argv, replaced by the fd of the pipe the harness answers go on / stop on
STOP_FD = "{stop_fd}"


@dataclass(frozen=True)
class Stopping:
    """Adaptive cycles, the harness's side of the host's stop pipe.

    From the sample of cycle `ask_from` on, the host waits after each
    sample for one answer; `should_stop(samples so far)` gives it (True:
    stop after this cycle).  The decision is the verdict stage's; the
    runner only carries it, and always answers (a decider that raises
    means go on), or the host would wait until the timeout."""

    ask_from: int
    should_stop: Callable[[list[dict]], bool]

# Hosts run in sessions of their own (so a timeout kills what they started);
# Ctrl-C at the terminal therefore does not reach them: kill_all_hosts does.
_active: set[subprocess.Popen] = set()
# re-entrant: the SIGINT/SIGTERM handler runs in the main thread, maybe
# while that thread holds it
_active_lock = threading.RLock()
_stopping = threading.Event()


def reset_hosts() -> None:
    """Hosts may start again (a new command in the same process)."""
    _stopping.clear()


def kill_all_hosts(stop: bool = False) -> None:
    """Kill every running host; with `stop`, refuse to start new ones too."""
    with _active_lock:
        if stop:
            _stopping.set()
        procs = list(_active)
    for proc in procs:
        kill_group(proc)


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
    #: cycle -> extension modules the host found loaded at that cycle's end
    extensions: dict[int, set[str]] = field(default_factory=dict)
    #: lines on the sample pipe without the run's token: written by the case
    forged_lines: int = 0
    #: the token every host line must carry (None: the argv asked for none)
    token: str | None = None
    #: what the C host's crash/hang handlers wrote (--crash-file), unsymbolised
    crash_report: str | None = None
    #: processes the case left running ("pid 12 (sleep 60)"), killed by the harness
    stray_processes: list[str] = field(default_factory=list)
    stray_pids: list[int] = field(default_factory=list)
    stray_cycle: int | None = None     # the cycle whose end found them (None: the host's end)
    #: counting host: cycle -> [[caller pc, live native blocks, bytes], ...]
    native_sites: dict[int, list] = field(default_factory=dict)
    #: counting host with --pymem-sites: the same for PyMem blocks, by their
    #: first caller outside CPython
    pymem_sites: dict[int, list] = field(default_factory=dict)
    #: counting host: the loaded objects at the end ({"path", "base", "segments"})
    objects: list[dict] = field(default_factory=list)
    #: adaptive cycles: the cycle after which the harness told the host to stop
    stop_asked_at: int | None = None
    #: the cycle the host's "stopped" line names (the host stopped there)
    stopped_at: int | None = None
    #: the adaptive decider raised (the host was told to go on): shown in the result
    stop_error: str | None = None
    #: reads of the sample pipe that brought lines: the reader's wake-ups for
    #: them (lines gather between reads, see GATHER_S)
    line_reads: int = 0

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


#: how long a timed-out host may take to write its stacks (SIGUSR2) before the kill
STACK_DUMP_GRACE_S = 5.0


def _dump_stacks_then_kill(proc: subprocess.Popen) -> None:
    """A timeout: SIGUSR2 makes the C host write every thread's stacks to its
    crash file and kill itself (other hosts just die of it); then the group."""
    try:
        os.kill(proc.pid, signal.SIGUSR2)
        proc.wait(timeout=STACK_DUMP_GRACE_S)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    kill_group(proc)


class HostsStopped(HarnessError):
    """No host starts once the harness is stopping (SIGINT/SIGTERM)."""


def run_host(
    argv: list[str],
    out_fd_placeholder: str,
    env: dict[str, str],
    timeout_s: float,
    on_sample: Callable[[dict], None] | None = None,
    stopping: Stopping | None = None,
) -> HostRun:
    """Run `argv` (where `out_fd_placeholder` is replaced by the pipe's fd number).

    The process gets its own session so a timeout kills what it started too.
    Its stdout and stderr come through a pipe of which only the last
    OUTPUT_TAIL_CHARS bytes are kept: a case printing 100 MB a cycle costs
    no disk.  The host's end, not the pipes' end, ends the run: a process
    the case left behind may hold the pipes open, and is killed.

    When argv holds TOKEN_FD, it is replaced by the fd of a pipe holding a
    fresh random token, which the host reads and closes before Python starts
    and puts in every line it writes: the case can write to the sample pipe
    (its fd is in argv) but cannot know the token, so its lines are dropped
    and counted (`forged_lines`).

    `on_sample`, when given, sees each sample as it arrives (a live cycle
    line); it must not raise.

    When argv holds STOP_FD, it is replaced by the read end of a pipe on
    which `stopping` answers each sample from its `ask_from` cycle on.
    """
    read_fd, write_fd = os.pipe()
    output_read, output_write = os.pipe()
    argv = [str(write_fd) if a == out_fd_placeholder else a for a in argv]
    run = HostRun()
    fds = [write_fd]
    if TOKEN_FD in argv:
        run.token = secrets.token_hex(16)
        token_read, token_write = os.pipe()
        os.write(token_write, run.token.encode() + b"\n")  # 33 bytes: never blocks
        os.close(token_write)
        fds.append(token_read)
        argv = [str(token_read) if a == TOKEN_FD else a for a in argv]
    stop_write = None
    if STOP_FD in argv:
        if stopping is None:
            raise ValueError("a host argv with STOP_FD needs a Stopping")
        stop_read, stop_write = os.pipe()
        fds.append(stop_read)
        argv = [str(stop_read) if a == STOP_FD else a for a in argv]
        on_sample = _answering(run, stopping, stop_write, on_sample)
    started = time.monotonic()
    try:
        with _active_lock:
            if _stopping.is_set():
                raise HostsStopped("interrupted: no new host is started")
            try:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=output_write, stderr=output_write,
                    pass_fds=tuple(fds), env=env, start_new_session=True,
                )
            except OSError as exc:
                raise HarnessError(f"cannot start the host {argv[0]}: {exc.strerror or exc}") from None
            _active.add(proc)
    except BaseException:
        for fd in (read_fd, output_read) + ((stop_write,) if stop_write is not None else ()):
            os.close(fd)
        raise
    finally:
        for fd in fds:
            os.close(fd)
        os.close(output_write)
    tail = bytearray()
    try:
        _read_events(proc, read_fd, output_read, run, started + timeout_s, tail, on_sample,
                     prompt_from=stopping.ask_from if stop_write is not None and stopping else None)
    finally:
        exited_alone = (proc.poll() is not None and not run.stray_processes
                        and not _stopping.is_set())
        if proc.poll() is None:
            kill_group(proc)
        proc.wait()
        left = kill_session(proc.pid)
        if left and exited_alone and not run.timed_out:
            run.stray_processes.extend(left)
        _drain(output_read, tail)
        os.close(read_fd)
        os.close(output_read)
        if stop_write is not None:
            os.close(stop_write)
        with _active_lock:
            _active.discard(proc)
    if _stopping.is_set() and not run.completed:
        raise HostsStopped("interrupted: the host was killed")
    run.returncode = proc.returncode
    if not run.timed_out:
        run.signal_name = exit_signal_name(proc.returncode)
    run.output_tail = bytes(tail[-OUTPUT_TAIL_CHARS:]).decode("utf-8", "replace")
    run.wall_s = time.monotonic() - started
    return run


def _answering(run: HostRun, stopping: Stopping, stop_write: int,
               on_sample: Callable[[dict], None] | None) -> Callable[[dict], None]:
    """on_sample that also answers the host: 's' once the decider says stop,
    'c' otherwise, for every sample the host waits on (cycle >= ask_from)."""
    def seen(sample: dict) -> None:
        if on_sample is not None:
            on_sample(sample)
        cycle = sample.get("cycle")
        if (not isinstance(cycle, int) or cycle < stopping.ask_from
                or run.stop_asked_at is not None):
            return
        try:
            stop = bool(stopping.should_stop(list(run.samples)))
        except Exception as exc:   # a decider's bug must not hang the host: go on, say so
            run.stop_error = f"{type(exc).__name__}: {exc}"
            stop = False
        try:
            os.write(stop_write, b"s" if stop else b"c")
        except OSError:     # the host is gone (EPIPE): its end says the rest
            return
        if stop:
            run.stop_asked_at = cycle
    return seen


def _keep_tail(tail: bytearray, chunk: bytes) -> None:
    tail += chunk
    if len(tail) > 2 * OUTPUT_TAIL_CHARS:
        del tail[:-OUTPUT_TAIL_CHARS]


def _drain(fd: int, tail: bytearray, limit_bytes: int = 1 << 24) -> None:
    """What is in the pipe now, without waiting for writers that are gone or killed."""
    os.set_blocking(fd, False)
    taken = 0
    while taken < limit_bytes:
        try:
            chunk = os.read(fd, 65536)
        except (BlockingIOError, OSError):
            return
        if not chunk:
            return
        taken += len(chunk)
        _keep_tail(tail, chunk)


#: how long the reader lets a host's lines gather before it wakes for them
#: again, when nothing waits on it.  Measured (3.12.1, finalize, 20 stdlib
#: imports, 25 cycles, one harness thread): each wake-up for a line cost
#: 70-120 us of the harness's CPU, most of it with the host on the other
#: core (a 5 us parse when timed alone); woken per line, the harness spent
#: ~15 ms per case, with lines gathered for 30 ms ~8 ms.
GATHER_S = 0.03


def _read_events(proc: subprocess.Popen, read_fd: int, output_fd: int, run: HostRun,
                 deadline: float, tail: bytearray,
                 on_sample: Callable[[dict], None] | None = None,
                 prompt_from: int | None = None) -> None:
    """Read the host's lines until it ends, its timeout, or a stray stops it.

    After a wake-up that brought only lines, the reader waits up to
    GATHER_S for the host's end or the case's output alone, so the next
    lines come in one read: nothing waits on those lines.  It never waits so
    when the host will wait on it: `prompt_from` is the first cycle whose
    sample the host waits to have answered (adaptive cycles), and the wait
    ends before that sample is due (see _gather_s); a "children" report is
    acted on in the wake-up that read it (the host has stopped itself
    meanwhile); output (the case's prints) is read at once, or a chatty
    case would block on a full pipe.
    """
    selector = selectors.DefaultSelector()
    selector.register(read_fd, selectors.EVENT_READ, "events")
    selector.register(output_fd, selectors.EVENT_READ, "output")
    try:
        exit_fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):   # no pidfd (old kernel): poll the process instead
        exit_fd = None
        ended = None
    else:
        selector.register(exit_fd, selectors.EVENT_READ, "exit")
        # the gathering wait: the host's end, or the case's output, wakes it
        ended = selectors.DefaultSelector()
        ended.register(exit_fd, selectors.EVENT_READ, "exit")
        ended.register(output_fd, selectors.EVENT_READ, "output")
    pending = b""
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                run.timed_out = True
                _dump_stacks_then_kill(proc)
                return
            ready = selector.select(timeout=min(remaining, 1.0 if exit_fd is not None else 0.05))
            gather = ended is not None and bool(ready)
            for key, _ in ready:
                if key.data == "exit":
                    gather = False
                    continue
                chunk = os.read(key.fd, 65536)
                if not chunk:       # every writer of this pipe closed it
                    selector.unregister(key.fd)
                    if key.data == "output" and ended is not None:
                        ended.unregister(key.fd)
                    gather = False
                elif key.data == "output":
                    _keep_tail(tail, chunk)
                    gather = False
                else:
                    run.line_reads += 1
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        _take_event(line, run, on_sample)
            if run.stray_pids and _stop_for_strays(proc, run):
                return
            if gather and not run.stray_pids:
                wait = min(_gather_s(run.samples, prompt_from), deadline - time.monotonic())
                if wait > 0:
                    ended.select(timeout=wait)
            if proc.poll() is not None:
                # the host ended: what it wrote is in the pipe already
                os.set_blocking(read_fd, False)
                try:
                    while chunk := os.read(read_fd, 65536):
                        pending += chunk
                except (BlockingIOError, OSError):
                    pass
                for line in pending.split(b"\n"):
                    _take_event(line, run, on_sample)
                return
    finally:
        selector.close()
        if ended is not None:
            ended.close()
        if exit_fd is not None:
            os.close(exit_fd)


def _gather_s(samples: list[dict], prompt_from: int | None) -> float:
    """How long lines may gather now: GATHER_S, or less when the sample the
    host will wait on (cycle `prompt_from`) is due sooner at the pace of the
    last cycle; 0 from the sample before it on."""
    if prompt_from is None or not samples:
        return GATHER_S
    last = samples[-1]
    cycle = last.get("cycle")
    if not isinstance(cycle, int) or cycle + 1 >= prompt_from:
        return 0.0
    t1 = last.get("t_ms")
    t0 = samples[-2].get("t_ms") if len(samples) >= 2 else None
    if not (isinstance(t1, (int, float)) and isinstance(t0, (int, float)) and t1 > t0):
        return 0.0      # no pace known yet: no waiting
    # the samples before the awaited one, at half the last cycle's time each
    return min(GATHER_S, (prompt_from - cycle - 1) * (t1 - t0) / 1e3 / 2)


def _stop_for_strays(proc: subprocess.Popen, run: HostRun) -> bool:
    """Kill the host and the children it reported (strays.kill_strays); False
    when none of the reported pids was the host's, and the host runs on."""
    killed = kill_strays(proc, run.stray_pids)
    run.stray_pids = []
    if not killed:
        run.stray_cycle = None
        return False
    run.stray_processes.extend(killed)
    return True


def exit_signal_name(returncode: int | None) -> str | None:
    """'SIGSEGV' for a process that died of signal 11 (returncode -11), else None."""
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _take_event(line: bytes, run: HostRun, on_sample: Callable[[dict], None] | None = None) -> None:
    if not line.strip():
        return
    try:
        event = json.loads(line)
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
        return  # a line cut by a crash mid-write
    if not isinstance(event, dict):
        run.forged_lines += 1
        return
    token = event.pop("token", None)
    if run.token is not None and token != run.token:
        run.forged_lines += 1
        return
    kind = event.pop("event", None)
    if kind == "children":  # processes alive at a cycle's end
        pids = [p for p in event.get("pids") or () if isinstance(p, int) and p > 1]
        if pids:
            run.stray_pids.extend(pids)
            run.stray_cycle = run.stray_cycle or event.get("cycle")
    elif kind == "extensions":
        modules, cycle = event.get("modules"), event.get("cycle")
        if isinstance(cycle, int) and isinstance(modules, list):
            run.extensions.setdefault(cycle, set()).update(m for m in modules if isinstance(m, str))
    elif kind == "sample":
        run.samples.append(event)
        if on_sample is not None:
            on_sample(event)
    elif kind == "error":
        run.error = event
    elif kind == "hook-error":
        run.hook_error = event
    elif kind == "done":
        run.completed = True
    elif kind == "stopped" and isinstance(event.get("cycle"), int):
        run.stopped_at = event["cycle"]
    elif kind == "native-sites" and isinstance(event.get("cycle"), int):
        run.native_sites[event["cycle"]] = event.get("sites") or []
    elif kind == "pymem-sites" and isinstance(event.get("cycle"), int):
        run.pymem_sites[event["cycle"]] = event.get("sites") or []
    elif kind == "objects":
        run.objects = event.get("objects") or []
    elif kind == "progress":  # parallel mode: one per thread per cycle
        thread, cycle, t_ms = event.get("thread"), event.get("cycle"), event.get("t_ms")
        if isinstance(thread, int) and isinstance(cycle, int) and isinstance(t_ms, (int, float)):
            run.thread_cycles[thread] = max(cycle, run.thread_cycles.get(thread, 0))
            run.round_end_ms[cycle] = max(t_ms, run.round_end_ms.get(cycle, 0.0))
