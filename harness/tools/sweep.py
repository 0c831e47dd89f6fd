"""Run many cases across pythons and modes, in parallel, never losing a result.

Each (case, mode, python) is its own host process (a crash costs one row);
`jobs` of them run at once. Every result is appended to the JSON-lines file
the moment it is known, so an interrupted or crashing sweep keeps what it did.
"""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, TextIO

from ..cases.model import CONTROL, Case
from ..engine import Engine
from ..settings import RunSettings
from ..errors import HarnessError
from ..host.modes import mode_problem
from ..host.target import target_python
from ..result import Result
from ..host.runner import kill_all_hosts


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


def in_shard(case: Case, shard: tuple[int, int] | None) -> bool:
    """Deterministic across machines and runs: a hash of the case name."""
    if shard is None:
        return True
    index, count = shard
    digest = int(hashlib.sha256(case.name.encode()).hexdigest()[:8], 16)
    return digest % count == index - 1


def plan(cases_for: Callable, pythons: list[str | None], modes: list[str],
         base: RunSettings, shard: tuple[int, int] | None = None) -> tuple[list[SweepJob], list[str]]:
    """Jobs for every (python, mode, case), and what was skipped and why.

    `cases_for(target)` gives the cases for one target Python (its stdlib
    differs between versions).
    """
    jobs, skipped = [], []
    for python in pythons:
        target = target_python(python)
        for mode in modes:
            problem = mode_problem(mode, target)
            if problem:
                skipped.append(f"Python {target.label}, {mode}: {problem}")
                continue
            settings = replace(base, python=target.executable, mode=mode)
            for case in cases_for(target):
                if case.modes and mode not in case.modes:
                    continue
                if in_shard(case, shard):
                    jobs.append(SweepJob(case, settings))
    return jobs, skipped


def run_sweep(
    jobs: list[SweepJob],
    engine: Engine,
    jobs_at_once: int,
    out: TextIO | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> SweepOutcome:
    """Run `jobs`; write each result to `out` as one JSON line as it finishes."""
    outcome = SweepOutcome()
    write_lock = threading.Lock()

    def record(result: Result, is_control: bool) -> None:
        with write_lock:
            (outcome.controls if is_control else outcome.results).append(result)
            if out is not None:
                line = result.to_json()
                line["role"] = "control" if is_control else "case"
                out.write(json.dumps(line, separators=(",", ":")) + "\n")
                out.flush()
        if on_result and not is_control:
            on_result(result)

    pending: set[Future] = set()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs_at_once))
    try:
        # CPython's own rows first: every case of a (python, mode) waits on them.
        for settings in _unique(job.settings for job in jobs):
            pending.add(pool.submit(_control_job, engine, settings))
        for job in jobs:
            pending.add(pool.submit(_case_job, engine, job))
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                result, is_control = future.result()
                record(result, is_control)
    except KeyboardInterrupt:
        outcome.interrupted = True
        for future in pending:
            future.cancel()
        kill_all_hosts()
    finally:
        pool.shutdown(wait=not outcome.interrupted, cancel_futures=True)
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
    """A HarnessError for one job becomes an `error` row; the sweep goes on."""
    try:
        return fn()
    except HarnessError as exc:
        target = target_python(settings.python)
        return Result(
            case=case.name, module=case.module, python=target.to_json(), mode=settings.mode,
            backend=settings.backend, host="c", cycles=settings.cycles, warmup=settings.warmup,
            verdict="error", message=str(exc),
        )


def append_path(path: str | Path | None) -> TextIO | None:
    if path is None:
        return None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return open(path, "a", encoding="utf-8")
