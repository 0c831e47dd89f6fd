"""Growth across cycles -> leak or clean.  Pure functions over lists of numbers.

The rule, top to bottom:

1. Drop the warm-up: the series starts at the sample taken after cycle W
   (W = --warmup), so the N measured cycles give N deltas.  Caches that fill
   once (in the first cycles) are gone from the window.
2. Per-cycle growth is the Theil-Sen slope of the *cumulative* series (the
   median of all pairwise slopes).  Unlike regrtest -R's "every delta >= 1",
   a periodic leak such as deltas [6, -6, 1, 6, -6, 1, ...] keeps its net
   slope (1/3 per cycle) however its deltas alternate.
3. The excess is case growth minus the `pass` control's growth, measured the
   same way with the same Python, mode, backend and cycle count.  The
   interpreters leak on their own (3.12.1 finalize: ~1,780 blocks a cycle)
   and that is CPython's row, not the module's.
4. The tolerance is the larger of a fixed floor and NOISE_K times the
   control's own noise (the spread of its per-cycle deltas, as an
   interquartile range scaled to a standard deviation), plus the import
   machinery's share when the case imports extension modules (3.12/3.13
   keep about one block per extension import and cycle themselves).
   Control-level noise such as deltas [1, 0, 1, 1, 0] therefore never
   counts: its spread lifts the tolerance above what it can produce.
5. Leak when the excess is above the tolerance over the whole window AND in
   each half of it.  Growth has to persist: a single step in the middle of
   the window (a cache filled late) shows in one half only.

Any trigger metric that passes the rule makes the verdict `leak`; the
others are evidence.  Trigger metrics: blocks and bytes (the PyMem MEM and
OBJ domains), native_blocks and native_bytes (the C allocator outside
PyMem, counted exactly by the host where it interposes malloc), raw_blocks
and raw_bytes (PyMem's RAW domain), refs where the build has them.  Each
is judged alone, with its own control and floor.
"""

from __future__ import annotations

import statistics
from functools import lru_cache
from dataclasses import dataclass, field

#: Metrics that can make a verdict, and the smallest per-cycle excess that
#: counts for each.  Blocks and refs: a third of a block per cycle, so a
#: leak of one object every three cycles is still seen; bytes: one small
#: allocation's worth; the same for native blocks/bytes, which are counted
#: as exactly.  RSS and malloc's heap in use (heap_in_use_bytes) are
#: reported, never judged: the allocator keeps pages, so they move in steps.
#: PyMem's RAW domain is judged too: the native count leaves out what RAW
#: hands to malloc, so without it a PyMem_RawMalloc leak was seen by no
#: judged metric (_cffi_backend 2.1.1: +1 block, +32 B a finalize cycle,
#: memcheck "definitely lost" in PyThread_allocate_lock, read `clean`).  The
#: frees CPython makes with its default raw allocator swapped in happen in
#: the `pass` control too, and the control is subtracted.
FLOORS: dict[str, float] = {"blocks": 0.3, "bytes": 128.0, "refs": 0.3,
                            "native_blocks": 0.3, "native_bytes": 128.0,
                            "raw_blocks": 0.3, "raw_bytes": 128.0}
NOISE_K = 3.0
_IQR_TO_SIGMA = 1.349
#: PyMem RAW is judged under the counters backend only: the tracemalloc
#: backend keeps one RAW trace entry per live block it traces (+49 RAW blocks
#: a cycle beside 49 kept interned strings), so there RAW is the tool's; under
#: memray it was not measured.  Elsewhere RAW is reported only.
RAW_KEYS = ("raw_blocks", "raw_bytes")


def judged_metrics(backend: str) -> tuple[str, ...]:
    """The metrics that can make a verdict under `backend`."""
    return tuple(k for k in FLOORS if backend == "counters" or k not in RAW_KEYS)


@dataclass(frozen=True)
class Growth:
    """Per-cycle growth of one series: whole window and each half."""

    whole: float
    first_half: float
    second_half: float


@dataclass
class Judgement:
    verdict: str                                  # "leak" or "clean"
    per_cycle: dict[str, float | None]
    control_per_cycle: dict[str, float | None]
    excess: dict[str, float | None]
    tolerance: dict[str, float]
    triggered_by: list[str] = field(default_factory=list)
    halves: dict[str, tuple[float, float]] = field(default_factory=dict)


def deltas(values: list[float]) -> list[float]:
    return [b - a for a, b in zip(values, values[1:])]


def theil_sen_slope(values: list[float]) -> float:
    """Median of the slopes between every pair of points (x = cycle index).

    Memoised on the values: every case of a sweep is judged against the
    same control series, whose slopes were the larger part of the harness's
    own time per case."""
    return _theil_sen(tuple(values))


@lru_cache(maxsize=4096)
def _theil_sen(values: tuple[float, ...]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    slopes = [
        (values[j] - values[i]) / (j - i) for i in range(n) for j in range(i + 1, n)
    ]
    return float(statistics.median(slopes))


def noise(values: list[float]) -> float:
    """Robust spread of the per-cycle deltas (IQR scaled to a sigma)."""
    ds = deltas(values)
    if len(ds) < 4:
        return 0.0
    q1, _, q3 = statistics.quantiles(ds, n=4, method="inclusive")
    return (q3 - q1) / _IQR_TO_SIGMA


def measured_window(values: list[float], warmup: int) -> list[float]:
    """Samples from the one taken after the warm-up cycles to the end."""
    return values[warmup:]


def growth(window: list[float]) -> Growth:
    middle = len(window) // 2
    return Growth(
        whole=theil_sen_slope(window),
        first_half=theil_sen_slope(window[: middle + 1]),
        second_half=theil_sen_slope(window[middle:]),
    )


def _usable(series: list | None) -> bool:
    return bool(series) and all(v is not None for v in series)


def judge(
    case_series: dict[str, list[float] | None],
    control_series: dict[str, list[float] | None],
    warmup: int,
    allowance: dict[str, float] | None = None,
    judged: tuple[str, ...] | None = None,
) -> Judgement:
    """Decide leak/clean for a case against its control.

    `case_series` / `control_series` map metric name -> cumulative value after
    each cycle, starting with the sample before cycle 1.  `allowance` adds a
    known, explained per-cycle share (the import machinery's) to the tolerance.
    `judged`: the metrics that can make the verdict (default: all of FLOORS).
    """
    allowance = allowance or {}
    per_cycle: dict[str, float | None] = {}
    control_per_cycle: dict[str, float | None] = {}
    excess: dict[str, float | None] = {}
    tolerance: dict[str, float] = {}
    halves: dict[str, tuple[float, float]] = {}
    triggered: list[str] = []
    for key in sorted(set(case_series) | set(control_series)):
        case_values, control_values = case_series.get(key), control_series.get(key)
        case_growth = growth(measured_window(case_values, warmup)) if _usable(case_values) else None
        control_growth = (
            growth(measured_window(control_values, warmup)) if _usable(control_values) else None
        )
        per_cycle[key] = case_growth.whole if case_growth else None
        control_per_cycle[key] = control_growth.whole if control_growth else None
        if not (case_growth and control_growth):
            excess[key] = None
            continue
        excess[key] = case_growth.whole - control_growth.whole
        if key not in FLOORS or (judged is not None and key not in judged):
            continue
        limit = max(FLOORS[key], NOISE_K * noise(measured_window(control_values, warmup)))
        limit += allowance.get(key, 0.0)
        tolerance[key] = limit
        first = case_growth.first_half - control_growth.first_half
        second = case_growth.second_half - control_growth.second_half
        halves[key] = (first, second)
        if min(excess[key], first, second) > limit:
            triggered.append(key)
    return Judgement(
        verdict="leak" if triggered else "clean",
        per_cycle=per_cycle,
        control_per_cycle=control_per_cycle,
        excess=excess,
        tolerance=tolerance,
        triggered_by=triggered,
        halves=halves,
    )
