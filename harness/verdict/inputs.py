"""What the growth rule is fed besides the two series: pure functions over samples.

Parallel mode's series are brought to one interpreter cycle
(`per_interpreter`); what CPython keeps of every case by design (immortal
interned strings, 3.12+) is measured from the host's samples and allowed
(`interned_excess`); parallel runs add their throughput as evidence.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..host.runner import HostRun
    from ..result import Result
    from ..settings import RunSettings


def per_interpreter(series: dict[str, list[float] | None],
                     settings: RunSettings) -> dict[str, list[float] | None]:
    """Parallel mode's samples are process totals after each round of N
    interpreter cycles (one per thread): divided by N, growth per sample is
    growth per interpreter cycle, comparable with the sequential modes.  The
    host's `interned` count is already one interpreter's, so it stays."""
    threads = settings.thread_count
    if threads is None or threads == 1:
        return series
    return {k: None if v is None else [x / threads for x in v] for k, v in series.items()}


def add_parallel_evidence(result: Result, case_run: HostRun, control_run: HostRun,
                           settings: RunSettings) -> None:
    """Thread count and throughput (interpreter cycles per second after the
    warm-up, counters hook on) of the case and of the `pass` control."""
    threads = settings.thread_count or 1
    result.evidence["threads"] = threads
    result.evidence["per_cycle_is"] = "per interpreter cycle (round growth / threads)"
    for key, run in (("cycles_per_s", case_run), ("control_cycles_per_s", control_run)):
        rate = run.cycles_per_s(settings.warmup, threads)
        result.evidence[key] = None if rate is None else round(rate, 2)


def interned_excess(case_samples: list[dict], control_samples: list[dict],
                    warmup: int) -> dict[str, float | str]:
    """What CPython itself keeps of the case per cycle beyond the control's (3.12+).

    3.12 and 3.13 keep immortal interned strings after Py_FinalizeEx and
    Py_EndInterpreter: every identifier a module's code interns stays behind
    each cycle, whatever the module.  The host reads the interpreter's
    interned dict at each cycle's end (what the case's run added to it) and
    takes each string's exact block and size from its allocator hook, so the
    allowance is a measurement: `blocks`, `bytes` and the string `count`
    (the median over the window of case minus control).  Without the hook
    (valgrind) the host reads sizes from each string's layout (what
    unicode_new asked the allocator for), which under PYTHONMALLOC=malloc
    are memcheck's blocks; `measured` says which.  A host without either
    (the pure-Python one) gives only the count, allowed as blocks.
    """
    def excess(key: str) -> float | None:
        case = [s.get(key) for s in case_samples[warmup + 1:]]
        control = [s.get(key) for s in control_samples[warmup + 1:]]
        if not case or not control or None in case or None in control:
            return None
        n = min(len(case), len(control))
        return max(0.0, float(statistics.median(a - b for a, b in zip(case[:n], control[:n]))))

    count = excess("interned")
    blocks, size = excess("interned_blocks"), excess("interned_bytes")
    if count is None:
        return {"count": 0.0, "blocks": 0.0, "bytes": 0.0, "measured": "none"}
    if blocks is None or size is None:
        return {"count": count, "blocks": count, "bytes": 0.0,
                "measured": "count only (this host reads no sizes)"}
    sources = {s.get("interned_from_hook") for s in case_samples[warmup + 1:]}
    how = ("blocks and bytes from the allocator hook" if sources == {1}
           else "blocks and bytes from each string's layout (no allocator hook)")
    return {"count": count, "blocks": blocks, "bytes": size, "measured": how}
