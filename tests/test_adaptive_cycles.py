"""Adaptive cycles: a case stops once its `clean` is settled, and no verdict changes.

The proof obligation (harness/verdict/settled.py): stopping early never
changes a verdict.  Shown three ways:
  * the bound it rests on, on random series: whatever the cycles after the
    stop, the first-half Theil-Sen slope never exceeds the largest delta
    seen once more than half of its pairs are in;
  * the rule on synthetic series (periodic, slow, late) against the fixed
    verdict of every continuation tried;
  * real hosts: each holdout-like case (periodic leaks of period 2..5, a
    slow one-object leak, one object every third cycle, late caches, a late
    leak, a cache that fills over twelve cycles) and its clean twin, run
    with --fixed-cycles and adaptively: the same verdicts, the clean ones
    stopped early, the leaks ran every cycle.
And the stop pipe cannot be turned into a false `clean` by the case.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from fixtures.contract import check_contract
from fixtures.targets import REPO_ROOT
from harness.cases.model import Case
from harness.engine import Engine
from harness.host.samples_check import stop_problem
from harness.settings import RunSettings
from harness.verdict.rule import deltas, judge, theil_sen_slope
from harness.verdict.settled import first_decidable, first_half_points, settled_clean



# -- the bound ------------------------------------------------------------
@pytest.mark.parametrize("cycles", [4, 5, 8, 10, 20, 21, 40])
def test_first_decidable_puts_more_than_half_the_first_half_pairs_in(cycles):
    m = first_decidable(cycles)
    half = first_half_points(cycles)
    pairs = half * (half - 1) // 2
    assert (m + 1) * m // 2 > pairs // 2          # more than half are in ...
    assert m * (m - 1) // 2 <= pairs // 2         # ... and one cycle fewer is not enough
    assert first_decidable(20) == 7


def test_the_first_half_slope_never_exceeds_the_largest_delta_seen_whatever_follows():
    rng = random.Random(1234)
    cycles = 20
    m, half = first_decidable(cycles), first_half_points(cycles)
    for _ in range(3000):
        seen = [0.0]
        for _ in range(m):
            seen.append(seen[-1] + rng.choice([0, 0, 0, 1, 2, -1, 5]))
        bound = max(deltas(seen))
        rest = list(seen)
        for _ in range(half - len(seen)):   # any continuation, large steps too
            rest.append(rest[-1] + rng.choice([0, 50, -50, 1000, 3]))
        assert theil_sen_slope(rest[:half]) <= bound + 1e-9, (seen, rest)
    # and with one point fewer the bound fails for some continuation: it is the least m
    fewer = [0.0] * m          # m points: deltas all 0
    worst = fewer + [1e6] * (half - len(fewer))
    assert theil_sen_slope(worst) > 0


def _series(case_deltas, control_deltas=None):
    control_deltas = control_deltas if control_deltas is not None else [0] * len(case_deltas)

    def cumulative(ds):
        out = [100.0]
        for d in ds:
            out.append(out[-1] + d)
        return out
    return {"blocks": cumulative(case_deltas)}, {"blocks": cumulative(control_deltas)}


WARMUP, CYCLES = 5, 20


def _fixed_verdict(case_deltas):
    case, control = _series(case_deltas)
    return judge(case, control, WARMUP).verdict


def _first_stop(case_deltas):
    """The measured cycle an adaptive run would stop after, or None (ran all)."""
    case, control = _series(case_deltas)
    for n in range(WARMUP + 1, WARMUP + CYCLES + 1):
        cut = {k: v[: n + 1] for k, v in case.items()}
        if settled_clean(cut, control, WARMUP, CYCLES, 1) is not None:
            return n - WARMUP
    return None


SYNTHETIC = {
    "clean": [0] * 25,
    "one object a cycle": [1] * 25,
    "one object every third cycle": [1 if i % 3 == 0 else 0 for i in range(25)],
    **{f"period {p}": [6 if i % p == 0 else 0 for i in range(25)] for p in (2, 3, 4, 5)},
    "cache filled in the warm-up": [30] * 3 + [0] * 22,
    "late cache at measured cycle 9": [0] * 13 + [40] + [0] * 11,
    "late cache at measured cycle 16": [0] * 20 + [40] + [0] * 4,
    "leak from measured cycle 9 on": [0] * 13 + [3] * 12,
    "cache filling for 12 cycles": [0] * 5 + [2] * 12 + [0] * 8,
    "alternating": [1, -1] * 13,
}


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_an_adaptive_stop_gives_the_fixed_verdict_on_synthetic_series(name):
    case_deltas = SYNTHETIC[name][:25]
    fixed = _fixed_verdict(case_deltas)
    stop = _first_stop(case_deltas)
    if stop is None:
        return          # ran every cycle: the fixed verdict by construction
    assert fixed == "clean", f"{name}: stopped clean after {stop} cycles, fixed says {fixed}"
    # whatever the later cycles would have been, the full verdict stays clean
    rng = random.Random(name)
    for _ in range(200):
        tail = [rng.choice([0, 1, 5, 100]) for _ in range(25 - (WARMUP + stop))]
        assert _fixed_verdict(case_deltas[: WARMUP + stop] + tail) == "clean", (name, tail)


def test_leaks_and_periodic_series_never_stop_and_clean_ones_do():
    assert _first_stop(SYNTHETIC["clean"]) == first_decidable(CYCLES)
    for name in ("one object a cycle", "one object every third cycle", "period 2", "period 5"):
        assert _first_stop(SYNTHETIC[name]) is None, name
        assert _fixed_verdict(SYNTHETIC[name]) == "leak", name


def test_a_control_not_yet_through_its_first_half_defers_the_stop():
    case, control = _series([0] * 25)
    cut_case = {k: v[: WARMUP + 8 + 1] for k, v in case.items()}
    early_control = {k: v[: WARMUP + 9 + 1] for k, v in control.items()}   # 9 < first half's 10
    assert settled_clean(cut_case, early_control, WARMUP, CYCLES, 1) is None
    ready = {k: v[: WARMUP + 11 + 1] for k, v in control.items()}
    assert settled_clean(cut_case, ready, WARMUP, CYCLES, 1) is not None


def test_min_cycles_is_a_floor():
    case, control = _series([0] * 25)
    cut = {k: v[: WARMUP + 9 + 1] for k, v in case.items()}
    assert settled_clean(cut, control, WARMUP, CYCLES, 10) is None
    assert settled_clean(cut, control, WARMUP, CYCLES, 9) is not None


@pytest.mark.parametrize("asked,stopped,problem", [
    (None, None, False), (12, 12, False), (None, 12, True), (12, None, True), (12, 13, True),
    (3, 3, True),        # inside the warm-up: never asked by the harness
])
def test_stop_problem_accepts_only_the_stop_the_harness_asked_for(asked, stopped, problem):
    assert (stop_problem(asked, stopped, 5, 20) is not None) is problem


# -- real hosts -----------------------------------------------------------
def _counting(tmp_path, every: str) -> str:
    """Case code: a cycle counter in a file (it survives Py_FinalizeEx) and
    `every` (a condition on n, the cycle number from 1) deciding when the
    tunable extension drops its leak."""
    counter = tmp_path / "counter"
    return (f"import lh_TWIN\n"
            f"p = {str(counter)!r}\n"
            f"try:\n    n = int(open(p).read()) + 1\nexcept FileNotFoundError:\n    n = 1\n"
            f"with open(p, 'w') as f:\n    f.write(str(n))\n"
            f"if {every}:\n    LEAK\n")


# (name, condition on the cycle number n (1-based, warm-up included), the leak)
HOLDOUTS = [
    ("native-period-2", "n % 2 == 0", "lh_TWIN.native(4096)"),
    ("native-period-3", "n % 3 == 0", "lh_TWIN.native(4096)"),
    ("native-period-4", "n % 4 == 0", "lh_TWIN.native(4096)"),
    ("native-period-5", "n % 5 == 0", "lh_TWIN.native(4096)"),
    ("pymem-period-5", "n % 5 == 0", "lh_TWIN.pymem(2048)"),
    ("one-object", "True", "lh_TWIN.objects(0)"),
    ("object-every-third", "n % 3 == 0", "lh_TWIN.objects(0)"),
    ("late-cache-measured-9", "n == 14", "lh_TWIN.objects(40)"),
    ("late-cache-measured-16", "n == 21", "lh_TWIN.objects(40)"),
    ("late-leak-from-measured-9", "n >= 14", "lh_TWIN.objects(2)"),
    ("cache-filling-12-cycles", "6 <= n <= 17", "lh_TWIN.native(512)"),
]


@pytest.fixture(scope="module")
def engine():
    return Engine()


@pytest.mark.parametrize("python_id", ["3.12", "3.13"])
@pytest.mark.parametrize("name,every,leak", HOLDOUTS, ids=[h[0] for h in HOLDOUTS])
def test_adaptive_cycles_never_change_a_verdict_on_holdout_like_cases(
        engine, fixture_modules_for, tmp_path, python_id, name, every, leak):
    built = fixture_modules_for(python_id)
    verdicts = {}
    for twin in ("lh_tunableleak", "lh_tunableclean"):
        for fixed in (True, False):
            where = tmp_path / f"{twin}-{fixed}"
            where.mkdir()
            code = _counting(where, every).replace("LEAK", leak).replace("lh_TWIN", twin)
            settings = RunSettings(python=built.target.executable, cycles=CYCLES, warmup=WARMUP,
                                   timeout=120, pythonpath=(str(built.directory),),
                                   fixed_cycles=fixed)
            result = engine.run(Case(name=f"{name}-{twin}", code=code, module=twin), settings)
            verdicts[twin, fixed] = result
            stop = result.cycle_stop
            assert stop["policy"] == ("fixed" if fixed else "adaptive")
            assert stop["cycles_run"] == result.cycles == result.last_cycle - WARMUP
            assert len(result.samples) == WARMUP + result.cycles + 1
            if result.verdict != "clean":
                assert not stop["stopped_early"], (name, twin, result.message)
                assert result.cycles == CYCLES
    for twin in ("lh_tunableleak", "lh_tunableclean"):
        fixed, adaptive = verdicts[twin, True], verdicts[twin, False]
        assert fixed.verdict == adaptive.verdict, (name, twin, fixed.message, adaptive.message)
        assert fixed.verdict in ("leak", "clean"), fixed.message
    # the clean twin is settled early; so is every leaky case whose full verdict is clean
    clean_twin = verdicts["lh_tunableclean", False]
    assert clean_twin.verdict == "clean" and clean_twin.cycle_stop["stopped_early"], clean_twin.message
    assert clean_twin.cycles < CYCLES
    if name.startswith(("native-period", "pymem-period", "one-object", "object-every")):
        assert verdicts["lh_tunableleak", True].verdict == "leak", verdicts["lh_tunableleak", True].message


def test_adaptive_json_has_cycle_stop_and_keeps_the_contract(tmp_path, target_for):
    target = target_for("3.12")
    out = subprocess.run([sys.executable, "-m", "harness", "run", "--python", target.executable,
                          "--json", "json"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["verdict"] == "clean"
    assert data["cycle_stop"]["stopped_early"] is True
    assert data["cycles"] == data["cycle_stop"]["cycles_run"] < data["cycle_stop"]["max_cycles"] == 20
    assert len(data["samples"]) == data["warmup"] + data["cycles"] + 1
    check_contract(out.stdout)
    fixed = subprocess.run([sys.executable, "-m", "harness", "run", "--python", target.executable,
                            "--json", "--fixed-cycles", "json"], capture_output=True, text=True,
                           cwd=REPO_ROOT, timeout=300)
    data = json.loads(fixed.stdout)
    assert data["cycles"] == 20 and data["cycle_stop"]["policy"] == "fixed"
    bad = subprocess.run([sys.executable, "-m", "harness", "run", "--python", target.executable,
                          "--min-cycles", "21", "json"], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=300)
    assert bad.returncode == 2 and "--min-cycles" in bad.stderr and "Traceback" not in bad.stderr


# -- the case cannot steer the stop ----------------------------------------
def _stop_fd_of_host() -> str:
    """Case code finding the host's stop pipe: the fd after --stop-fd in its argv."""
    return ("import os\n"
            "argv = open('/proc/self/cmdline', 'rb').read().split(b'\\0')\n"
            "fd = int(argv[argv.index(b'--stop-fd') + 1])\n")


def _tamper_settings(built, **kw) -> RunSettings:
    return RunSettings(python=built.target.executable, cycles=CYCLES, warmup=WARMUP, timeout=60,
                       pythonpath=(str(built.directory),), **kw)


def test_a_leaky_case_that_forges_a_stop_is_an_error_not_a_clean(engine, fixture_modules_for):
    # it writes 's' into the host's stop pipe (through /proc, a write end of the
    # same pipe): the host stops where the harness never asked, as the leak
    # would have it if stopping were the host's or the case's call
    built = fixture_modules_for("3.12")
    code = (_stop_fd_of_host() + "import lh_tunableleak\nlh_tunableleak.native(4096)\n"
            "w = os.open(f'/proc/self/fd/{fd}', os.O_WRONLY); os.write(w, b's'); os.close(w)\n")
    result = engine.run(Case(name="forged-stop", code=code), _tamper_settings(built))
    assert result.verdict == "error", result.message
    assert "never told it to stop" in result.message
    honest = engine.run(Case(name="no-forgery", code=code.rsplit("w = os.open", 1)[0]),
                        _tamper_settings(built))
    assert honest.verdict == "leak" and not honest.cycle_stop["stopped_early"], honest.message


def test_a_case_that_buries_the_harness_stop_is_an_error(engine, fixture_modules_for):
    # 'c' answers piled up ahead of the harness's: its stop is never read
    built = fixture_modules_for("3.12")
    engine.run(Case(name="warm", code="pass"), _tamper_settings(built))   # the control, cached
    code = (_stop_fd_of_host()
            + "w = os.open(f'/proc/self/fd/{fd}', os.O_WRONLY); os.write(w, b'c' * 40); os.close(w)\n")
    result = engine.run(Case(name="buried-stop", code=code), _tamper_settings(built))
    assert result.verdict == "error", result.message
    assert "told the host to stop" in result.message
    plain = engine.run(Case(name="untampered", code=_stop_fd_of_host()), _tamper_settings(built))
    assert plain.verdict == "clean" and plain.cycle_stop["stopped_early"], plain.message


def test_a_case_that_closes_the_stop_pipe_is_an_error(engine, fixture_modules_for):
    built = fixture_modules_for("3.12")
    result = engine.run(Case(name="closed-stop", code=_stop_fd_of_host()
                             + "try:\n    os.close(fd)\nexcept OSError:\n    pass\n"),
                        _tamper_settings(built))
    assert result.verdict == "error", result.message
    assert "stop pipe broke" in result.message
    # with fixed cycles there is no pipe to close: the same case (its argv probe aside) runs
    fixed = engine.run(Case(name="no-pipe", code="import os\n"), _tamper_settings(built, fixed_cycles=True))
    assert fixed.verdict == "clean", fixed.message
