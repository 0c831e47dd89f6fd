"""A sweep measured against its floor case by case: drift cancelled, CPU split by part.

sweep_time.py's first way (the floor, then the whole sweep, then the whole
adaptive sweep) compares runs minutes apart; on a shared machine the same
bare-host floor of 40 modules took 38.7 to 48.9 s of CPU in four runs
within five minutes, more than the overhead being measured.  Here every
(case, mode) job runs its three measurements back to back, in one thread of
the pool: the bare host (the floor), the case under `--fixed-cycles`, the
case under adaptive cycles (order reversed on every other job, so neither
always comes first to a cold page cache).  The machine's drift then hits
the three alike, and the ratios are of sums over jobs measured seconds
apart.

CPU is counted where it is spent:
- every host is reaped with wait4, so its own CPU is known, and booked to
  the measurement (floor, fixed, adaptive) and role (case, control, probe,
  bare, reinit, ...) that started it;
- the harness's own CPU in a job is the thread's CPU time (thread_time)
  around `Engine.run` and the serialisation of its result, what the sweep
  does per job; the harness CPU outside any job (the controls' helper
  threads, reaping) is shared out in proportion.

The sweep's planning is harness.tools.sweep.plan and every job is
Engine.run, as `leak-harness sweep` runs them; what is not measured here is
the CLI's progress bar and final table (a few hundred ms per sweep).
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import resource
import subprocess
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from harness.engine import Engine
from harness.host.build import build_host
from harness.settings import RunSettings
from harness.tools.sweep import plan

ROLE = re.compile(r"leak-harness-([a-z]+)-")


class HostLedger:
    """CPU seconds of every reaped child, by (measurement, role).

    The measurement is the thread's current tag when the child started;
    the role is read off the case file's folder in its argv."""

    def __init__(self) -> None:
        self.cpu_s: dict[tuple[str, str], float] = defaultdict(float)
        self.count: Counter = Counter()
        self._started: dict[int, tuple[str, str]] = {}
        self._lock = threading.Lock()
        # per thread, and carried into the engine's helper threads (its
        # controls and probes), which run in a copy of the caller's context
        self._tag: contextvars.ContextVar[str] = contextvars.ContextVar("tag", default="untagged")

    @property
    def tag(self) -> str:
        return self._tag.get()

    @tag.setter
    def tag(self, value: str) -> None:
        self._tag.set(value)

    def install(self) -> None:
        """Wrap Popen's start and reaping (a benchmark's monkeypatch: the
        harness has no hook for it and should not grow one)."""
        ledger = self
        real_init = subprocess.Popen.__init__
        real_waitpid = os.waitpid

        def popen_init(proc, args, *a, **k):
            real_init(proc, args, *a, **k)
            role = next((m.group(1) for arg in (args if isinstance(args, (list, tuple)) else [args])
                         if (m := ROLE.search(str(arg)))), "other")
            with ledger._lock:
                ledger._started[proc.pid] = (ledger.tag, role)

        def waitpid(pid, options):
            if pid <= 0:
                return real_waitpid(pid, options)
            got, status, usage = os.wait4(pid, options)
            if got:
                with ledger._lock:
                    key = ledger._started.pop(got, ("untagged", "other"))
                    ledger.cpu_s[key] += usage.ru_utime + usage.ru_stime
                    ledger.count[key] += 1
            return got, status

        subprocess.Popen.__init__ = popen_init
        os.waitpid = waitpid
        # poll() reaps through a default argument bound when subprocess was imported
        poll = subprocess.Popen._internal_poll
        poll.__defaults__ = tuple(waitpid if d is real_waitpid else d for d in poll.__defaults__)

    def hosts_s(self, tag: str) -> float:
        return sum(s for (t, _), s in self.cpu_s.items() if t == tag)

    def roles(self, tag: str) -> dict[str, dict]:
        return {role: {"hosts": self.count[t, role], "cpu_s": round(s, 2)}
                for (t, role), s in sorted(self.cpu_s.items(), key=lambda kv: -kv[1]) if t == tag}


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _floor_run(host: Path, mode: str, cycles: int, source: str, program: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".py") as case:
        case.write(source)
        case.flush()
        subprocess.run([str(host), f"bare-{mode}", str(cycles), case.name, "2", program],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)


def paired_sweep(target, cases, modes: list[str], cycles: int, warmup: int, jobs: int,
                 adaptive: bool) -> dict:
    """Floor, fixed and (with `adaptive`) adaptive sweep of `cases`, job by job."""
    bare = build_host(target, native=False)
    build_host(target, native=True)
    ledger = HostLedger()
    ledger.install()
    base = RunSettings(python=target.executable, cycles=cycles, warmup=warmup, fixed_cycles=True)
    planned, skipped = plan(lambda _t: cases, [target.executable], modes, base)
    kinds = ["fixed", "adaptive"] if adaptive else ["fixed"]
    engines = {kind: Engine() for kind in kinds}
    as_kind = {"fixed": lambda s: s, "adaptive": lambda s: replace(s, fixed_cycles=False)}
    harness_s: dict[str, float] = defaultdict(float)
    #: each step's wall time, summed over the jobs: divided by `jobs`, about
    #: the wall time a whole sweep of that kind would take in the same moments
    wall_by_step: dict[str, float] = defaultdict(float)
    results: dict[str, list] = defaultdict(list)
    self_before, wall_start = _self_cpu_s(), time.perf_counter()

    # the controls first, each engine its own (both sweeps measure theirs)
    for settings in dict.fromkeys(job.settings for job in planned):
        for kind in kinds:
            ledger.tag = kind
            before = time.thread_time()
            engines[kind].control_result(as_kind[kind](settings))
            harness_s[kind] += time.thread_time() - before
    ledger.tag = "untagged"

    booking = threading.Lock()   # two job threads add to the same sums

    def one(index: int, job) -> None:
        steps = ["floor", *kinds]
        for step in steps if index % 2 == 0 else steps[::-1]:
            ledger.tag = step
            before, wall_before = time.thread_time(), time.perf_counter()
            if step == "floor":
                _floor_run(bare, job.settings.mode, warmup + cycles, job.case.source_code,
                           target.sys_executable)
                with booking:
                    harness_s["bench"] += time.thread_time() - before
                    wall_by_step[step] += time.perf_counter() - wall_before
                continue
            result = engines[step].run(job.case, as_kind[step](job.settings))
            json.dumps(result.to_json())   # what the sweep writes per result
            spent = time.thread_time() - before
            with booking:
                harness_s[step] += spent
                wall_by_step[step] += time.perf_counter() - wall_before
                results[step].append(result)
        ledger.tag = "untagged"

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(lambda pair: one(*pair), enumerate(planned)))
    wall_s = time.perf_counter() - wall_start
    # harness CPU no job thread saw: the engines' control threads, the pool
    other_s = max(0.0, _self_cpu_s() - self_before - sum(harness_s.values()))
    measured = sum(harness_s[k] for k in kinds) or 1.0
    floor_s = ledger.hosts_s("floor")
    figures: dict = {"jobs_run": len(planned), "skipped": skipped, "bench_wall_s": round(wall_s, 2),
                     "floor_cpu_s": round(floor_s, 2),
                     "floor_job_wall_s": round(wall_by_step["floor"], 2), "bench_own_cpu_s": round(harness_s["bench"], 2),
                     # hosts started outside any measurement (the targets' probes while planning)
                     "unbooked_hosts_cpu_s": round(ledger.hosts_s("untagged"), 2)}
    totals = {}
    for kind in kinds:
        share = other_s * harness_s[kind] / measured
        total = ledger.hosts_s(kind) + harness_s[kind] + share
        totals[kind] = total
        figures[kind] = {
            "cpu_s": round(total, 2),
            "harness_cpu_s": round(harness_s[kind] + share, 2),
            "hosts_cpu_s": round(ledger.hosts_s(kind), 2),
            # its jobs' wall time summed (the controls, measured first, not in it)
            "job_wall_s": round(wall_by_step[kind], 2),
            "hosts_by_role": ledger.roles(kind),
            "ratio_to_floor": round(total / floor_s, 3) if floor_s else None,
            "parts_of_floor": _parts(ledger, kind, harness_s[kind] + share, floor_s),
        }
    figures["overhead_cpu_ratio"] = figures["fixed"]["ratio_to_floor"]
    if adaptive:
        figures["adaptive_cpu_ratio"] = round(totals["adaptive"] / totals["fixed"], 3)
        if wall_by_step["fixed"]:
            figures["adaptive_job_wall_ratio"] = round(wall_by_step["adaptive"] / wall_by_step["fixed"], 3)
    figures["results"] = {kind: [r.to_json() for r in results[kind]] for kind in kinds}
    return figures


def _parts(ledger: HostLedger, kind: str, harness_s: float, floor_s: float) -> dict[str, float]:
    """Each part's CPU over the floor's: they add up to ratio_to_floor."""
    if not floor_s:
        return {}
    parts = {"harness process": round(harness_s / floor_s, 3)}
    # from the unrounded seconds: on a small sweep a role's 0.01 s rounding
    # would be a visible share of the floor
    for (tag, role), seconds in sorted(ledger.cpu_s.items(), key=lambda kv: -kv[1]):
        if tag == kind:
            parts[f"{role} hosts"] = round(seconds / floor_s, 3)
    return parts
