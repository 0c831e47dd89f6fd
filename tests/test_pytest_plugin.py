"""The pytest plugin in real pytest sessions (pytester, in subprocesses).

Leaky and clean C fixture extensions (tests/fixtures/ext) are imported by the
target Python 3.12 through the test session's sys.path (a conftest inserts
their directory), so each test proves the path reaches the target too.
Few cycles (8 after 2 warm-up): the point here is the plumbing, not the rule.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points

import pytest

from fixtures.targets import REPO_ROOT, missing

pytest_plugins = ["pytester"]
PY = "3.12"
FAST = ("--leak-cycle-count", "8", "--leak-warmup", "2")


@pytest.fixture
def session(pytester, fixture_modules_for, monkeypatch):
    """A pytester dir whose conftest puts the 3.12 fixture extensions on sys.path.

    The subprocess must test this checkout's plugin, not whatever `harness`
    another install left on the path: the checkout goes first on PYTHONPATH
    and the conftest refuses to run against any other copy.
    """
    if not any(e.name == "leak_harness" for e in entry_points(group="pytest11")):
        missing("the leak_harness pytest11 entry point is not installed (pip install -e .)")
    modules = fixture_modules_for(PY)
    inherited = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(REPO_ROOT), inherited) if p))
    pytester.makeconftest(
        f"import os, sys\nsys.path.insert(0, {str(modules.directory)!r})\n"
        "import harness\n"
        f"assert os.path.realpath(harness.__file__).startswith({str(REPO_ROOT / 'harness')!r} + os.sep), "
        "f'the plugin under test is {harness.__file__}, not this checkout'\n")
    pytester.python = str(modules.target.executable)
    return pytester


def run(pytester, *args, timeout=240):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--leak-python={pytester.python}",
                                         *args, timeout=timeout)


def summary_rows(result) -> list[str]:
    text = result.stdout.str()
    assert "leak-harness summary" in text, text
    rows = []
    for line in text.split("leak-harness summary", 1)[1].splitlines()[2:]:
        if re.match(r"^\d+ [a-z]+(, \d+ [a-z]+)*$", line):
            return rows   # the verdict counts end the table
        rows.append(line)
    raise AssertionError(f"no end to the summary table:\n{text}")


def test_fixture_fails_leaky_extension_and_passes_clean_twin(session, tmp_path):
    session.makepyfile(test_ext="""
        def test_leaky(leak_check):
            leak_check.assert_clean("import lh_callleak; lh_callleak.f()", module="lh_callleak",
                                    mode="subinterpreter", cycles=8, warmup=2)

        def test_clean_twin(leak_check):
            leak_check.assert_clean("import lh_callclean; lh_callclean.f()", module="lh_callclean",
                                    mode="subinterpreter", cycles=8, warmup=2)

        def test_result_object(leak_check):
            result = leak_check("import lh_callleak; lh_callleak.f()", module="lh_callleak",
                                mode="subinterpreter", cycles=8, warmup=2)
            assert result.verdict == "leak" and result.excess["blocks"] >= 8
            assert len(result.per_cycle) >= 4 and result.sites == []
            assert result.to_json()["module"] == "lh_callleak"
    """)
    junit = tmp_path / "junit.xml"
    result = run(session, f"--junitxml={junit}")
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    # the readable failure: verdict, growth over the control, no traceback
    assert "lh_callleak) on Python 3.12" in out and "in mode subinterpreter: leak" in out
    assert re.search(r"blocks +per cycle: case \+[\d,]+, control \+[\d,]+, excess \+(9|10)", out), out
    rows = summary_rows(result)
    assert len(rows) == 3
    leaky = next(r for r in rows if "test_leaky" in r).split()
    assert leaky[1:5] == ["lh_callleak", "3.12.1", "subinterpreter", "leak"] and int(leaky[5]) >= 9
    assert "clean" in next(r for r in rows if "test_clean_twin" in r).split()
    cases = {tc.get("name"): {p.get("name"): p.get("value") for p in tc.iter("property")}
             for tc in ET.parse(junit).iter("testcase")}
    assert cases["test_leaky"]["leak_verdict"] == "leak"
    assert float(cases["test_leaky"]["leak_blocks"]) >= 9.0
    assert cases["test_clean_twin"]["leak_verdict"] == "clean"
    assert cases["test_clean_twin"]["leak_mode"] == "subinterpreter"


def test_marker_and_no_leaks_option(pytester):
    pytester.makepyfile(test_mark="""
        import os
        import pytest
        kept = []

        @pytest.mark.no_leaks
        def test_marked_leaky():
            kept.append([object() for _ in range(4)])

        @pytest.mark.no_leaks(warmup=2, repeats=4)
        def test_marked_clean():
            [object() for _ in range(4)]

        @pytest.mark.no_leaks(max_blocks=50)
        def test_within_limit():
            kept.append(object())

        @pytest.mark.no_leaks
        def test_fd_leak():
            kept.append(os.open(os.devnull, os.O_RDONLY) + 1000)

        @pytest.mark.no_leaks(repeat=3)
        def test_bad_marker():
            pass

        def test_unmarked_leaky():
            kept.append(object())
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=3)
    out = result.stdout.str()
    assert "no_leaks: blocks grew in every one of 6 repetitions after 3 warm-up" in out
    assert "LEAK fds: deltas [1, 1, 1, 1, 1, 1]" in out
    assert "@pytest.mark.no_leaks takes keyword arguments" in out and "'repeat'" in out
    rows = summary_rows(result)
    assert len(rows) == 4   # every marked test measured; the unmarked one is not repeated
    assert "in-process 2:4" in next(r for r in rows if "test_marked_clean" in r)

    everything = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--no-leaks",
                                               "--no-leaks-repeats", "1:3", "-k", "unmarked")
    everything.assert_outcomes(failed=1)
    assert "grew in every one of 3 repetitions after 1 warm-up" in everything.stdout.str()
    assert "in-process 1:3" in summary_rows(everything)[0]


CASES = {
    "leaky-call": 'module = "lh_callleak"\nmodes = ["subinterpreter"]\n'
                  'body = "import lh_callleak; lh_callleak.f()"\ntags = ["fixture"]\n',
    "clean-call": 'module = "lh_callclean"\nbody = "import lh_callclean; lh_callclean.f()"\n',
    "crashing": 'module = "lh_crash"\nmodes = ["finalize"]\nbody = "import lh_crash"\n',
    "raising": 'module = "json"\nmodes = ["finalize"]\nbody = "raise ValueError(\'boom\')"\n',
    "single-phase": 'module = "lh_singlephase"\nmodes = ["subinterpreter"]\nbody = "import lh_singlephase"\n',
    "too-new": 'module = "json"\nmodes = ["finalize"]\nbody = "import json"\n'
               '[requires]\npython = ">=4.0"\n',
}


def test_case_files_map_verdicts_to_outcomes(session):
    cases = session.mkdir("cases")
    for name, text in CASES.items():
        (cases / f"{name}.toml").write_text(text)
    tests = session.mkdir("tests")
    (tests / "leak_extra.toml").write_text('module = "json"\nmodes = ["finalize"]\nbody = "import json"\n')
    (tests / "other.toml").write_text("not = 'a case'\n")   # not a case file name: ignored
    result = run(session, *FAST, "-rA")
    out = result.stdout.str()
    result.assert_outcomes(passed=3, failed=1, errors=2, skipped=2)
    assert re.search(r"PASSED cases/clean-call\.toml::clean-call\[finalize\]", out)
    assert re.search(r"PASSED cases/clean-call\.toml::clean-call\[subinterpreter\]", out)
    assert re.search(r"PASSED tests/leak_extra\.toml::leak_extra\[finalize\]", out)
    # a leak is a failure (counted, exit 1) that reads as one: LEAKED
    assert re.search(r"LEAKED cases/leaky-call\.toml::leaky-call\[subinterpreter\]", out)
    assert re.search(r"ERROR cases/crashing\.toml::crashing\[finalize\] .*crash", out)
    assert re.search(r"ERROR cases/raising\.toml::raising\[finalize\]", out)
    assert "the case raised ValueError" in out and "host killed by SIGSEGV" in out
    assert "module lh_singlephase does not support loading in subinterpreters" in out
    assert "needs Python >=4.0" in out
    rows = summary_rows(result)
    assert {r.split()[0] for r in rows} >= {"cases/leaky-call.toml::leaky-call[subinterpreter]",
                                             "cases/crashing.toml::crashing[finalize]"}
    assert any("single-phase" in r and "unsupported" in r for r in rows)

    tagged = run(session, *FAST, "-k", "fixture", "cases")
    tagged.assert_outcomes(failed=1)


def test_invalid_case_file_is_a_collection_error_naming_file_and_field(session):
    session.mkdir("cases")
    (session.path / "cases" / "bad.toml").write_text('module = "json"\nbody = "pass"\nmodes = ["x"]\n')
    result = run(session, "cases")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert re.search(r"cases/bad\.toml: field 'modes': unknown mode 'x'", result.stdout.str())


def test_options_and_ini(session, target_for):
    session.makeini(f"""
        [pytest]
        leak_python = {session.python}
        leak_mode = legacy-subinterpreter
        leak_cycles = 6
        leak_warmup = 1
        leak_fixed_cycles = true
    """)
    session.mkdir("cases")
    (session.path / "cases" / "plain.toml").write_text('module = "json"\nbody = "import json"\n')
    collected = session.runpytest_subprocess("--collect-only", "-q")
    assert "cases/plain.toml::plain[legacy-subinterpreter]" in collected.stdout.str()
    other = target_for("3.13").executable
    both = session.runpytest_subprocess("--collect-only", "-q", "--leak-mode", "finalize",
                                        f"--leak-python={session.python}", f"--leak-python={other}")
    ids = set(re.findall(r"plain\[(\S+)\]", both.stdout.str()))
    assert ids == {"3.12.1-finalize", "3.13.0-finalize"}
    session.makepyfile(test_fx="""
        def test_defaults(leak_check):
            result = leak_check("pass")
            assert (result.mode, result.cycles, result.warmup) == ("legacy-subinterpreter", 6, 1)
            assert result.cycle_stop["policy"] == "fixed"   # leak_fixed_cycles
            assert result.python["version"].startswith("3.12")
    """)
    ran = session.runpytest_subprocess("-p", "no:cacheprovider")
    ran.assert_outcomes(passed=2)
    assert "legacy-subinterpreter" in summary_rows(ran)[0]
    bad = session.runpytest_subprocess("--leak-cycle-count", "many")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "--leak-cycle-count: 'many' is not a number" in bad.stderr.str()
    bad_repeats = session.runpytest_subprocess("--no-leaks-repeats", "3")
    assert bad_repeats.ret == pytest.ExitCode.USAGE_ERROR
    assert "expected WARMUP:REPEATS" in bad_repeats.stderr.str()


def test_p_no_leak_harness_turns_it_off(session):
    session.mkdir("cases")
    (session.path / "cases" / "plain.toml").write_text('module = "json"\nbody = "import json"\n')
    session.makepyfile(test_fx="def test_fx(leak_check):\n    pass\n")
    result = session.runpytest_subprocess("-p", "no:leak_harness", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert "fixture 'leak_check' not found" in result.stdout.str()
    assert "plain" not in result.stdout.str() and "leak-harness summary" not in result.stdout.str()


def test_xdist_aggregates_rows_and_measures_the_control_once_per_worker(session):
    session.makepyfile(test_many="""
        import pytest

        @pytest.mark.parametrize("module", ["lh_callleak", "lh_callclean"] * 3)
        def test_call(leak_check, module):
            leak_check(f"import {module}; {module}.f()", module=module, mode="subinterpreter",
                       cycles=8, warmup=2)
    """)
    session.mkdir("cases")
    (session.path / "cases" / "clean-call.toml").write_text(
        'module = "lh_callclean"\nmodes = ["subinterpreter"]\ncycles = 8\n'
        'body = "import lh_callclean; lh_callclean.f()"\n')
    result = run(session, "-p", "xdist", "-n", "2", "--leak-warmup", "2", ".", "cases")
    result.assert_outcomes(passed=7)
    rows = summary_rows(result)
    assert len(rows) == 7
    assert sum("lh_callleak" in r and " leak " in r for r in rows) == 3
    match = re.search(r"controls measured \(.*\): (\d+) \(gw0: (\d+), gw1: (\d+)\)", result.stdout.str())
    assert match, result.stdout.str()
    # 7 results, one control per worker (same Python, mode, cycles): not one per test
    assert int(match.group(2)) == 1 and int(match.group(3)) == 1
