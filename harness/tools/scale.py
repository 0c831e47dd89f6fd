"""Throughput of isolated subinterpreters against the number of threads.

The point of a per-interpreter GIL is that N interpreters on N threads run
N times as fast as one.  This module measures how close a case gets: for
each thread count it runs the C host in parallel mode (N threads, each
creating an own-GIL subinterpreter, running the case and ending it, again
and again) and reads the interpreter cycles per second off the host's
per-thread progress lines.

By default the *bare* parallel host runs (no allocator hook, no per-round
counters), so the numbers are CPython's own; `hooked=True` runs the counters
host instead, which also gives the growth per interpreter cycle but pays the
hook on every allocation.  Rounds are fenced by the host's barriers (all
threads finish cycle k before any starts k+1), so a round lasts as long as
its slowest thread: on a machine shared with other work the figure is a
lower bound.  The best of `repeats` runs is kept, as the least disturbed;
runs alternate over thread counts so drift hits every count alike.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..backends.counters import series_from_samples
from ..cases.model import Case
from ..errors import HarnessError
from ..host.build import build_host
from ..host.modes import check_mode
from ..host.target import TargetPython, target_python
from ..host.launch import c_host_argv, host_env
from ..host.runner import OUT_FD, HostRun, run_host
from ..verdict.ending import how_host_ended, one_line
from ..verdict.rule import theil_sen_slope


@dataclass
class ScalePoint:
    """One thread count: its throughput over the repeats, and how it ended."""

    threads: int
    rates: list[float] = field(default_factory=list)    # interpreter cycles/s, one per repeat
    block_slopes: list[float] = field(default_factory=list)  # hooked host: blocks per interpreter cycle
    problem: str | None = None                           # why a run did not complete

    @property
    def cycles_per_s(self) -> float | None:
        return max(self.rates) if self.rates else None

    @property
    def blocks_per_cycle(self) -> float | None:
        """Raw growth per interpreter cycle (no control subtracted), median of the runs."""
        return statistics.median(self.block_slopes) if self.block_slopes else None


@dataclass
class ScaleTable:
    """The scaling of one case on one Python."""

    case: str
    python: dict[str, Any]
    host_mode: str                  # "bare-parallel" or "parallel"
    cycles: int
    warmup: int
    repeats: int
    points: list[ScalePoint]

    def base_rate(self) -> float | None:
        one = next((p for p in self.points if p.threads == 1), None)
        return one.cycles_per_s if one else None

    def ratio(self, point: ScalePoint) -> float | None:
        """Throughput against one thread (ideal: the thread count)."""
        base = self.base_rate()
        if base is None or point.cycles_per_s is None:
            return None
        return point.cycles_per_s / base

    def efficiency(self, point: ScalePoint) -> float | None:
        """Ratio over thread count (ideal: 1.0)."""
        ratio = self.ratio(point)
        return None if ratio is None else ratio / point.threads

    @property
    def ok(self) -> bool:
        return all(p.problem is None and p.rates for p in self.points)

    def to_json(self) -> dict[str, Any]:
        def r(value: float | None, digits: int = 3) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "case": self.case, "python": self.python, "host_mode": self.host_mode,
            "cycles": self.cycles, "warmup": self.warmup, "repeats": self.repeats,
            "points": [{
                "threads": p.threads, "cycles_per_s": r(p.cycles_per_s, 2),
                "runs_cycles_per_s": [round(x, 2) for x in p.rates],
                "ratio": r(self.ratio(p)), "efficiency": r(self.efficiency(p)),
                "blocks_per_cycle": r(p.blocks_per_cycle), "problem": p.problem,
            } for p in self.points],
        }


def parse_thread_counts(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4]; 1 is always measured (the ratio's base)."""
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise HarnessError(f"--threads wants a list such as 1,2,4, not {text!r}") from None
    if not counts or counts[0] < 1:
        raise HarnessError(f"--threads {text}: thread counts must be 1 or more")
    return sorted({1, *counts})


def measure_scaling(case: Case, python: str | None, thread_counts: list[int], *,
                    cycles: int = 20, warmup: int = 3, repeats: int = 3, timeout_s: float = 120.0,
                    hooked: bool = False, pythonpath: tuple[str, ...] = (),
                    on_run: Callable[[int, int], None] | None = None) -> ScaleTable:
    """Run `case` in parallel mode at each thread count, `repeats` times each.

    Each thread runs `warmup + cycles` interpreter cycles; the rate counts
    the rounds after the warm-up.  `on_run(threads, repeat)` is called
    before each run (progress display).
    """
    if cycles < 2:
        raise HarnessError(f"--cycles must be at least 2 (got {cycles}): a rate needs rounds")
    if repeats < 1:
        raise HarnessError(f"--repeats must be at least 1 (got {repeats})")
    target = target_python(python)
    check_mode("parallel", target)
    binary = build_host(target)
    host_mode = "parallel" if hooked else "bare-parallel"
    points = {n: ScalePoint(threads=n) for n in thread_counts}
    workdir = Path(tempfile.mkdtemp(prefix="leak-harness-scale-"))
    try:
        case_file = workdir / "case.py"
        case_file.write_text(case.source_code)
        for repeat in range(repeats):
            for n in thread_counts:
                point = points[n]
                if point.problem:
                    continue  # a failing thread count fails every time: do not wait again
                if on_run:
                    on_run(n, repeat)
                run = _run_parallel(binary, host_mode, target, case_file, n, warmup + cycles,
                                    timeout_s, pythonpath)
                _take(point, run, warmup, n, hooked, warmup + cycles, timeout_s, host_mode)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return ScaleTable(case=case.name, python=target.to_json(), host_mode=host_mode,
                      cycles=cycles, warmup=warmup, repeats=repeats,
                      points=[points[n] for n in thread_counts])


def _run_parallel(binary: Path, host_mode: str, target: TargetPython, case_file: Path,
                  threads: int, total_cycles: int, timeout_s: float,
                  pythonpath: tuple[str, ...]) -> HostRun:
    argv = c_host_argv(binary, host_mode, total_cycles, str(case_file), target, threads=threads)
    return run_host(argv, OUT_FD, host_env(pythonpath), timeout_s)


def _take(point: ScalePoint, run: HostRun, warmup: int, threads: int, hooked: bool,
          total_cycles: int, timeout_s: float, host_mode: str) -> None:
    """Record one run's rate, or why it has none (verdict.ending reads how it ended)."""
    ended = how_host_ended(run, total_cycles=total_cycles, threads=threads, timeout_s=timeout_s,
                           mode=host_mode)
    if ended:
        point.problem = f"{ended[0]}: {one_line(ended[1])}"
    if point.problem:
        return
    rate = run.cycles_per_s(warmup, threads)
    if rate is None:
        point.problem = "too few rounds after the warm-up to time"
        return
    point.rates.append(rate)
    if hooked:
        blocks = series_from_samples(run.samples).get("blocks")
        if blocks and len(blocks) > warmup + 2:
            point.block_slopes.append(theil_sen_slope(blocks[warmup:]) / threads)
