"""The pytest plugin under faults: a crashed xdist worker's results are not dropped from
the summary, and a typo in `leak_check` fails the test instead of switching it off."""

from __future__ import annotations

import re
from importlib.metadata import entry_points

import pytest

from fixtures.targets import missing

pytest_plugins = ["pytester"]


@pytest.fixture
def plugin_session(pytester, target_for):
    if not any(e.name == "leak_harness" for e in entry_points(group="pytest11")):
        missing("the leak_harness pytest11 entry point is not installed (pip install -e .)")
    pytester.python = target_for("3.12").executable
    return pytester


def run(pytester, *args, timeout=300):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                         f"--leak-python={pytester.python}", *args, timeout=timeout)


def summary(result) -> str:
    text = result.stdout.str()
    assert "leak-harness summary" in text, text
    return text.split("leak-harness summary", 1)[1]


def test_leak_check_bogus_mode_fails(plugin_session):
    plugin_session.makepyfile(test_typo="""
        def test_typo(leak_check):
            leak_check("pass", mode="bogus", cycles=4, warmup=1)

        def test_known_mode_runs(leak_check):
            # the twin: the same call with a real mode measures
            assert leak_check("pass", mode="finalize", cycles=4, warmup=1).verdict == "clean"
    """)
    result = run(plugin_session)
    result.assert_outcomes(failed=1, passed=1)
    assert "unknown mode 'bogus'" in result.stdout.str()


def test_crashed_xdist_worker_tests_are_reported_as_errors(plugin_session):
    pytest.importorskip("xdist")
    plugin_session.makepyfile(test_a="""
        import os, signal
        import pytest

        @pytest.mark.no_leaks(warmup=1, repeats=2)
        @pytest.mark.parametrize("n", range(5))
        def test_fine_then(n):
            [n] * 10

        @pytest.mark.no_leaks(warmup=1, repeats=2)
        def test_z_segfaults():
            os.kill(os.getpid(), signal.SIGSEGV)
    """, test_b="""
        import pytest

        @pytest.mark.no_leaks(warmup=1, repeats=2)
        @pytest.mark.parametrize("n", range(6))
        def test_other(n):
            (n,) * 10
    """)
    result = run(plugin_session, "-p", "xdist", "-n", "2", "--dist", "loadfile",
                 "--max-worker-restart", "1")
    text = summary(result)
    rows = [line for line in text.splitlines() if line.startswith(("test_a.py::", "test_b.py::"))]
    # every test is in the table: 5 + 6 measured, and the one the worker died in
    assert len(rows) == 12, text
    crashed = [r for r in rows if "test_z_segfaults" in r]
    assert len(crashed) == 1 and " error " in crashed[0], text
    assert sum("test_fine_then" in r for r in rows) == 5
    assert re.search(r"worker gw\d crashed: 5 row\(s\) from its reports, 1 test\(s\) it died in",
                     text), text
    assert "6 row(s)" not in text   # the healthy worker's rows came through workeroutput
