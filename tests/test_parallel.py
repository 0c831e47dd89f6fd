"""`--mode parallel --threads N`: N threads, each an own-GIL subinterpreter per cycle.

The host's samples are process totals after each round of N interpreter
cycles; the engine reports growth per *interpreter* cycle.  So the per-call
leak of lh_callleak (one tuple and 8 ints, 9 blocks a call) must show as 9
blocks per cycle at 2 threads too, not 18, while its twin stays clean.
"""

from __future__ import annotations

import os
import time

import pytest

from harness.cases.model import Case
from harness.cli import main as cli_main
from harness.engine import Engine
from harness.settings import RunSettings
from harness.errors import HarnessError

PARALLEL_PYTHONS = ("3.12", "3.13")
CYCLES, WARMUP, THREADS = 8, 2, 2


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()  # one per module: each (python, threads) control measured once


def parallel(engine, fixture_modules_for, python_id: str, code: str, module: str,
             timeout: float = 60.0, cycles: int = CYCLES):
    built = fixture_modules_for(python_id)
    settings = RunSettings(python=built.target.executable, mode="parallel", threads=THREADS,
                           cycles=cycles, warmup=WARMUP, timeout=timeout,
                           pythonpath=(str(built.directory),))
    return engine.run(Case(name=module, code=code, module=module), settings)


def call(module: str) -> str:
    return f"import {module}\n{module}.f()"


@pytest.mark.parametrize("python_id", PARALLEL_PYTHONS)
def test_call_leak_is_flagged_per_interpreter_cycle_under_two_threads(engine, fixture_modules_for,
                                                                      python_id):
    result = parallel(engine, fixture_modules_for, python_id, call("lh_callleak"), "lh_callleak")
    assert result.verdict == "leak", result.message
    # 9 blocks per call, one call per interpreter: per interpreter cycle, not per round of 2
    assert result.excess["blocks"] == pytest.approx(9, abs=1.5), result.excess
    assert result.evidence["threads"] == THREADS
    assert result.evidence["cycles_per_s"] > 0 and result.evidence["control_cycles_per_s"] > 0
    assert "2 threads" in result.message


@pytest.mark.parametrize("python_id", PARALLEL_PYTHONS)
def test_clean_twin_is_clean_under_two_threads(engine, fixture_modules_for, python_id):
    result = parallel(engine, fixture_modules_for, python_id, call("lh_callclean"), "lh_callclean")
    assert result.verdict == "clean", result.message
    # the `pass` control ran the same 2 threads: CPython's ~1,500-2,000 blocks
    # per interpreter are in the control, none of it in the excess
    assert result.control["per_cycle"]["blocks"] > 1000
    assert abs(result.excess["blocks"]) < 3


def test_single_phase_module_is_unsupported_in_parallel(engine, fixture_modules_for):
    result = parallel(engine, fixture_modules_for, "3.12", "import lh_singlephase", "lh_singlephase")
    assert result.verdict == "unsupported"
    assert "does not support loading in subinterpreters" in result.message


def test_hang_in_one_thread_is_a_timeout_with_each_threads_last_cycle(engine, fixture_modules_for,
                                                                      tmp_path):
    # Each interpreter takes a ticket (an O_EXCL file, atomic across threads);
    # ticket 5 blocks forever, in round 3: one thread is stuck in its cycle 3,
    # the other ended cycle 3 and waits at the round's barrier.
    tickets = tmp_path / "tickets"
    tickets.mkdir()
    code = (
        "import os, time\n"
        f"d = {str(tickets)!r}\n"
        "n = 1\n"
        "while True:\n"
        "    try:\n"
        "        os.close(os.open(os.path.join(d, str(n)), os.O_CREAT | os.O_EXCL)); break\n"
        "    except FileExistsError:\n"
        "        n += 1\n"
        "if n == 5:\n"
        "    time.sleep(3600)\n"
    )
    started = time.monotonic()
    result = parallel(engine, fixture_modules_for, "3.12", code, "hang", timeout=8.0, cycles=4)
    assert result.verdict == "timeout", result.message
    assert time.monotonic() - started < 60
    note = result.message.splitlines()[0]
    lasts = sorted(int(part.rsplit(" ", 1)[1]) for part in note.split("(", 1)[1].rstrip(")").split("; "))
    assert lasts == [2, 3], note
    assert "thread 0: last cycle" in note and "thread 1: last cycle" in note


def test_threads_default_to_the_cpu_count_and_key_the_control():
    default = RunSettings(mode="parallel")
    assert default.thread_count == (os.cpu_count() or 1)
    # --threads survives a sweep's mode swap, and means nothing outside parallel
    finalize = RunSettings(mode="finalize", threads=3)
    assert finalize.thread_count is None
    from dataclasses import replace
    assert replace(finalize, mode="parallel").thread_count == 3
    with pytest.raises(HarnessError):
        RunSettings(mode="parallel", threads=0)


def test_cli_refuses_threads_without_parallel_and_parallel_before_312(capsys, target_for):
    assert cli_main(["run", "-c", "pass", "--mode", "finalize", "--threads", "2"]) == 2
    assert "--threads applies to --mode parallel only" in capsys.readouterr().err
    old = target_for("3.11")
    assert cli_main(["run", "-c", "pass", "--mode", "parallel", "--python", old.executable]) == 2
    assert "needs Python 3.12+" in capsys.readouterr().err


@pytest.mark.parametrize("python_id", ["3.12"])
def test_parallel_json_reports_per_interpreter_growth_and_throughput(capsys, fixture_modules_for,
                                                                     python_id, monkeypatch):
    built = fixture_modules_for(python_id)
    monkeypatch.setenv("PYTHONPATH", str(built.directory))
    code = cli_main(["run", "-c", call("lh_callleak"), "--python", built.target.executable,
                     "--mode", "parallel", "--threads", "2", "--cycles", "8", "--warmup", "2",
                     "--json"])
    import json
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["verdict"] == "leak" and report["mode"] == "parallel"
    assert report["evidence"]["threads"] == 2
    assert report["excess"]["blocks"] == pytest.approx(9, abs=1.5)
