"""Shrinking a leaking script, module set and test set to the minimal culprit.

The ddmin core and the statement splitter are pure and tested on their
own; the three kinds are then run for real through the CLI on Python 3.11
(finalize mode, 6 cycles after 2 warm-up), where a 9-block leak per cycle
stands out (3.12+ discounts the strings a module interns, and json's 1,100
interned strings a cycle would hide it in the tolerance).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.tools.bisect.ddmin import Probe, Shrinker
from harness.cli import main
from harness.errors import CaseError
from harness.tools.bisect.statements import closure, render, split_statements

PYTHON_ID = "3.11"
FAST = ["--cycles", "6", "--warmup", "2", "--jobs", "2"]
PAIRS = Path(__file__).with_name("fixtures") / "pairs"


# -- ddmin over synthetic predicates --------------------------------------------
def leaks_when(*needed: int):
    def probe(subset):
        return Probe("leak" if set(needed) <= set(subset) else "clean", {"blocks": 9.0})
    return probe


@pytest.mark.parametrize("jobs", [1, 3])
def test_ddmin_finds_a_pair_that_leaks_only_together(jobs):
    shrinker = Shrinker(leaks_when(3, 11), jobs=jobs)
    outcome = shrinker.shrink(16)
    assert outcome.minimal == (3, 11)
    assert outcome.leaks and not outcome.flaky
    # every measurement of a new subset is a run; a leak that shrinks is measured twice
    assert outcome.runs < 16 * 3


def test_ddmin_does_not_shrink_a_clean_original():
    outcome = Shrinker(leaks_when(99)).shrink(8)
    assert not outcome.leaks and outcome.original.verdict == "clean"
    assert outcome.runs == 1


def test_flaky_subset_is_retried_reported_and_not_trusted():
    calls: dict[tuple, int] = {}

    def probe(subset):
        calls[subset] = calls.get(subset, 0) + 1
        if subset == (0, 1, 2, 3):          # the first half: leak, then clean, then clean ...
            return Probe("leak" if calls[subset] == 1 else "clean")
        return Probe("leak" if 5 in subset else "clean")

    outcome = Shrinker(probe, retries=2).shrink(8)
    assert outcome.minimal == (5,)
    flaky = [t for t in outcome.flaky if t.key == (0, 1, 2, 3)]
    assert flaky and flaky[0].verdicts == ["leak", "clean", "clean", "clean"]
    assert flaky[0].verdict == "clean"


def test_cache_is_keyed_by_the_program_that_actually_runs():
    # every subset closes over item 0 (an import everything needs): one key per program
    probe_keys = []

    def probe(key):
        probe_keys.append(key)
        return Probe("leak" if 4 in key else "clean")

    outcome = Shrinker(probe, canonical=lambda s: tuple(sorted({0, *s}))).shrink(6)
    assert outcome.minimal == (0, 4)
    # a key is measured again only to confirm a leak, and then exactly once more
    repeated = {k for k in probe_keys if probe_keys.count(k) > 1}
    assert repeated and all(4 in k and probe_keys.count(k) == 2 for k in repeated)
    # two subsets that close to the same program: measured once
    shrinker = Shrinker(probe, canonical=lambda s: tuple(sorted({0, *s})))
    assert shrinker.trial((2,)) is shrinker.trial((0, 2))
    assert (shrinker.runs, shrinker.cache_hits) == (1, 1)


# -- statements ------------------------------------------------------------------
SCRIPT = '''\
from __future__ import annotations
import os, sys
import json as j
x = 1; y = x + 1
@staticmethod
def helper(v):
    return j.dumps(v) + os.sep
if y:
    z = 2
else:
    z = 3
z = z + 1
print(helper(z))
'''


def test_statements_split_keeps_compound_statements_whole():
    statements = split_statements(SCRIPT)
    assert [s.source.splitlines()[0] for s in statements] == [
        "from __future__ import annotations", "import os, sys", "import json as j", "x = 1",
        "y = x + 1", "@staticmethod", "if y:", "z = z + 1", "print(helper(z))"]
    assert statements[5].source.endswith("return j.dumps(v) + os.sep")
    assert statements[6].binds == {"z"} and statements[6].conditional


def test_closure_keeps_what_kept_statements_need():
    statements = split_statements(SCRIPT)
    # the print needs helper (and, through its body, json and os), and z
    # through `z = z + 1` and the `if` that binds z, which needs y, then x
    assert closure(statements, [8]) == (0, 1, 2, 3, 4, 5, 6, 7, 8)
    assert closure(statements, [4]) == (0, 3, 4)
    assert render(statements, [0, 3, 4]) == "from __future__ import annotations\nx = 1\ny = x + 1\n"


def test_statements_syntax_error_is_a_case_error():
    with pytest.raises(CaseError, match="cannot split"):
        split_statements("def broken(:\n")


# -- the real thing: three kinds through the CLI ----------------------------------
LEAKY_SCRIPT = '''\
import json
import lh_callleak
import lh_callclean
data = {"a": [1, 2, 3], "b": "text"}
encoded = json.dumps(data)
decoded = json.loads(encoded)
total = 0
for value in range(50):
    total += value * value
def helper(x):
    return [x] * 4
parts = helper(7)
lh_callclean.f()
lh_callleak.f()
words = " ".join(str(p) for p in parts)
class Box:
    size = 3
box = Box()
'''


def run_cli(argv: list[str], capsys) -> tuple[int, dict, float]:
    started = time.monotonic()
    status = main(argv + ["--json"])
    wall_s = time.monotonic() - started
    return status, json.loads(capsys.readouterr().out), wall_s


def test_script_shrinks_to_the_leaking_call_and_its_import(fixture_modules_for, tmp_path, capsys):
    built = fixture_modules_for(PYTHON_ID)
    script = tmp_path / "script.py"
    script.write_text(LEAKY_SCRIPT)
    assert len(split_statements(LEAKY_SCRIPT)) == 15
    status, report, wall_s = run_cli(["bisect", "--file", str(script), "--python", built.target.executable,
                                      "--pythonpath", str(built.directory), *FAST], capsys)
    assert status == 1
    assert report["kind"] == "statements"
    assert report["minimal"] == ["import lh_callleak", "lh_callleak.f()"]
    assert report["original"]["verdict"] == report["result"]["verdict"] == "leak"
    assert report["result"]["excess"]["blocks"] == pytest.approx(9, abs=1)
    assert report["original"]["items"] == 15
    print(f"\nstatements: {report['runs']} runs, {wall_s:.1f} s")


def test_modules_that_leak_only_together_are_found_as_a_pair(fixture_modules_for, capsys):
    built = fixture_modules_for(PYTHON_ID)
    path = ["--python", built.target.executable, "--pythonpath", str(built.directory),
            "--pythonpath", str(PAIRS), *FAST]
    modules = "colorsys,lh_plugin,string,keyword,heapq,bisect,lh_registry,textwrap"
    status, report, wall_s = run_cli(["bisect", "--modules", modules, *path], capsys)
    assert status == 1
    assert sorted(report["minimal"]) == ["lh_plugin", "lh_registry"]
    assert report["result"]["excess"]["blocks"] == pytest.approx(9, abs=1)
    figure = f"\nmodules: {report['runs']} runs, {wall_s:.1f} s"
    # each alone is clean (that is what makes them a pair) ...
    for alone in ("lh_plugin", "lh_registry"):
        status, single, _ = run_cli(["bisect", "--modules", alone, *path], capsys)
        assert status == 0 and single["original"]["verdict"] == "clean" and single["minimal"] == []
    # ... and the clean twin of the plugin, registered the same way, leaks nothing
    status, twin, _ = run_cli(["bisect", "--modules", modules.replace("lh_plugin", "lh_plugin_clean"),
                               *path], capsys)
    assert status == 0 and twin["original"]["verdict"] == "clean"
    print(figure)


TESTS = '''\
import lh_callleak

CACHE = []

def test_arithmetic():
    assert sum(range(10)) == 45

def test_leaks_a_tuple_per_call():
    lh_callleak.f()

def test_strings():
    assert "a" * 3 == "aaa"

def test_fills_a_cache_once():
    if not CACHE:
        CACHE.append(object())
'''


def test_tests_shrink_to_the_leaking_test(target_for, fixture_modules_for, tmp_path, capsys, monkeypatch):
    built = fixture_modules_for(PYTHON_ID)
    target = target_for(PYTHON_ID)
    (tmp_path / "test_mixed.py").write_text(TESTS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(built.directory))
    # this machine's hypothesis/benchmark plugins cost seconds per pytest start; the
    # bisection of this file needs none of them
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    status, report, wall_s = run_cli(["bisect", "--tests", "test_mixed.py", "--python", target.executable,
                                      "--cycles", "4", "--warmup", "2", "--jobs", "2"], capsys)
    assert status == 1
    assert report["kind"] == "tests"
    assert report["minimal"] == ["test_mixed.py::test_leaks_a_tuple_per_call"]
    assert report["original"]["items"] == 4
    assert report["result"]["excess"]["blocks"] == pytest.approx(9, abs=1)
    print(f"\ntests: {report['runs']} runs, {wall_s:.1f} s")


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    assert main(["bisect"]) == 2
    assert "nothing to bisect" in capsys.readouterr().err
    assert main(["bisect", "--file", str(tmp_path / "missing.py")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["bisect", "-c", "def broken(:"]) == 2
    assert "cannot split" in capsys.readouterr().err
    assert main(["bisect", "--modules", "os,not a module"]) == 2
    assert "not a module name" in capsys.readouterr().err
    assert main(["bisect", "--modules", "os", "--jobs", "0"]) == 2


@pytest.mark.parametrize("code, says, status", [
    ("import os\nos.abort()\nx = 1\n", "could not be measured: verdict crash", 3),
    ("import json\nx = 1\n", "does not leak: verdict clean", 0),
])
def test_an_original_that_crashes_is_not_said_not_to_leak(fixture_modules_for, tmp_path, capsys,
                                                          code, says, status):
    # "the original (3 statements) does not leak: verdict crash": whether it
    # leaks is unknown; its clean twin does not leak
    built = fixture_modules_for(PYTHON_ID)
    script = tmp_path / "script.py"
    script.write_text(code)
    got = main(["bisect", "--file", str(script), "--python", built.target.executable, *FAST])
    assert got == status
    assert says in " ".join(capsys.readouterr().out.split())
