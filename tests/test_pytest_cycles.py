"""`pytest --leak-cycles`: a real project's own suite run inside interpreter cycles.

The project is tests/fixtures/lhproj: one C extension (`lhproj._core`) whose
three defects each have a clean twin beside them, and its own pytest suite
(tests/test_lhproj.py), all of which passes when pytest runs it the usual
way.  pip builds it into a fresh venv of 3.13 with pytest and pytest-xdist,
and that venv's pytest runs the suite with this checkout's plugin.

3.13, not 3.12: CPython 3.12.1 itself aborts when `datetime` (which
`import pytest` imports) is imported again after a finalize or in a second
subinterpreter (`leak-harness run -c "import datetime" --python 3.12`:
SIGABRT in cycle 2, on the bare host too), so every test module that
imports pytest crashes there whatever it tests.

The expected outcome of every test is exact: what each defect strands is
known (items_leaky: the list, its item array and 8 ints = 10 blocks per call;
registry_leaky: the dict, its keys table and 8 + 8 ints = 18 blocks per
interpreter), and the clean twins beside them pass.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from fixtures.targets import REPO_ROOT
from harness.cases.pytest_tests import TestCall, is_plain, case_for_test, unsupported_reason

pytest_plugins = ["pytester"]
PROJECT = REPO_ROOT / "tests" / "fixtures" / "lhproj"
FAST = ("--leak-cycle-count", "6", "--leak-warmup", "1")
TEST = "tests/test_lhproj.py::"


@pytest.fixture(scope="session")
def project_venv(target_for, tmp_path_factory):
    """A fresh 3.13 venv with pytest, pytest-xdist, the plugin's runtime needs and lhproj."""
    base = target_for("3.13").executable
    root = tmp_path_factory.mktemp("lhproj")
    source = root / "src"
    shutil.copytree(PROJECT, source, ignore=shutil.ignore_patterns("tests"))
    subprocess.run([base, "-m", "venv", str(root / "venv")], check=True, timeout=300)
    python = root / "venv" / "bin" / "python"
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "pytest", "pytest-xdist",
                           "rich", "pyelftools", str(source)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return python


@pytest.fixture
def project(pytester, project_venv, monkeypatch):
    """The project's test suite in a pytester dir; run(...) runs the venv's pytest there."""
    shutil.copytree(PROJECT / "tests", pytester.path / "tests")
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))   # this checkout's plugin (and entry point)

    def run(*args: str):
        return pytester.run(str(project_venv), "-m", "pytest", "-p", "no:cacheprovider", "-rA",
                            *args, timeout=900)
    return run


def outcome_of(result, test: str) -> str:
    """The word pytest's short summary gives `test` (PASSED, LEAKED, XFAIL, ...)."""
    match = re.search(rf"^(\w+) {re.escape(TEST + test)}(?: |$)", result.stdout.str(), re.M)
    assert match, f"{test} not in the short summary:\n{result.stdout.str()}"
    return match.group(1)


def test_project_suite_in_subinterpreters_under_xdist(project):
    result = project("--leak-cycles", "--leak-mode", "subinterpreter", "-n", "2", *FAST)
    out = result.stdout.str()
    assert result.ret == 1, out
    result.assert_outcomes(failed=3, passed=5, skipped=1, xfailed=1, errors=1)
    mode = "[leak-subinterpreter]"
    expected = {
        "test_items_leaks_per_call": "LEAKED", "test_items": "PASSED",
        "test_registry_leaks_per_interpreter": "LEAKED", "test_registry": "PASSED",
        "test_main_only_crashes_in_a_subinterpreter": "ERROR",
        "test_writes_into_tmp_path": "PASSED",
        "test_known_leak": "XFAIL", "test_known_leak_that_was_fixed": "FAILED",
    }
    for test, word in expected.items():
        assert outcome_of(result, test + mode) == word, (test, out)
    for params in ("1-one", "4-four"):
        assert outcome_of(result, f"test_items_parametrized[leak-subinterpreter-{params}]") == "PASSED"
    assert re.search(r"SKIPPED .*fixture\(s\) monkeypatch cannot be built inside the target", out)
    # the numbers: exactly what each defect strands, per cycle, in every cycle
    assert "excess per cycle (blocks): [10, 10, 10, 10, 10, 10] (n=6, sum=60)" in out
    assert "excess per cycle (blocks): [18, 18, 18, 18, 18, 18] (n=6, sum=108)" in out
    # the crash: its native stack down to the defect's line, and the test's frame
    assert re.search(r"main_only  \(core\.c:\d+\)", out), out
    assert re.search(r'File ".*test_lhproj\.py", line \d+ in test_main_only_crashes', out), out
    assert "[XPASS(strict)] known leak: fixed in 0.4" in out
    assert "known leak: items_leaky keeps its list (https://example.org/lhproj/1)" in out
    rows = {line.split()[0]: line.split() for line in out.split("leak-harness summary", 1)[1].splitlines()
            if line.startswith(TEST)}
    assert rows[TEST + "test_items_leaks_per_call" + mode][4:6] == ["leak", "+10"]
    assert rows[TEST + "test_registry_leaks_per_interpreter" + mode][4:6] == ["leak", "+18"]
    assert rows[TEST + "test_items" + mode][4] == "clean"
    # one `pass` control and one import control of the test module per worker, not per test
    match = re.search(r"controls measured \(.*\): (\d+) \(gw0: (\d+), gw1: (\d+)\)", out)
    assert match and match.group(2, 3) == ("2", "2"), out


def test_project_suite_after_finalize(project):
    result = project("--leak-cycles", "--leak-mode", "finalize", *FAST)
    out = result.stdout.str()
    assert result.ret == 1, out
    # the main interpreter only: main_only is fine here
    result.assert_outcomes(failed=3, passed=6, skipped=1, xfailed=1)
    mode = "[leak-finalize]"
    assert outcome_of(result, "test_main_only_crashes_in_a_subinterpreter" + mode) == "PASSED"
    assert outcome_of(result, "test_registry_leaks_per_interpreter" + mode) == "LEAKED"
    assert outcome_of(result, "test_items_leaks_per_call" + mode) == "LEAKED"
    assert outcome_of(result, "test_registry" + mode) == "PASSED"
    # the progress line: L for each leak, x for the known one, F for the XPASS(strict)
    assert re.search(r"test_lhproj\.py L\.L\.\.\.\.\.sxF", out), out


def test_suite_passes_as_usual_and_the_marker_selects_one_test(project, pytester):
    plain = project()
    plain.assert_outcomes(passed=11)
    assert "leak-harness summary" not in plain.stdout.str()
    (pytester.path / "tests" / "test_marked.py").write_text(
        "import pytest\nimport lhproj\n\n"
        "@pytest.mark.leak_cycles(mode='subinterpreter', cycles=4)\n"
        "def test_marked():\n    lhproj.items_leaky(3)\n\n"
        "def test_unmarked():\n    lhproj.items_leaky(3)\n")
    marked = project("tests/test_marked.py", "--leak-warmup", "1")
    marked.assert_outcomes(failed=1, passed=1)
    out = marked.stdout.str()
    assert "LEAKED tests/test_marked.py::test_marked[leak-subinterpreter]" in out
    # a list, its item array and 3 ints, over 4 cycles
    assert "excess per cycle (blocks): [5, 5, 5, 5] (n=4, sum=20)" in out


def test_the_tests_own_skip_and_xfail_keep_their_outcome_inside_the_target(project, pytester):
    # pytest.skip / importorskip / xfail raised in the target were ERRORs
    (pytester.path / "tests" / "test_outcomes.py").write_text(
        "import pytest\n\n"
        "class Skipped(Exception):\n    pass\n\n"
        "def test_skip():\n    pytest.skip('not today')\n\n"
        "def test_importorskip():\n    pytest.importorskip('no_such_module_lh')\n\n"
        "def test_xfail():\n    pytest.xfail('imperative')\n\n"
        "def test_own_class_named_skipped():\n    raise Skipped('mine')\n\n"
        "def test_plain():\n    pass\n")
    result = project("tests/test_outcomes.py", "--leak-cycles", "--leak-mode", "finalize", *FAST)
    out = result.stdout.str()
    result.assert_outcomes(passed=1, skipped=2, xfailed=1, errors=1)
    assert "the test skipped itself in cycle 1: not today" in out, out
    assert "could not import 'no_such_module_lh'" in out, out
    assert "the test called pytest.xfail in cycle 1: imperative" in out, out
    assert re.search(r"^ERROR tests/test_outcomes\.py::test_own_class_named_skipped\[leak-finalize\]",
                     out, re.M), out
    rows = {line.split()[0]: line.split() for line in out.split("leak-harness summary", 1)[1].splitlines()
            if line.startswith("tests/test_outcomes.py::")}
    verdict = {name.split("::")[1]: row[4] for name, row in rows.items()}
    assert verdict == {"test_skip[leak-finalize]": "unsupported", "test_importorskip[leak-finalize]": "unsupported",
                       "test_xfail[leak-finalize]": "unsupported", "test_plain[leak-finalize]": "clean",
                       "test_own_class_named_skipped[leak-finalize]": "error"}, out


def test_live_cycle_line_and_deltas_of_run(project_venv):
    def run(code: str) -> str:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proc = subprocess.run([sys.executable, "-m", "harness", "run", "-c", code, "--control",
                               "import lhproj", "--python", str(project_venv), "--mode",
                               "subinterpreter", "--cycles", "6", "--warmup", "2"],
                              cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr
        return proc.stdout

    leaky = run("import lhproj; lhproj.items_leaky(8)")
    clean = run("import lhproj; lhproj.items(8)")
    assert "\n--XXXXXX\n" in leaky and "\n--......\n" in clean, (leaky, clean)
    assert "excess per cycle: [10, 10, 10, 10, 10, 10] (n=6, sum=60)" in leaky
    assert "excess per cycle: [0, 0, 0, 0, 0, 0] (n=6, sum=0)" in clean
    # case minus control, cycle by cycle
    case = re.search(r"case +\[(.*?)\]", leaky).group(1).split(", ")
    control = re.search(r"control +\[(.*?)\]", leaky).group(1).split(", ")
    assert [int(a) - int(b) for a, b in zip(case, control)] == [10] * 6


# -- the case a test becomes, without a host ---------------------------------
def test_case_imports_the_test_module_from_its_file_and_calls_the_test(tmp_path, monkeypatch):
    path = tmp_path / "test_mod.py"
    path.write_text("calls = []\n\ndef test_f(n, tmp_path):\n    (tmp_path / 'x').write_text('1')\n"
                    "    calls.append((n, tmp_path.exists()))\n\n"
                    "class TestC:\n    def test_m(self):\n        calls.append('m')\n")
    case = case_for_test(TestCall("t::test_f", "test_mod", str(path), "test_f", params={"n": 3},
                              fixtures=("tmp_path",)))
    method = case_for_test(TestCall("t::TestC::test_m", "test_mod", str(path), "test_m", cls="TestC"))
    for code, expected in ((case.code, [(3, True)]), (method.code, ["m"])):
        monkeypatch.delitem(sys.modules, "test_mod", raising=False)
        exec(compile(code, "<case>", "exec"), {})
        assert sys.modules["test_mod"].calls == expected
    # the control is the case without the call: one control for every test of the module
    assert case.control == method.control and case.code.startswith(case.control)
    assert "test_f" not in case.control


def test_only_plain_values_and_tmp_path_cross_into_the_target():
    assert is_plain((1, "a", None, 2.5, b"x", [True], {"k": frozenset({1})}))
    assert not is_plain(object()) and not is_plain([1, object()])
    assert unsupported_reason(["tmp_path"], {"n": 1}, False) is None
    assert "monkeypatch, tmpdir cannot be built" in unsupported_reason(["tmpdir", "monkeypatch"], {}, False)
    assert "parameter p=object is not a plain value" in unsupported_reason([], {"p": object()}, False)
    assert "async" in unsupported_reason([], {}, True)
