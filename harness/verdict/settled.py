"""Adaptive cycles: may a case stop before its last cycle, its verdict unchanged?

The growth rule (verdict.rule) calls a case `leak` only when the excess is
above the tolerance over the whole window AND in each half of it.  So a
`clean` is decided as soon as the first half of the full window is known
to be at or below the tolerance, whatever the cycles after it would show.
A `leak` is never decided early: its second half is part of the rule, and
a cache that fills a block a cycle for twelve cycles and then stops is
`clean` at 20 cycles, but would look like a steady leak at 12.

The first half need not be complete to be bounded.  Its slope is the
median of the slopes between every pair of its P points (Theil-Sen).  Once
more than half of those pairs lie within the cycles measured so far, the
median cannot be above the largest slope among them, which is the largest
single per-cycle delta seen: the later points can move the median, never
past that.  For 20 cycles the first half has 11 points and 55 pairs; the
28 pairs of the first 8 points settle it, so a clean case may stop after
7 measured cycles (12 of 25 with the default warm-up).

So a case stops after measured cycle m when, for every judged metric:
  * m is at least `first_decidable(cycles)` (and --min-cycles);
  * the bound on its first-half growth (largest per-cycle delta so far, or
    the exact slope once the first half is all measured) minus the
    control's first-half growth is at or below the tolerance, taken at
    its smallest (the fixed floor, or the control's own noise once the
    control has run all its cycles), plus the measured allowances;
  * the rule on the cycles measured so far says `clean` too, so what the
    result reports (judged on those cycles) agrees with why it stopped.

The control always runs the full count; it is cached per sweep.  The one
input not bounded is the interned-string allowance, measured on the
cycles so far: a module that interns more strings in later cycles than in
its first ones is judged on the first ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from .rule import FLOORS, NOISE_K, deltas, judge, measured_window, noise, theil_sen_slope


def _pairs(points: int) -> int:
    return points * (points - 1) // 2


def first_half_points(cycles: int) -> int:
    """Points in the first half of a `cycles`-cycle window (as rule.growth cuts it)."""
    return (cycles + 1) // 2 + 1


def first_decidable(cycles: int) -> int:
    """Fewest measured cycles after which the first half of a `cycles`-cycle
    window is bounded by the cycles seen: more than half of its pairs are in."""
    total = _pairs(first_half_points(cycles))
    points = 2
    while _pairs(points) < total // 2 + 1:
        points += 1
    return points - 1


@dataclass(frozen=True)
class Settled:
    """A case may stop now: its `clean` is settled after `measured` cycles."""

    measured: int


def settled_clean(case_series: dict[str, list[float] | None],
                  control_series: dict[str, list[float] | None],
                  warmup: int, cycles: int, min_cycles: int,
                  allowance: dict[str, float] | None = None) -> Settled | None:
    """A Settled when the case's verdict at `cycles` measured cycles is
    `clean` already, from its samples so far; None while it may still be
    a leak.  `control_series` may be shorter than the full run (a control
    still running): its first half must be in."""
    allowance = allowance or {}
    case_any = next((v for v in case_series.values() if v), None)
    if not case_any:
        return None
    measured = len(case_any) - 1 - warmup
    if measured < max(min_cycles, first_decidable(cycles)) or measured >= cycles:
        return None
    half = first_half_points(cycles)
    judged = False
    truncated_control: dict[str, list[float] | None] = {}
    for key, case_values in case_series.items():
        control_values = control_series.get(key)
        usable = case_values is not None and control_values is not None
        truncated_control[key] = control_values[: len(case_values)] if usable else None
        if key not in FLOORS or not usable:
            continue
        case_window = measured_window(case_values, warmup)
        control_window = measured_window(control_values, warmup)[: cycles + 1]
        if len(control_window) < max(half, len(case_window)):
            return None     # the control has not measured as far yet: decide later
        case_first = (theil_sen_slope(case_window[:half]) if len(case_window) >= half
                      else max(deltas(case_window)))
        control_first = theil_sen_slope(control_window[:half])
        spread = NOISE_K * noise(control_window) if len(control_window) == cycles + 1 else 0.0
        limit = max(FLOORS[key], spread) + allowance.get(key, 0.0)
        if case_first - control_first > limit:
            return None
        judged = True
    if not judged:
        return None
    if judge(case_series, truncated_control, warmup, allowance=allowance).verdict != "clean":
        return None
    return Settled(measured=measured)
