"""The verdict rule on synthetic series: what regrtest -R gets wrong, we get right."""

from __future__ import annotations

import random
from itertools import accumulate, cycle, islice

import pytest

from harness.verdict.rule import FLOORS, judge, noise, theil_sen_slope

WARMUP = 5
CYCLES = 20


def cumulative(deltas, start=10_000):
    return [start, *accumulate(deltas, initial=start)][1:]


def series(per_cycle_deltas, warmup_deltas=None, start=10_000):
    """A cumulative series: warm-up deltas, then the measured deltas."""
    warm = warmup_deltas if warmup_deltas is not None else [50] * WARMUP
    return cumulative([0, *warm, *per_cycle_deltas], start)


def constant(per_cycle, n=CYCLES):
    return series([per_cycle] * n)


def verdict_of(case_deltas, control_deltas, allowance=None, key="blocks"):
    case = {key: series(case_deltas)}
    control = {key: series(control_deltas)}
    return judge(case, control, WARMUP, allowance=allowance)


def test_theil_sen_is_exact_on_a_line():
    assert theil_sen_slope([3 + 7 * i for i in range(10)]) == 7


def test_steady_leak_of_a_few_dozen_objects_is_flagged():
    j = verdict_of([1780 + 30] * CYCLES, [1780] * CYCLES)
    assert j.verdict == "leak"
    assert j.excess["blocks"] == pytest.approx(30)


def test_one_object_per_cycle_is_flagged_over_a_quiet_control():
    assert verdict_of([1] * CYCLES, [0] * CYCLES).verdict == "leak"


def test_control_level_growth_is_not_a_leak():
    j = verdict_of([1975] * CYCLES, [1975] * CYCLES)
    assert j.verdict == "clean"
    assert j.excess["blocks"] == 0


def test_periodic_leak_that_regrtest_misses_is_flagged():
    # regrtest -R needs every delta >= 1; [6, -6, 1] has a negative delta in
    # every period and is never flagged there, yet grows 1 block per 3 cycles.
    pattern = list(islice(cycle([6, -6, 1]), CYCLES))
    assert any(d < 1 for d in pattern)  # regrtest's rule would say clean
    j = verdict_of(pattern, [0] * CYCLES)
    assert j.verdict == "leak"
    assert j.excess["blocks"] == pytest.approx(1 / 3, abs=0.15)


def test_periodic_wobble_without_net_growth_is_clean():
    pattern = list(islice(cycle([6, -6]), CYCLES))
    assert verdict_of(pattern, [0] * CYCLES).verdict == "clean"


def test_control_level_noise_of_one_block_is_not_flagged():
    # regrtest -R flakes on [1, 1, 1]: a case whose deltas are 1 like the
    # noise the interpreter itself makes.
    rng = random.Random(7)
    control = [rng.choice([0, 1]) for _ in range(CYCLES)]
    case = [1] * CYCLES
    assert noise(series(control)[WARMUP:]) > 0
    assert verdict_of(case, control).verdict == "clean"


def test_one_time_cache_in_the_warmup_is_clean():
    case = {"blocks": series([0] * CYCLES, warmup_deltas=[5000, 0, 0, 0, 0])}
    control = {"blocks": series([0] * CYCLES, warmup_deltas=[0] * WARMUP)}
    assert judge(case, control, WARMUP).verdict == "clean"


def test_one_time_step_in_the_middle_of_the_window_is_clean():
    deltas = [0] * CYCLES
    deltas[CYCLES // 2] = 4000  # a cache filled late, once
    j = verdict_of(deltas, [0] * CYCLES)
    assert j.verdict == "clean"
    # the step shows in exactly one half, never both
    first, second = j.halves["blocks"]
    assert min(first, second) <= FLOORS["blocks"]


def test_slow_steady_leak_under_noise_is_flagged():
    rng = random.Random(3)
    control = [1780 + rng.choice([-1, 0, 0, 1]) for _ in range(CYCLES)]
    case = [1780 + 12 + rng.choice([-1, 0, 0, 1]) for _ in range(CYCLES)]
    j = verdict_of(case, control)
    assert j.verdict == "leak"
    assert 10 <= j.excess["blocks"] <= 14


def test_growth_inside_the_allowance_is_clean_and_above_it_is_a_leak():
    # the interned-string / import-machinery share is an explained allowance
    assert verdict_of([1 + 1780] * CYCLES, [1780] * CYCLES, {"blocks": 1.0}).verdict == "clean"
    assert verdict_of([5 + 1780] * CYCLES, [1780] * CYCLES, {"blocks": 1.0}).verdict == "leak"


def test_bytes_alone_can_trigger_a_leak():
    case = {"blocks": constant(0), "bytes": constant(4096)}
    control = {"blocks": constant(0), "bytes": constant(0)}
    j = judge(case, control, WARMUP)
    assert j.verdict == "leak" and j.triggered_by == ["bytes"]


def test_missing_refs_on_release_builds_do_not_judge():
    case = {"blocks": constant(0), "refs": None}
    control = {"blocks": constant(0), "refs": None}
    j = judge(case, control, WARMUP)
    assert j.verdict == "clean" and j.per_cycle["refs"] is None and j.excess["refs"] is None


def test_rss_is_reported_but_never_judged():
    case = {"blocks": constant(0), "rss": constant(1_000_000)}
    control = {"blocks": constant(0), "rss": constant(0)}
    j = judge(case, control, WARMUP)
    assert j.verdict == "clean" and j.excess["rss"] == 1_000_000
