"""Per-cycle deltas: the raw evidence beside the slope, regrtest style.

regrtest prints `leaked [90, 90, 90] references`: what each repetition left.
The verdict here is the slope rule (verdict/rule.py); these are the numbers
a reader checks it against: for each measured cycle after the warm-up, what
the case's interpreter left behind, what the control's left, and the
difference.  Pure functions over lists of numbers, no I/O.

The live cycle line (`cycle_char`) marks each cycle of a running case
against the median delta of the control seen so far: `.` nothing beyond it,
a digit 1-9 for that many blocks more, `X` for ten or more, `-` for a
warm-up cycle, `?` when the host counts no blocks.  What CPython interns
and keeps by design (3.12+) is taken off the case's cycle first, as the
verdict takes it off the slope, so `import json` does not read as a leak.
"""

from __future__ import annotations

import statistics
from typing import Sequence

KEYS = ("blocks", "bytes")


def deltas(series: Sequence[float] | None, warmup: int) -> list[float] | None:
    """Growth in each cycle after the warm-up, from a cumulative series (one value per cycle)."""
    if series is None:
        return None
    values = list(series)
    return [b - a for a, b in zip(values[warmup:], values[warmup + 1:])]


def _interned(samples: Sequence[dict], warmup: int, key: str) -> list[float] | None:
    values = [s.get(key) for s in samples[warmup + 1:]]
    return None if not values or None in values else [float(v) for v in values]


def per_cycle_deltas(case_series: dict, control_series: dict, case_samples: Sequence[dict],
                     control_samples: Sequence[dict], warmup: int) -> dict[str, dict[str, list]]:
    """{"blocks": {"case", "control", "excess", "interned"}, "bytes": ...}: one value per
    measured cycle; `interned` is the case's interned strings beyond the control's (kept by
    CPython itself, discounted by the verdict), absent when the host does not read them."""
    out: dict[str, dict[str, list]] = {}
    for key in KEYS:
        case, control = deltas(case_series.get(key), warmup), deltas(control_series.get(key), warmup)
        if case is None or control is None:
            continue
        n = min(len(case), len(control))
        entry = {"case": _ints(case[:n]), "control": _ints(control[:n]),
                 "excess": _ints([a - b for a, b in zip(case[:n], control[:n])])}
        mine = _interned(case_samples, warmup, f"interned_{key}")
        theirs = _interned(control_samples, warmup, f"interned_{key}")
        if mine is not None and theirs is not None:
            entry["interned"] = _ints([a - b for a, b in zip(mine[:n], theirs[:n])])
        out[key] = entry
    return out


def _ints(values: Sequence[float]) -> list[float]:
    return [int(v) if float(v).is_integer() else round(v, 2) for v in values]


def cycle_char(excess_blocks: float | None, warmup: bool = False) -> str:
    """One character of the live cycle line (see the module docstring)."""
    if warmup:
        return "-"
    if excess_blocks is None:
        return "?"
    blocks = round(excess_blocks)
    if blocks <= 0:
        return "."
    return str(blocks) if blocks < 10 else "X"


def live_excess(case_delta: float, case_interned: float | None, control_deltas: Sequence[float],
                control_interned: Sequence[float]) -> float | None:
    """A running case's cycle over the median control cycle so far (None: no control yet)."""
    if not control_deltas:
        return None
    control = statistics.median(control_deltas)
    kept = (case_interned or 0.0) - (statistics.median(control_interned) if control_interned else 0.0)
    return case_delta - control - max(0.0, kept)
