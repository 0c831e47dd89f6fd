"""The memray backend on the fixture extensions, with real memray in the target.

Measured (8 cycles after 2 warm-up, 3.12.1 / 3.13.0, isolated
subinterpreters): the `pass` control leaves 1,487 / 1,975 blocks per cycle
alive (the counters backend's numbers, block for block); lh_mallocleak adds
exactly its 4,096-byte malloc per cycle, charged to lh_mallocleak from its
`exec_module` frame; lh_callleak's 10 calls strand 90 objects per cycle,
charged to lh_callleak from its `f` frame.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fixtures.contract import check_contract
from fixtures.targets import REPO_ROOT
from harness.cases.model import Case
from harness.engine import Engine
from harness.settings import RunSettings

CYCLES, WARMUP = 8, 2
CALLS = "for _ in range(10):\n    {m}.f()\n"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


def run(engine, target, fixtures, module, mode="subinterpreter", calls=False, **extra):
    code = f"import {module}\n" + (CALLS.format(m=module) if calls else "")
    settings = RunSettings(python=target.executable, mode=mode, backend="memray", cycles=CYCLES,
                           warmup=WARMUP, pythonpath=(str(fixtures.directory),), **extra)
    return engine.run(Case(name=module, code=code, module=module), settings)


def top_site(result) -> dict:
    return result.sites[0]


@pytest.mark.parametrize("python_id", ["3.12", "3.13"])
def test_malloc_in_module_state_is_found_and_named(engine, memray_target, fixture_modules_for,
                                                   python_id):
    target = memray_target(python_id)
    result = run(engine, target, fixture_modules_for(python_id), "lh_mallocleak")
    assert result.verdict == "leak", result.message
    site = top_site(result)
    assert site["module"] == "lh_mallocleak"
    assert site["excess_bytes_per_cycle"] == 4096.0
    assert site["top_stacks"][0]["frames"][0]["function"] == "exec_module"
    assert "mallocleak.c" in site["top_stacks"][0]["frames"][0]["where"]
    # the control is CPython's own: every ended interpreter leaves blocks behind
    assert result.control["per_cycle"]["blocks"] > 1000


def test_call_leak_is_found_and_named(engine, memray_target, fixture_modules_for):
    target = memray_target("3.12")
    result = run(engine, target, fixture_modules_for("3.12"), "lh_callleak", calls=True)
    assert result.verdict == "leak", result.message
    site = top_site(result)
    assert site["module"] == "lh_callleak"
    # 10 calls a cycle, each a tuple and 8 ints
    assert 80 <= site["excess_blocks_per_cycle"] <= 90
    assert result.excess["blocks"] >= 80


def test_call_leak_in_legacy_subinterpreters(engine, memray_target, fixture_modules_for):
    target = memray_target("3.13")
    result = run(engine, target, fixture_modules_for("3.13"), "lh_callleak",
                 mode="legacy-subinterpreter", calls=True)
    assert result.verdict == "leak", result.message
    assert top_site(result)["module"] == "lh_callleak"


@pytest.mark.parametrize("module,calls", [("lh_mallocclean", False), ("lh_callclean", True),
                                          ("lh_oncecache", False)])
def test_clean_twins_and_one_time_cache_are_clean(engine, memray_target, fixture_modules_for,
                                                  module, calls):
    target = memray_target("3.12")
    result = run(engine, target, fixture_modules_for("3.12"), module, calls=calls)
    assert result.verdict == "clean", result.message
    assert all(s["excess_bytes_per_cycle"] < 128 for s in result.sites), result.sites


def test_keep_capture_names_a_file_memray_can_read(memray_target, fixture_modules_for, tmp_path):
    """Through the CLI: --json follows the contract and names the kept capture."""
    target = memray_target("3.12")
    fixtures = fixture_modules_for("3.12")
    keep = tmp_path / "captures"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "-c", "import lh_mallocleak",
         "--module", "lh_mallocleak", "--python", target.executable, "--mode", "subinterpreter",
         "--backend", "memray", "--cycles", "6", "--warmup", "1", "--keep-capture", str(keep),
         "--json"],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
        env={**__import__("os").environ, "PYTHONPATH": str(fixtures.directory)})
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    capture = result["evidence"]["capture_file"]
    assert capture.startswith(str(keep)) and result["sites"][0]["module"] == "lh_mallocleak"
    # the kept file is a real capture: the target's memray reads it back
    read = subprocess.run(
        [target.executable, "-c",
         "import sys, memray; r = memray.FileReader(sys.argv[1]); "
         "print(sum(a.size for a in r.get_leaked_allocation_records() "
         "if any(f[0] == 'exec_module' for f in a.native_stack_trace())))", capture],
        capture_output=True, text=True, timeout=120)
    assert read.returncode == 0, read.stderr
    assert int(read.stdout) == 6 * 4096   # the module's malloc, once per measured cycle
    check_contract(proc.stdout)


def test_finalize_mode_is_refused_with_the_reason(memray_target):
    target = memray_target("3.12")
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "-c", "pass", "--python", target.executable,
         "--mode", "finalize", "--backend", "memray"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 2
    assert "finalize" in proc.stderr + proc.stdout
    assert "Py_FinalizeEx" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_missing_memray_in_the_target_is_a_clear_error(target_for, tmp_path):
    """A real interpreter without memray: a venv of the target, no packages."""
    base = target_for("3.12")
    env_dir = tmp_path / "bare"
    subprocess.run([base.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True,
                   timeout=120)
    bare = env_dir / "bin" / "python3"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "-c", "pass", "--python", str(bare),
         "--mode", "subinterpreter", "--backend", "memray"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "-m pip install memray" in proc.stderr
    assert "Traceback" not in proc.stderr
