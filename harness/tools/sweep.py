"""Run many cases across pythons and modes, in parallel, never losing a result.

Each (case, mode, python) is its own host process (a crash costs one row);
`jobs` of them run at once. Every result is appended to the JSON-lines file
the moment it is known, so an interrupted or crashing sweep keeps what it did.
"""

from __future__ import annotations

import threading
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

from ..host import interrupts
from ..cases.model import CONTROL, Case
from ..engine import Engine
from ..settings import RunSettings
from ..errors import HarnessError
from ..host.modes import mode_problem
from ..host.target import check_xoptions, target_python
from ..result import Result
from ..host.runner import HostsStopped, kill_all_hosts
from .shards import assign_shards
from .sweep_out import ResultsOut


@dataclass(frozen=True)
class SweepJob:
    case: Case
    settings: RunSettings


@dataclass
class SweepOutcome:
    results: list[Result] = field(default_factory=list)
    controls: list[Result] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)   # "(python, mode): why"
    interrupted: bool = False


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'i/n' -> (i, n) with 1 <= i <= n."""
    if not text:
        return None
    try:
        index, count = (int(p) for p in text.split("/"))
    except ValueError:
        raise HarnessError(f"--shard wants i/n such as 1/4, not {text!r}") from None
    if not 1 <= index <= count:
        raise HarnessError(f"--shard {text}: need 1 <= i <= n")
    return index, count


def plan(cases_for: Callable, pythons: list[str | None], modes: list[str],
         base: RunSettings, shard: tuple[int, int] | None = None,
         durations: dict[tuple[str, str], float] | None = None) -> tuple[list[SweepJob], list[str]]:
    """Jobs for every (python, mode, case), and what was skipped and why.

    `cases_for(target)` gives the cases for one target Python (its stdlib
    differs between versions).  With `shard` (i, n) only shard i's jobs are
    kept, split by the measured `durations` (tools/shards.py).
    """
    jobs, skipped = [], []
    for python in pythons:
        target = target_python(python)
        check_xoptions(target.executable, base.xoptions)
        for mode in modes:
            problem = mode_problem(mode, target)
            if problem:
                skipped.append(f"Python {target.label}, {mode}: {problem}")
                continue
            settings = replace(base, python=target.executable, mode=mode)
            for case in cases_for(target):
                if case.modes and mode not in case.modes:
                    continue
                jobs.append(SweepJob(case, settings))
    if shard is not None:
        index, count = shard
        keys = [(job.case.name, job.settings.mode) for job in jobs]
        jobs = [job for job, s in zip(jobs, assign_shards(keys, count, durations)) if s == index - 1]
    return jobs, skipped


def run_sweep(
    jobs: list[SweepJob],
    engine: Engine,
    jobs_at_once: int,
    out: ResultsOut | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> SweepOutcome:
    """Run `jobs`; write each result to `out` as one JSON line as it finishes."""
    outcome = SweepOutcome()
    write_lock = threading.Lock()

    def record(result: Result, is_control: bool) -> None:
        # a signal waits for the line to be written whole
        with write_lock, interrupts.deferred():
            (outcome.controls if is_control else outcome.results).append(result)
            if out is not None:
                line = result.to_json()
                line["role"] = "control" if is_control else "case"
                out.write_line(line)
        if on_result and not is_control:
            on_result(result)

    pending: set[Future] = set()
    recorded: set[Future] = set()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs_at_once))
    try:
        # CPython's own rows first: every case of a (python, mode) waits on them.
        for settings in _unique(job.settings for job in jobs):
            pending.add(pool.submit(_control_job, engine, settings))
        for job in jobs:
            pending.add(pool.submit(_case_job, engine, job))
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            pending |= done   # until recorded: an interrupt must not drop them
            for future in done:
                result, is_control = future.result()
                record(result, is_control)
                recorded.add(future)
                pending.discard(future)
    except (KeyboardInterrupt, HostsStopped):
        # HostsStopped first: the signal landed in a callback (interrupts.py)
        interrupts.acknowledge()
        outcome.interrupted = True
        kill_all_hosts(stop=True)
        for future in pending:
            future.cancel()
        # what finished before the signal is kept; a job whose host the
        # signal killed raises HostsStopped and is not a result
        for future in list(pending):
            if future.done() and not future.cancelled() and future.exception() is None \
                    and future not in recorded:
                with interrupts.deferred():
                    record(*future.result())
    finally:
        pool.shutdown(wait=not outcome.interrupted, cancel_futures=True)
        if out is not None:
            out.flush()
    return outcome


def _unique(settings: Iterable[RunSettings]) -> list[RunSettings]:
    seen: dict[RunSettings, None] = {}
    for s in settings:
        seen.setdefault(s, None)
    return list(seen)


def _case_job(engine: Engine, job: SweepJob) -> tuple[Result, bool]:
    settings = job.settings
    if job.case.cycles:
        settings = replace(settings, cycles=job.case.cycles)
    return _guarded(lambda: engine.run(job.case, settings), job.case, settings), False


def _control_job(engine: Engine, settings: RunSettings) -> tuple[Result, bool]:
    return _guarded(lambda: engine.control_result(settings), CONTROL, settings), True


def _guarded(fn: Callable[[], Result], case: Case, settings: RunSettings) -> Result:
    """Whatever one job raises becomes that job's `error` row; the sweep goes on.

    A HarnessError says what to fix; anything else is a bug or a fault (a
    corrupt file, a host writing junk) and is named with its type.  An
    interrupt is not a job's fault: it ends the sweep.
    """
    try:
        return fn()
    except (KeyboardInterrupt, HostsStopped):
        raise
    except Exception as exc:  # noqa: BLE001 - one job's fault must not end the sweep
        message = str(exc) if isinstance(exc, HarnessError) else (
            f"the harness failed on this job: {type(exc).__name__}: {exc}\n"
            + "".join(traceback.format_exception(exc)[-3:]).rstrip())
        try:
            python = target_python(settings.python).to_json()
        except Exception:  # noqa: BLE001 - the target itself may be what failed
            python = {"version": "?", "executable": str(settings.python), "debug": False}
        return Result(
            case=case.name, module=case.module, python=python, mode=settings.mode,
            backend=settings.backend, host="c", cycles=settings.cycles, warmup=settings.warmup,
            verdict="error", message=message,
        )


def append_path(path: str | Path | None) -> ResultsOut | None:
    """`--out`, opened, probed and repaired (see sweep_out.py), or None."""
    if path is None:
        return None
    return ResultsOut(path)
