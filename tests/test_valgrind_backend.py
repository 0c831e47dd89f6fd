"""The valgrind backend on the fixture extensions: real valgrind, real hosts.

Few cycles (1 warm-up + 4): memcheck's per-cycle leak checks count exactly,
so the control is flat (CPython's own leaks are suppressed) and a leak of
one block a cycle stands out at once.  One Engine per module: the `pass`
control and the extension-import probe are measured once per Python and mode.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from fixtures.contract import check_contract
from fixtures.targets import REPO_ROOT, missing
from harness.backends.valgrind.backend import METHOD_ENV, VALGRIND_ENV
from harness.cases.model import Case
from harness.engine import Engine
from harness.settings import RunSettings
from harness.result import Result

CYCLES, WARMUP = 4, 1
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def valgrind_present():
    if shutil.which("valgrind") is None:
        missing("valgrind not installed (apt-get install valgrind)")


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


def settings_for(built, mode: str, timeout: float = 600.0, cycles: int = CYCLES) -> RunSettings:
    return RunSettings(python=built.target.executable, mode=mode, backend="valgrind",
                       cycles=cycles, warmup=WARMUP, timeout=timeout,
                       pythonpath=(str(built.directory),))


@pytest.fixture
def run_valgrind(engine, fixture_modules_for):
    def run(python_id: str, mode: str, module: str, code: str | None = None) -> Result:
        built = fixture_modules_for(python_id)
        case = Case(name=module, code=code or f"import {module}", module=module)
        return engine.run(case, settings_for(built, mode))
    return run


def top_site(result: Result) -> dict:
    assert result.sites, result.message
    return result.sites[0]


@pytest.mark.parametrize("mode", ["finalize", "subinterpreter"])
def test_malloc_in_module_state_is_a_leak_attributed_to_the_module(run_valgrind, mode):
    result = run_valgrind("3.12", mode, "lh_mallocleak")
    assert result.verdict == "leak", result.message
    site = top_site(result)
    assert site["module"] == "lh_mallocleak" and site["attributed_by"] == "extension"
    assert site["bytes_per_cycle"] == 4096 and site["blocks_per_cycle"] == 1
    assert site["at"].startswith("mallocleak.c:")
    assert result.excess["bytes"] >= 4096
    vg = result.evidence["valgrind"]
    assert vg["method"] == "client-requests" and vg["xml_complete"]
    # the version file removed CPython's own records, and says so
    version_file = [s for s in vg["suppressions"] if s["file"].endswith("cpython-3.12.supp")]
    assert version_file and version_file[0]["matched"] > 0
    assert vg["differential_cross_check"]["bytes"] >= 4096


def test_clean_twin_of_the_malloc_leak_is_clean(run_valgrind):
    result = run_valgrind("3.12", "finalize", "lh_mallocclean")
    assert result.verdict == "clean", result.message
    assert not [s for s in result.sites if s["module"] == "lh_mallocclean" and s["attributed_by"] == "extension"]


def test_one_time_cache_is_clean(run_valgrind):
    result = run_valgrind("3.12", "finalize", "lh_oncecache")
    assert result.verdict == "clean", result.message


def test_reference_leak_per_call_is_a_leak_attributed_to_the_module(run_valgrind):
    result = run_valgrind("3.12", "finalize", "lh_callleak",
                          "import lh_callleak\nfor _ in range(3):\n    lh_callleak.f()")
    assert result.verdict == "leak", result.message
    site = top_site(result)
    assert site["module"] == "lh_callleak"
    # three tuples a cycle, with their ints (indirectly lost) in the bytes
    assert site["blocks_per_cycle"] == 3 and site["bytes_per_cycle"] > 3 * 100
    assert any(frame["where"].startswith("callleak.c:") for frame in site["stack"])


def test_read_after_free_at_module_free_is_an_error(run_valgrind):
    result = run_valgrind("3.12", "finalize", "lh_uaf")
    assert result.verdict == "error", result.message
    (error,) = result.errors
    assert error["kind"] == "InvalidRead" and error["module"] == "lh_uaf"
    assert error["at"].startswith("uaf.c:") and error["count"] == WARMUP + CYCLES
    assert "free'd" in error["aux"][0]["what"]
    assert result.exit_code == 3


def test_clean_twin_of_the_read_after_free_has_no_errors(run_valgrind):
    result = run_valgrind("3.12", "finalize", "lh_uafclean")
    assert result.verdict == "clean", result.message
    assert result.errors == []


def test_differential_counts_without_client_requests(fixture_modules_for, monkeypatch):
    """The fallback: two runs (k1 = W + 1, k2 = W + C cycles), exit leak checks only."""
    monkeypatch.setenv(METHOD_ENV, "differential")
    built = fixture_modules_for("3.12")
    engine = Engine()   # not the shared one: its controls were measured per cycle
    leak = engine.run(Case("lh_mallocleak", "import lh_mallocleak", "lh_mallocleak"),
                      settings_for(built, "finalize"))
    assert leak.verdict == "leak", leak.message
    assert leak.evidence["valgrind"]["method"] == "differential"
    assert leak.evidence["valgrind"]["differential"] == {"k1": WARMUP + 1, "k2": WARMUP + CYCLES}
    assert top_site(leak)["module"] == "lh_mallocleak"
    assert top_site(leak)["bytes_per_cycle"] == 4096
    clean = engine.run(Case("lh_mallocclean", "import lh_mallocclean", "lh_mallocclean"),
                       settings_for(built, "finalize"))
    assert clean.verdict == "clean", clean.message


def test_timeout_reports_the_cycle_reached(fixture_modules_for):
    built = fixture_modules_for("3.12")
    result = Engine().run(Case("lh_mallocleak", "import lh_mallocleak", "lh_mallocleak"),
                          settings_for(built, "finalize", timeout=8.0, cycles=400))
    assert result.verdict == "timeout"
    assert "no end after 8 s" in result.message and "of 401" in result.message


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, timeout=900, cwd=REPO_ROOT, env={**os.environ, **(env or {})})


def test_run_json_on_313_follows_the_contract(fixture_modules_for, tmp_path):
    built = fixture_modules_for("3.13")
    proc = _cli("run", "-c", "import lh_mallocleak", "--module", "lh_mallocleak",
                "--python", built.target.executable, "--backend", "valgrind",
                "--cycles", str(CYCLES), "--warmup", str(WARMUP), "--timeout", "600", "--json",
                env={"PYTHONPATH": str(built.directory)})
    assert proc.returncode == 1, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert data["backend"] == "valgrind" and data["verdict"] == "leak"
    assert data["sites"][0]["module"] == "lh_mallocleak"
    assert data["errors"] == []
    out = tmp_path / "result.json"
    out.write_text(proc.stdout)
    check_contract(path=out)


def test_missing_valgrind_is_a_clear_exit_2():
    proc = _cli("run", "-c", "pass", "--backend", "valgrind",
                env={VALGRIND_ENV: "/nonexistent/valgrind"})
    assert proc.returncode == 2
    assert "valgrind not found" in proc.stderr and "apt-get install valgrind" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_too_old_valgrind_is_a_clear_exit_2(tmp_path):
    old = tmp_path / "valgrind"
    old.write_text("#!/bin/sh\necho valgrind-3.8.1\n")
    old.chmod(0o755)
    proc = _cli("run", "-c", "pass", "--backend", "valgrind", env={VALGRIND_ENV: str(old)})
    assert proc.returncode == 2
    assert "3.8.1" in proc.stderr and "too old" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_extra_suppression_file_is_a_clear_exit_2():
    proc = _cli("run", "-c", "pass", "--backend", "valgrind", "--suppressions", "/nonexistent.supp")
    assert proc.returncode == 2 and "/nonexistent.supp does not exist" in proc.stderr


def test_generated_suppressions_cover_the_control_and_nothing_of_an_extension(target_for, tmp_path):
    target = target_for("3.12")
    out = tmp_path / "gen.supp"
    proc = _cli("suppressions", "generate", "--python", target.executable, "--mode", "finalize",
                "--cycles", "4", "--warmup", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    # one entry per distinct function-level stack of the records (401 records on 3.12.1)
    entries = text.count("\n{\n")
    assert entries > 50
    assert "..." not in text and "lh_" not in text.replace("lh-cpython", "")
    assert "Memcheck:Leak" in text and "match-leak-kinds: definite,indirect,possible" in text
    # the run with it uses it (and it is listed)
    listed = _cli("suppressions", "list", "--python", target.executable, "--suppressions", str(out))
    assert str(out) in listed.stdout
