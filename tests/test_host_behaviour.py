"""The host runs the target as the target would run, and measuring does not change it."""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

from harness.cases.model import code_case
from harness.engine import Engine
from harness.settings import RunSettings
from harness.host.build import build_host

ENGINE = Engine()


def settings(py: str, **kw) -> RunSettings:
    return RunSettings(python=py, **{"mode": "finalize", "cycles": 4, "warmup": 1, **kw})


def host_status(target, mode: str, code: str, cycles: int = 4) -> int:
    with tempfile.NamedTemporaryFile("w", suffix=".py") as case:
        case.write(code)
        case.flush()
        proc = subprocess.run([str(build_host(target)), mode, str(cycles), case.name, "2",
                               target.sys_executable], capture_output=True, timeout=120)
    return proc.returncode


@pytest.mark.parametrize("code", ["import json", "import asyncio", "import decimal"])
def test_the_allocator_hook_does_not_change_what_crashes(target_for, code):
    """3.12.1 crashes on its own in a finalize loop for some modules (asyncio,
    decimal: a double free in cycle 2). The hooked loop must end exactly as the
    bare one does, on every Python."""
    for python_id in ("3.11", "3.12", "3.13"):
        target = target_for(python_id)
        assert host_status(target, "finalize", code) == host_status(target, "bare-finalize", code), \
            (python_id, code)


def test_x_options_reach_the_target(target_for):
    py = target_for("3.12").executable
    check = "import sys\nassert sys.flags.dev_mode, 'no -X dev'"
    assert ENGINE.run(code_case(check), settings(py, xoptions=("dev",))).verdict == "clean"
    assert ENGINE.run(code_case(check), settings(py)).verdict == "error"


def test_pythonpath_from_the_environment_reaches_every_mode(target_for, tmp_path, monkeypatch):
    (tmp_path / "lh_env_path_probe.py").write_text("VALUE = 42\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    py = target_for("3.13").executable
    code = "import lh_env_path_probe\nassert lh_env_path_probe.VALUE == 42"
    for mode in ("finalize", "subinterpreter", "legacy-subinterpreter"):
        result = ENGINE.run(code_case(code), settings(py, mode=mode))
        assert result.verdict == "clean", (mode, result.message)


def test_site_is_off_by_default_and_on_with_site(target_for):
    py = target_for("3.11").executable
    check = "import sys\nassert 'site' in sys.modules, 'site not imported'"
    assert ENGINE.run(code_case(check), settings(py)).verdict == "error"
    assert ENGINE.run(code_case(check), settings(py, site=True)).verdict == "clean"


def test_leak_is_counted_to_the_block_over_the_control(target_for, fixture_modules_for):
    """lh_callleak.f() leaks a tuple of 8 fresh ints: 9 blocks a call, exactly;
    on 3.13 the module's interned name adds one, reported as interned."""
    for python_id in ("3.10", "3.13"):
        fixture_dir = fixture_modules_for(python_id).directory
        result = ENGINE.run(
            code_case("import lh_callleak\nfor _ in range(11): lh_callleak.f()", "lh_callleak"),
            settings(target_for(python_id).executable, cycles=6, pythonpath=(str(fixture_dir),)),
        )
        assert result.verdict == "leak"
        interned = result.evidence["interned_strings_per_cycle"]
        assert interned == (1 if python_id == "3.13" else 0)
        assert result.excess["blocks"] - interned == 99, python_id


def test_timeout_names_the_cycle_reached(target_for):
    py = target_for("3.11").executable
    code = "import os, time\nif os.environ.get('LH_HANG_AT') == 'now': time.sleep(600)"
    env_before = os.environ.get("LH_HANG_AT")
    os.environ["LH_HANG_AT"] = "now"
    try:
        result = ENGINE.run(code_case(code), settings(py, timeout=3.0))
    finally:
        if env_before is None:
            os.environ.pop("LH_HANG_AT")
        else:
            os.environ["LH_HANG_AT"] = env_before
    assert result.verdict == "timeout"
    assert "cycle 1 of 5" in result.message and result.exit_code == 3


def test_unsupported_keeps_cpythons_message(target_for):
    py = target_for("3.12").executable
    result = ENGINE.run(code_case("import _decimal"), settings(py, mode="subinterpreter"))
    assert result.verdict == "unsupported" and result.exit_code == 0
    assert result.message == ("ImportError: module _decimal does not support loading in "
                              "subinterpreters")


# counts the calls of PyDict_Next that reach libpython through the global
# scope: the host's, and libpython's own where its build binds them there
_COUNT_DICT_NEXT = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
typedef int (*next_fn)(void *, long *, void **, void **);
static long calls;
int PyDict_Next(void *dict, long *pos, void **key, void **value) {
    static next_fn real;
    if (!real) real = (next_fn)dlsym(RTLD_NEXT, "PyDict_Next");
    calls++;
    return real(dict, pos, key, value);
}
__attribute__((destructor)) static void report(void) {
    fprintf(stderr, "lh-test PyDict_Next calls: %ld\n", calls);
}
"""


@pytest.mark.parametrize("python_id", ["3.12", "3.13"])
def test_the_bare_host_does_not_walk_the_interned_strings(target_for, tmp_path, python_id):
    """The bare modes write no sample, so their host must not do the counting
    host's work: it is the benchmarks' floor (bench/sweep_time.py) and the
    crash reruns' run "without the harness".  The walk of the interned dict
    (PyDict_Next over every interned string, twice a cycle) was done by both;
    counted here at the calls of PyDict_Next."""
    target = target_for(python_id)
    source = tmp_path / "count.c"
    source.write_text(_COUNT_DICT_NEXT)
    library = tmp_path / "count.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(library), str(source), "-ldl"],
                   check=True, capture_output=True, timeout=120)
    case = tmp_path / "case.py"
    case.write_text("import json\n")

    def calls(mode: str) -> int:
        proc = subprocess.run([str(build_host(target)), mode, "3", str(case), "1",
                               target.sys_executable], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "LD_PRELOAD": str(library)})
        assert proc.returncode == 0, proc.stderr
        line = next(l for l in proc.stderr.splitlines() if l.startswith("lh-test PyDict_Next"))
        return int(line.rsplit(" ", 1)[1])

    # libpython's own calls are counted too (this build binds them through
    # the global scope): the same in both; the walk's are the difference,
    # thousands of interned strings twice a cycle (3.12.1: 25,133 calls
    # against 11,715; before, the bare host made as many as the counting one)
    hooked, bare = calls("finalize"), calls("bare-finalize")
    assert hooked - bare > 3 * 2 * 1000, (hooked, bare)


@pytest.fixture
def cores_allowed():
    """The soft RLIMIT_CORE raised to the hard one, as `ulimit -c unlimited`
    has it, for the hosts this test starts (they inherit it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    if hard == 0:
        pytest.fail("the hard RLIMIT_CORE is 0 here: no host could dump core either way")
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
    yield hard
    resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


def test_a_host_never_dumps_core_even_where_ulimit_allows_one(target_for, fixture_modules_for,
                                                              tmp_path, monkeypatch, cores_allowed):
    """With `ulimit -c unlimited` and the kernel's default core_pattern, every
    crashing host (and its bare rerun) left a `core` in the harness's
    directory: 93 MB for 3.12.1's `import decimal` in finalize.  The crash
    handler reports where it died; the host runs with a soft core limit of 0.
    Seen from inside the case, and, where core_pattern writes a file, on a
    real crash against the same host started without --no-core-dump."""
    target = target_for("3.12")
    check = ("import resource\n"
             "assert resource.getrlimit(resource.RLIMIT_CORE)[0] == 0, resource.getrlimit(resource.RLIMIT_CORE)\n")
    for mode, host in (("finalize", "c"), ("subinterpreter", "c"), ("subinterpreter", "python")):
        seen = ENGINE.run(code_case(check), settings(target.executable, mode=mode, host=host))
        assert seen.verdict == "clean", (mode, host, seen.message)
    with open("/proc/sys/kernel/core_pattern") as f:
        pattern = f.read().strip()
    if pattern.startswith("|") or "/" in pattern:
        return   # a collector, or a file elsewhere: the limit seen above is the check
    fixtures = fixture_modules_for("3.12")
    monkeypatch.chdir(tmp_path)
    crash = Engine().run(code_case("import lh_crash"), settings(
        target.executable, pythonpath=(str(fixtures.directory),)))
    assert crash.verdict == "crash", crash.message
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("core")]
    # the same crash without the flag does leave one: the check above can fail
    (tmp_path / "case.py").write_text("import lh_crash\n")
    proc = subprocess.run([str(build_host(target)), "bare-finalize", "1", "case.py", "1",
                           target.sys_executable], capture_output=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(fixtures.directory)})
    assert proc.returncode < 0, proc.stderr
    cores = [p for p in tmp_path.iterdir() if p.name.startswith("core")]
    assert cores, pattern
    for core in cores:
        core.unlink()
