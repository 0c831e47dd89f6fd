"""Verdicts on the fixture extensions (tests/fixtures/ext): every defect found, every twin clean.

Each leaky module is run next to its clean twin, on every target Python
present, in every lifecycle mode the Python has.  What the raw host measured
per cycle over the `pass` control (12 cycles after 3 warm-up, 2024 numbers,
identical on every cycle):

- lh_callleak: +9 blocks (a tuple and 8 ints) in every mode and Python.
- lh_stateleak: +22 blocks (a list, its item array, 20 ints) in every mode.
- lh_initleak: +18 blocks whenever PyInit runs again: every finalize cycle;
  every legacy subinterpreter on 3.10-3.12 (a single-phase module first
  loaded in a subinterpreter is initialized afresh in each new one); never on
  3.13, which reuses the first module's dict copy.  Isolated subinterpreters
  refuse single-phase modules (3.12+).
- the clean twins, lh_oncecache, lh_singlephase: +0 blocks (3.10/3.11) or the
  +1..3 the 3.12/3.13 import machinery leaves per extension import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fixtures.contract import check_contract
from fixtures.targets import PYTHON_IDS, REPO_ROOT, python_version_of
from harness.cases.model import Case
from harness.engine import Engine
from harness.settings import RunSettings
from harness.result import Result

ALL_MODES = ("finalize", "subinterpreter", "legacy-subinterpreter")
CYCLES, WARMUP = 12, 3
SINGLE_PHASE_REFUSAL = "module lh_singlephase does not support loading in subinterpreters"


def mode_applies(python_id: str, mode: str) -> bool:
    # own-GIL (isolated) subinterpreters exist from 3.12
    return mode != "subinterpreter" or python_version_of(python_id) >= (3, 12)


def matrix(modes=ALL_MODES, pythons=PYTHON_IDS, where=lambda python_id: True) -> list:
    return [
        pytest.param(python_id, mode, id=f"{python_id}-{mode}")
        for python_id in pythons
        for mode in modes
        if mode_applies(python_id, mode) and where(python_id)
    ]


def before(version: tuple[int, int]):
    return lambda python_id: python_version_of(python_id) < version


def from_version(version: tuple[int, int]):
    return lambda python_id: python_version_of(python_id) >= version


@pytest.fixture(scope="session")
def engine() -> Engine:
    # one per session: the `pass` control is measured once per (python, mode)
    return Engine()


@pytest.fixture
def run_fixture(engine, fixture_modules_for):
    def run(python_id: str, mode: str, module: str, code: str | None = None,
            timeout: float = 60.0) -> Result:
        built = fixture_modules_for(python_id)
        case = Case(name=module, code=code or f"import {module}", module=module)
        settings = RunSettings(
            python=built.target.executable, mode=mode, backend="counters",
            cycles=CYCLES, warmup=WARMUP, timeout=timeout,
            pythonpath=(str(built.directory),),
        )
        return engine.run(case, settings)

    return run


def assert_verdict(result: Result, expected: str) -> None:
    assert result.verdict == expected, (
        f"{result.case} on Python {result.python['version']} in {result.mode}: "
        f"verdict {result.verdict}, expected {expected}\n"
        f"message: {result.message}\nper cycle: {result.per_cycle}\nexcess: {result.excess}\n"
        f"control: {result.control}"
    )


def call(module: str) -> str:
    return f"import {module}\n{module}.f()"


# -- kind 1: a leak per call --------------------------------------------------

@pytest.mark.parametrize("python_id, mode", matrix())
def test_call_leak_is_flagged_in_every_mode(run_fixture, python_id, mode):
    result = run_fixture(python_id, mode, "lh_callleak", call("lh_callleak"))
    assert_verdict(result, "leak")
    assert result.excess["blocks"] >= 5  # measured: +9 (a tuple and 8 ints)


@pytest.mark.parametrize("python_id, mode", matrix())
def test_call_leak_clean_twin_is_clean_in_every_mode(run_fixture, python_id, mode):
    assert_verdict(run_fixture(python_id, mode, "lh_callclean", call("lh_callclean")), "clean")


@pytest.mark.parametrize("mode", ["finalize", "legacy-subinterpreter"])
def test_debug_build_counts_the_references_a_call_leak_strands(run_fixture, mode):
    result = run_fixture("debug", mode, "lh_callleak", call("lh_callleak"))
    assert_verdict(result, "leak")
    refs = result.per_cycle["refs"]
    assert refs is not None and refs > 0, f"refs per cycle on a Py_DEBUG build: {refs!r}"


# -- kind 3: a leak kept in module state ----------------------------------------

@pytest.mark.parametrize("python_id, mode", matrix())
def test_state_leak_is_flagged_in_every_mode(run_fixture, python_id, mode):
    result = run_fixture(python_id, mode, "lh_stateleak")
    assert_verdict(result, "leak")
    assert result.excess["blocks"] >= 10  # measured: +22 (list, item array, 20 ints)


@pytest.mark.parametrize("python_id, mode", matrix())
def test_state_leak_clean_twin_is_clean_in_every_mode(run_fixture, python_id, mode):
    assert_verdict(run_fixture(python_id, mode, "lh_stateclean"), "clean")


# -- kind 2: a leak per module init (single-phase) ------------------------------

@pytest.mark.parametrize("python_id, mode", matrix(["finalize"]))
def test_init_leak_is_flagged_when_finalize_runs_pyinit_again(run_fixture, python_id, mode):
    result = run_fixture(python_id, mode, "lh_initleak")
    assert_verdict(result, "leak")
    assert result.excess["blocks"] >= 10  # measured: +18 (list, item array, 16 ints)


@pytest.mark.parametrize("python_id, mode", matrix(["legacy-subinterpreter"], where=before((3, 13))))
def test_init_leak_is_flagged_in_legacy_subinterpreters_before_3_13(run_fixture, python_id, mode):
    # 3.10-3.12: a single-phase module first imported in a subinterpreter
    # (never in the main one) gets PyInit called again in every new
    # subinterpreter, so the static pointer is overwritten each cycle.
    result = run_fixture(python_id, mode, "lh_initleak")
    assert_verdict(result, "leak")
    assert result.excess["blocks"] >= 10  # measured: +18


@pytest.mark.parametrize("python_id, mode", matrix(["legacy-subinterpreter"], where=from_version((3, 13))))
def test_init_leak_is_one_time_in_legacy_subinterpreters_from_3_13(run_fixture, python_id, mode):
    # 3.13 keeps the first subinterpreter's module dict copy (m_copy) and
    # builds later modules from it: PyInit runs once, the static is set once.
    assert_verdict(run_fixture(python_id, mode, "lh_initleak"), "clean")


@pytest.mark.parametrize("python_id, mode", matrix(["finalize", "legacy-subinterpreter"]))
def test_init_leak_clean_twin_is_clean(run_fixture, python_id, mode):
    assert_verdict(run_fixture(python_id, mode, "lh_initclean"), "clean")


@pytest.mark.parametrize("module", ["lh_initleak", "lh_initclean"])
@pytest.mark.parametrize("python_id, mode", matrix(["subinterpreter"]))
def test_single_phase_init_fixtures_are_unsupported_in_isolated_subinterpreters(
        run_fixture, python_id, mode, module):
    result = run_fixture(python_id, mode, module)
    assert_verdict(result, "unsupported")
    assert f"module {module} does not support loading in subinterpreters" in result.message


# -- kind 5: a one-time process-wide cache ---------------------------------------

@pytest.mark.parametrize("python_id, mode", matrix())
def test_one_time_cache_is_not_a_leak(run_fixture, python_id, mode):
    assert_verdict(run_fixture(python_id, mode, "lh_oncecache"), "clean")


# -- kind 4 and 8: native-heap defects, clean twins under the counters backend ----

@pytest.mark.parametrize("module", ["lh_mallocclean", "lh_uafclean"])
@pytest.mark.parametrize("python_id, mode", matrix(["finalize"]))
def test_native_state_clean_twins_are_clean(run_fixture, python_id, mode, module):
    # the leaky siblings: lh_mallocleak is judged on native_blocks/native_bytes
    # in tests/test_native_counting.py; lh_uaf is for valgrind's memcheck errors
    assert_verdict(run_fixture(python_id, mode, module), "clean")


# -- kind 6: single-phase module --------------------------------------------------

@pytest.mark.parametrize("python_id, mode", matrix(["subinterpreter"]))
def test_single_phase_module_is_unsupported_in_isolated_subinterpreters(run_fixture, python_id, mode):
    result = run_fixture(python_id, mode, "lh_singlephase")
    assert_verdict(result, "unsupported")
    assert SINGLE_PHASE_REFUSAL in result.message


@pytest.mark.parametrize("python_id, mode", matrix(["finalize", "legacy-subinterpreter"]))
def test_single_phase_module_is_clean_where_it_loads(run_fixture, python_id, mode):
    assert_verdict(run_fixture(python_id, mode, "lh_singlephase"), "clean")


# -- kind 7: crash, and cases that raise or hang ---------------------------------

@pytest.mark.parametrize("python_id, mode", matrix())
def test_crash_on_import_is_reported_as_crash(run_fixture, python_id, mode):
    result = run_fixture(python_id, mode, "lh_crash")
    assert_verdict(result, "crash")
    assert "SIGSEGV" in result.message


@pytest.mark.parametrize("python_id, mode", matrix(["finalize", "subinterpreter"]))
def test_exception_in_the_case_is_an_error_with_its_traceback(run_fixture, python_id, mode):
    result = run_fixture(python_id, mode, "boom", "raise ValueError('boom')")
    assert_verdict(result, "error")
    assert "Traceback (most recent call last)" in result.message
    assert "ValueError: boom" in result.message


@pytest.mark.parametrize("python_id, mode", matrix(["finalize"], pythons=["3.12"]))
def test_hanging_case_times_out(run_fixture, python_id, mode):
    result = run_fixture(python_id, mode, "sleeper", "import time; time.sleep(600)", timeout=5.0)
    assert_verdict(result, "timeout")
    assert result.wall_s < 60


# -- the CLI, as a user runs it --------------------------------------------------

CLI_PYTHON = "3.12"


@pytest.fixture
def cli(fixture_modules_for):
    built = fixture_modules_for(CLI_PYTHON)

    def run(code: str, module: str | None, *, mode: str = "finalize",
            python: str | None = None, cycles: int = CYCLES, warmup: int = WARMUP):
        argv = [sys.executable, "-m", "harness", "run", "-c", code,
                "--python", python or built.target.executable, "--mode", mode,
                "--backend", "counters", "--cycles", str(cycles), "--warmup", str(warmup),
                "--timeout", "60", "--json"]
        if module:
            argv += ["--module", module]
        env = dict(os.environ, PYTHONPATH=str(built.directory))
        # cwd=REPO_ROOT: `-m harness` finds the package there even when the
        # suite runs without installing it; PYTHONPATH is the target's
        return subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                              timeout=300)

    return run


def checked_json(json_text: str) -> dict:
    check_contract(json_text)
    return json.loads(json_text)


def test_cli_exits_1_on_a_call_leak_and_its_json_meets_the_contract(cli):
    proc = cli(call("lh_callleak"), "lh_callleak")
    assert proc.returncode == 1, proc.stderr
    report = checked_json(proc.stdout)
    assert report["verdict"] == "leak" and report["module"] == "lh_callleak"


def test_cli_exits_0_on_the_clean_twin_and_its_json_meets_the_contract(cli):
    proc = cli(call("lh_callclean"), "lh_callclean", mode="legacy-subinterpreter")
    assert proc.returncode == 0, proc.stderr
    assert checked_json(proc.stdout)["verdict"] == "clean"


def test_cli_exits_0_on_an_unsupported_single_phase_module(cli):
    proc = cli("import lh_singlephase", "lh_singlephase", mode="subinterpreter")
    assert proc.returncode == 0, proc.stderr
    report = checked_json(proc.stdout)
    assert report["verdict"] == "unsupported"
    assert SINGLE_PHASE_REFUSAL in report["message"]


def test_cli_exits_3_on_a_crash_and_its_json_meets_the_contract(cli):
    proc = cli("import lh_crash", "lh_crash")
    assert proc.returncode == 3, proc.stderr
    report = checked_json(proc.stdout)
    assert report["verdict"] == "crash" and "SIGSEGV" in report["message"]


def test_cli_exits_3_when_the_case_raises(cli):
    proc = cli("raise ValueError('boom')", None)
    assert proc.returncode == 3, proc.stderr
    report = checked_json(proc.stdout)
    assert report["verdict"] == "error" and "ValueError: boom" in report["message"]


def test_cli_exits_2_when_the_target_python_does_not_exist(cli, tmp_path):
    proc = cli("pass", None, python=str(tmp_path / "no-such-python"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr  # a user error is one clear line, not a bug
