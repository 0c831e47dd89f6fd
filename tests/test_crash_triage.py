"""Crash triage: every crash says where (stacks, cycle, phase), whose (module,
signature, the bare-host rerun) and hangs say where they hung.

Real hosts, real crashes: the lh_crashy fixture (tests/fixtures/ext/crashy.c)
segfaults three C frames deep, aborts, crashes in m_free and sleeps in C;
its clean twin lh_crashyclean does none of it and must come out clean with no
crash object.  lh_crash segfaults in PyInit.  On 3.12.1 `import decimal` in
an isolated subinterpreter is CPython's own double free.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.contract import check_contract
from fixtures.targets import REPO_ROOT, missing
from harness.verdict import crash as crash_stacks
from harness.cases.model import Case
from harness.results.compare import compare
from harness import engine as engine_module
from harness.engine import Engine
from harness.settings import RunSettings
from harness.report.html import render_html
from harness.report.junit import render_junit
from harness.results.load import load_results
from harness.report.markdown import render_markdown
from harness.result import Result

CYCLES, WARMUP = 4, 1
DEEP_FRAMES = ["crashy_level_three", "crashy_level_two", "crashy_level_one"]
RELEASE_PYTHONS = ("3.10", "3.11", "3.12", "3.13")


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.fixture
def run_case(engine, fixture_modules_for):
    def run(python_id: str, code: str, mode: str = "finalize", timeout: float = 60.0,
            module: str | None = "lh_crashy", engine_: Engine | None = None) -> Result:
        built = fixture_modules_for(python_id)
        settings = RunSettings(python=built.target.executable, mode=mode, cycles=CYCLES,
                               warmup=WARMUP, timeout=timeout,
                               pythonpath=(str(built.directory),))
        return (engine_ or engine).run(Case(name="case", code=code, module=module), settings)

    return run


def functions(stack: dict) -> list[str]:
    return [frame["function"] for frame in stack["native_stack"]]


def current_thread_frames(stack: dict) -> list[dict]:
    current = [t for t in stack["python_stack"] if t["current"]]
    assert current, stack["python_stack"]
    return current[0]["frames"]


def check_result_contract(result: Result) -> None:
    """The shared run --json checker on this result (skipped without it, failed under CI)."""
    check_contract(json.dumps(result.to_json()))


# -- where: stacks, cycle, phase -------------------------------------------

@pytest.mark.parametrize("python_id", RELEASE_PYTHONS)
def test_segfault_three_frames_deep_names_each_frame_and_the_module(run_case, python_id):
    result = run_case(python_id, "import lh_crashy\nlh_crashy.segv_deep()")
    assert result.verdict == "crash", result.message
    crash = result.crash
    assert crash["signal"] == "SIGSEGV" and crash["cycle"] == 1 and crash["phase"] == "run"
    names = functions(crash)
    # innermost first, exactly the fixture's chain, then the method itself
    assert names[:4] == DEEP_FRAMES + ["segv_deep"], names
    top = crash["native_stack"][0]
    assert top["object"].startswith("lh_crashy.") and top["where"].startswith("crashy.c:")
    assert crash["module"] == "lh_crashy"
    assert crash["signature"] == " ← ".join(DEEP_FRAMES)
    assert crash["fault_address"] == "0x0"
    # faulthandler's Python stack of the crashing thread: the case's line 2
    frames = current_thread_frames(crash)
    assert frames[0] == {"file": "<string>", "line": 2, "function": "<module>"}
    # whose: the bare host (no hook) crashes the same way
    assert crash["reproduces_without_hook"] is True
    assert crash["bare_host"]["signal"] == "SIGSEGV"
    assert "crashes without the harness's hook too" in result.message
    assert "crashy_level_three" in result.message  # the top frames are in the message
    check_result_contract(result)


def test_a_second_crash_at_the_same_places_is_symbolised_without_addr2line(run_case, monkeypatch):
    """A sweep's crashes repeat the same frames: addr2line answers each
    (object, offset) once per process, and the memo gives the same lines."""
    from harness.backends import crash_symbols
    first = run_case("3.12", "import lh_crashy\nlh_crashy.segv_deep()")
    assert first.verdict == "crash", first.message
    real_run, asked = crash_symbols.subprocess.run, []

    def counting_run(argv, *args, **kwargs):
        if "addr2line" in str(argv[0]):
            asked.append(argv)
        return real_run(argv, *args, **kwargs)
    monkeypatch.setattr(crash_symbols.subprocess, "run", counting_run)
    second = run_case("3.12", "import lh_crashy\nlh_crashy.segv_deep()")
    assert second.verdict == "crash", second.message
    assert asked == []
    where = [(f.get("function"), f.get("where")) for f in first.crash["native_stack"]]
    assert where == [(f.get("function"), f.get("where")) for f in second.crash["native_stack"]]
    assert any(w and w.startswith("crashy.c:") for _, w in where)   # lines came from addr2line


def test_clean_twin_of_the_crashing_fixture_has_no_crash(run_case):
    code = ("import lh_crashyclean as m\nm.segv_deep()\nm.abort_now()\nm.arm_free_crash()\n"
            "m.sleep_in_c(30.0)")
    result = run_case("3.12", code, module="lh_crashyclean")
    assert result.verdict == "clean", result.message
    assert result.crash is None and result.hang is None
    assert "crash" not in result.to_json() and "hang" not in result.to_json()


def test_crash_at_import_names_the_pyinit_function(run_case):
    result = run_case("3.12", "import lh_crash", module="lh_crash")
    assert result.verdict == "crash"
    crash = result.crash
    assert functions(crash)[0] == "PyInit_lh_crash"
    assert crash["module"] == "lh_crash" and crash["signature"].startswith("PyInit_lh_crash ← ")
    assert crash["phase"] == "run" and crash["cycle"] == 1
    assert crash["reproduces_without_hook"] is True


def test_abort_is_reported_with_the_function_that_called_it(run_case):
    result = run_case("3.12", "import lh_crashy\nlh_crashy.abort_now()")
    crash = result.crash
    assert result.verdict == "crash" and crash["signal"] == "SIGABRT"
    names = functions(crash)
    assert "abort" in names and names.index("crashy_give_up") > names.index("abort")
    # libc's frames (raise, abort) are in the stack but not in the signature
    assert crash["signature"].startswith("crashy_give_up ← abort_now")
    assert crash["module"] == "lh_crashy" and crash["reproduces_without_hook"] is True


@pytest.mark.parametrize("mode, phase", [("finalize", "finalize"),
                                         ("subinterpreter", "end-interpreter"),
                                         ("legacy-subinterpreter", "end-interpreter")])
def test_crash_in_m_free_names_the_interpreter_end_phase(run_case, mode, phase):
    result = run_case("3.12", "import lh_crashy\nlh_crashy.arm_free_crash()", mode=mode)
    crash = result.crash
    assert result.verdict == "crash", result.message
    assert crash["phase"] == phase and crash["cycle"] == 1
    assert functions(crash)[:2] == ["crashy_free_crash", "free_module"]
    assert crash["module"] == "lh_crashy"


def test_m_free_of_the_clean_twin_does_not_crash(run_case):
    result = run_case("3.12", "import lh_crashyclean\nlh_crashyclean.arm_free_crash()",
                      mode="subinterpreter", module="lh_crashyclean")
    assert result.verdict == "clean" and result.crash is None


# -- whose: the bare-host rerun, both ways ------------------------------------

def test_a_crash_only_the_hook_causes_is_blamed_on_the_harness(run_case, monkeypatch):
    # the test-only switch crashes the host right after it installs its
    # allocator hook; the bare host never installs it
    monkeypatch.setenv("LEAK_HARNESS_TEST_CRASH_IN_HOOK", "1")
    result = run_case("3.12", "pass", module=None, engine_=Engine())
    crash = result.crash
    assert result.verdict == "crash" and crash["phase"] == "initialize"
    assert crash["reproduces_without_hook"] is False
    assert crash["bare_host"]["signal"] is None and crash["bare_host"]["completed"] is True
    assert crash["module"] == crash_stacks.HARNESS
    assert functions(crash)[0] == "crash_report_hook_installed"
    assert "only with the harness's hook: a harness bug" in result.message


@pytest.mark.parametrize("mode", ["subinterpreter", "legacy-subinterpreter"])
def test_a_crash_in_the_main_interpreters_start_says_before_cycle_1(run_case, monkeypatch, mode):
    # the subinterpreter modes start their main interpreter before cycle 1;
    # the host numbers it cycle 0, which the message said as "in cycle 1 of
    # 5" over "crash in phase initialize of cycle 0"
    monkeypatch.setenv("LEAK_HARNESS_TEST_CRASH_IN_HOOK", "1")
    result = run_case("3.12", "pass", module=None, mode=mode, engine_=Engine())
    assert result.verdict == "crash" and result.crash["cycle"] == 0
    head = result.message.splitlines()
    assert head[0] == "host killed by SIGSEGV in the main interpreter's start, before cycle 1"
    assert head[1].startswith("crash in phase initialize of the main interpreter, before cycle 1,")
    assert "cycle 0" not in result.message


def test_a_bare_rerun_that_fails_short_of_the_crash_proves_nothing(run_case):
    # the case raises on the bare host (its argv says bare-<mode>), as one
    # that reads the hook's allocator does without it, and segfaults on
    # the hooked host: the bare run never reached the crash, so neither
    # "harness bug" nor "crashes without the hook" may be said
    code = ("import lh_crashy\n"
            "if b'bare-' in open('/proc/self/cmdline', 'rb').read():\n"
            "    raise RuntimeError('no hook here')\n"
            "lh_crashy.segv_deep()\n")
    result = run_case("3.12", code)
    crash = result.crash
    assert result.verdict == "crash" and crash["cycle"] == 1, result.message
    assert crash["reproduces_without_hook"] is None and "hooked_reruns" not in crash
    assert crash["bare_host"]["completed"] is False and crash["bare_host"]["signal"] is None
    assert crash["bare_host"]["reached"] == 0 and crash["bare_host"]["returncode"] not in (0, None)
    assert "harness bug" not in result.message
    assert "the bare host ended with status" in result.message and "short of the crash" in result.message
    check_result_contract(result)


# -- what a fallback blame rests on -------------------------------------------

def test_a_crash_with_no_frame_of_the_named_module_says_so(run_case):
    # os.abort() under --module json: json is named, but as the case's
    # module, with no frame of it on the stack
    result = run_case("3.12", "import json, os\nos.abort()", module="json")
    crash = result.crash
    assert result.verdict == "crash" and crash["module"] == "json"
    assert crash["blamed_by"] == "case"
    assert "module json (the case's module: no frame of it on the stack)" in result.message
    check_result_contract(result)


def test_a_crash_in_a_python_frame_of_the_named_module_is_not_a_fallback(run_case, tmp_path):
    # the twin: the abort is called from the module's own Python code
    (tmp_path / "lh_aborts.py").write_text("import os\n\ndef now():\n    os.abort()\n")
    code = f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nimport lh_aborts\nlh_aborts.now()"
    result = run_case("3.12", code, module="lh_aborts")
    crash = result.crash
    assert result.verdict == "crash" and crash["module"] == "lh_aborts"
    assert crash["blamed_by"] == "case-python" and "loaded_extensions" not in crash
    assert "no frame of it" not in result.message


def test_a_crash_in_cpython_names_the_third_party_extensions_loaded(run_case):
    # lh_crashy corrupts an object's type; CPython crashes in its dealloc,
    # with no frame of lh_crashy on the stack: blamed on cpython, and the
    # extension loaded outside the standard library is named beside it
    code = "import _json, lh_crashy\no = bytearray(8)\nlh_crashy.corrupt_type(o)\ndel o"
    result = run_case("3.12", code, module=None)
    crash = result.crash
    assert result.verdict == "crash" and crash["signal"] == "SIGSEGV", result.message
    assert crash["module"] == "cpython" and crash["blamed_by"] == "cpython"
    assert "lh_crashy" not in {(f["object"] or "").rsplit("/", 1)[-1].split(".")[0] for f in crash["native_stack"]}
    assert crash["loaded_extensions"] == ["lh_crashy"]  # _json is lib-dynload's
    assert ("(no extension's frame on the stack; extensions loaded outside the standard library: "
            "lh_crashy)") in result.message
    check_result_contract(result)


def test_the_clean_twins_corrupt_type_does_nothing(run_case):
    code = "import lh_crashyclean\no = bytearray(8)\nlh_crashyclean.corrupt_type(o)\ndel o"
    result = run_case("3.12", code, module="lh_crashyclean")
    assert result.verdict == "clean" and result.crash is None, result.message


def segv_at_run(crash_at: int, marker: Path | None = None) -> str:
    """A case that crashes the crash_at-th time its code runs.  Counted in the
    process's C environment (putenv outlives each interpreter), it crashes in
    that cycle of every host process; counted in the marker file across all
    of them, it crashes once and no rerun repeats it, as a module crashing
    one run in two (a race, a timing) looks."""
    if marker is None:
        load = "n = int(os.environ.get('LH_RUNS', '0'))\n"
        store = "os.environ['LH_RUNS'] = str(n + 1)\n"
    else:
        load = f"n = int(open({str(marker)!r}).read()) if os.path.exists({str(marker)!r}) else 0\n"
        store = f"open({str(marker)!r}, 'w').write(str(n + 1))\n"
    return f"import os, lh_crashy\n{load}{store}if n + 1 == {crash_at}:\n    lh_crashy.segv_deep()\n"


def test_a_crash_no_rerun_repeats_is_not_repeatable_not_a_harness_bug(run_case, tmp_path):
    # the module's own crash, once: neither the bare host nor the hooked host
    # repeats it, so whose it is cannot be told (one clean bare run called
    # this a harness bug)
    result = run_case("3.12", segv_at_run(3, marker=tmp_path / "runs"))
    crash = result.crash
    assert result.verdict == "crash" and crash["cycle"] == 3, result.message
    assert crash["reproduces_without_hook"] is None and crash["not_repeatable"] is True
    assert crash["bare_host"]["runs"] == engine_module.BARE_ATTEMPTS
    assert crash["hooked_reruns"] == {"runs": engine_module.HOOKED_RERUNS, "crashed": 0}
    assert crash["module"] == "lh_crashy"
    assert "harness bug" not in result.message and "not repeatable" in result.message
    check_result_contract(result)


def test_the_same_crash_in_every_run_reproduces_without_the_hook_at_once(run_case):
    # the twin: the third cycle of every process crashes, so the first bare
    # run repeats it and nothing more is rerun
    result = run_case("3.12", segv_at_run(3))
    crash = result.crash
    assert result.verdict == "crash" and crash["cycle"] == 3, result.message
    assert crash["reproduces_without_hook"] is True and "not_repeatable" not in crash
    assert "hooked_reruns" not in crash and "runs" not in crash["bare_host"]
    assert "without the harness's hook too" in result.message


def test_stdlib_decimal_crash_on_3121_reproduces_without_the_hook(target_for, engine):
    target = target_for("3.12")
    if target.version != "3.12.1":
        pytest.skip(f"the _decimal double free in subinterpreters is 3.12.1's (have {target.version})")
    settings = RunSettings(python=target.executable, mode="subinterpreter", cycles=CYCLES, warmup=WARMUP)
    result = engine.run(Case(name="decimal-import", code="import decimal", module="decimal"), settings)
    crash = result.crash
    assert result.verdict == "crash" and crash["signal"] == "SIGABRT"
    assert crash["reproduces_without_hook"] is True
    assert crash["module"] == "_decimal"  # the first frame in an extension: PyInit__decimal
    assert "PyInit__decimal" in functions(crash)
    assert crash["signature"] and "abort" not in crash["signature"]  # libc is not in it
    check_result_contract(result)


@pytest.mark.parametrize("python_id", ["3.12", "3.13"])
@pytest.mark.parametrize("after, bare_cycles", [(1, 1), (2, WARMUP + CYCLES)])
def test_a_crash_at_the_main_interpreters_end_is_rerun_bare_in_one_cycle_when_that_repeats_it(
        run_case, python_id, after, bare_cycles):
    # crash_at_exit(k): at its k-th call in the process, a Py_AtExit function
    # that writes through NULL, run by the main interpreter's Py_FinalizeEx
    # after the last cycle.  k=1: one bare cycle repeats the crash, so the
    # rerun stops there; k=2: one bare cycle ends clean, so every cycle is
    # rerun and the crash repeats at the end of them
    result = run_case(python_id, f"import lh_crashy\nlh_crashy.crash_at_exit({after})",
                      mode="subinterpreter")
    crash = result.crash
    assert result.verdict == "crash", result.message
    assert crash["phase"] == "finalize" and crash["cycle"] == WARMUP + CYCLES
    assert functions(crash)[0] == "crashy_exit_crash"
    assert crash["reproduces_without_hook"] is True
    assert crash["bare_host"]["cycles"] == bare_cycles
    assert crash["bare_host"]["signal"] == "SIGSEGV" and crash["bare_host"]["phase"] == "finalize"
    assert f"(bare host, {bare_cycles} cycle{'s' if bare_cycles > 1 else ''}: SIGSEGV in finalize)" \
        in result.message
    check_result_contract(result)


def test_the_clean_twins_crash_at_exit_does_nothing(run_case):
    result = run_case("3.12", "import lh_crashyclean\nlh_crashyclean.crash_at_exit(1)",
                      mode="subinterpreter", module="lh_crashyclean")
    assert result.verdict == "clean" and result.crash is None, result.message


# -- hangs: where the host was when the timeout fired -------------------------

def test_a_hang_in_c_reports_the_native_and_python_stacks(run_case):
    result = run_case("3.12", "import lh_crashy\nlh_crashy.sleep_in_c(120.0)", timeout=5)
    assert result.verdict == "timeout", result.message
    assert result.crash is None
    hang = result.hang
    assert hang["phase"] == "run" and hang["cycle"] == 1
    assert "crashy_nap" in functions(hang)
    assert hang["signature"].startswith("crashy_nap ← sleep_in_c")
    assert hang["module"] == "lh_crashy"
    assert current_thread_frames(hang)[0]["line"] == 2
    assert "hang in phase run of cycle 1" in result.message


def test_a_hang_in_a_python_loop_reports_the_python_stack(run_case):
    code = "def spin():\n    while True:\n        pass\nspin()\n"
    result = run_case("3.12", code, mode="subinterpreter", timeout=5, module=None)
    assert result.verdict == "timeout"
    frames = current_thread_frames(result.hang)
    # the signal lands on either line of the loop (`while True:` or `pass`)
    (spin, spin_line), outer = [(f["function"], f["line"]) for f in frames[:2]]
    assert spin == "spin" and spin_line in (2, 3) and outer == ("<module>", 4)
    assert "_PyEval_EvalFrameDefault" in functions(result.hang)


# -- valgrind: memcheck's errors and stack survive the crash ------------------

def test_a_crash_under_memcheck_keeps_its_errors_and_the_invalid_write_stack(run_case, engine,
                                                                            fixture_modules_for):
    import shutil
    if not shutil.which("valgrind"):
        missing("valgrind not installed")
    built = fixture_modules_for("3.12")
    settings = RunSettings(python=built.target.executable, mode="finalize", backend="valgrind",
                           cycles=CYCLES, warmup=WARMUP, timeout=300,
                           pythonpath=(str(built.directory),))
    result = engine.run(Case(name="case", code="import lh_crashy\nlh_crashy.segv_deep()",
                             module="lh_crashy"), settings)
    assert result.verdict == "crash"
    assert [e["kind"] for e in result.errors] == ["InvalidWrite"]
    assert result.errors[0]["module"] == "lh_crashy"
    crash = result.crash
    assert crash["stack_from"] == "memcheck InvalidWrite"
    assert functions(crash)[:3] == DEEP_FRAMES
    assert crash["signature"] == " ← ".join(DEEP_FRAMES)  # the same bug, the same signature
    assert "memcheck found 1 error(s) before the crash" in result.message


# -- reports: grouped by signature; compare by signature ----------------------

@pytest.fixture(scope="module")
def sweep_results(fixture_modules_for, tmp_path_factory) -> Path:
    """A real sweep with crashes of two signatures: lh_crash (its PyInit) and,
    on 3.12.1, decimal and fractions (which imports decimal): one bug."""
    built = fixture_modules_for("3.12")
    out = tmp_path_factory.mktemp("crash-sweep") / "results.jsonl"
    modules = ["lh_crash", "lh_crashyclean"]
    if built.target.version == "3.12.1":
        modules += ["decimal", "fractions"]
    args = [sys.executable, "-m", "harness", "sweep", "--python", built.target.executable,
            "--mode", "subinterpreter", "--cycles", str(CYCLES), "--warmup", str(WARMUP),
            "--jobs", "2", "--out", str(out)]
    for module in modules:
        args += ["--module", module]
    proc = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(built.directory)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (out.parent / "terminal.txt").write_text(proc.stdout)
    return out


def test_sweep_reports_group_crashes_by_signature(sweep_results):
    lines = [json.loads(l) for l in sweep_results.read_text().splitlines()]
    crashes = [l for l in lines if l.get("role") == "case" and l["verdict"] == "crash"]
    signatures = {l["crash"]["signature"] for l in crashes}
    results = load_results([sweep_results])
    markdown = render_markdown(results)
    headline = (f"## Crashes by signature ({len(crashes)} crash{'es' if len(crashes) > 1 else ''}, "
                f"{len(signatures)} signature{'s' if len(signatures) > 1 else ''})")
    assert headline in markdown, markdown
    terminal = (sweep_results.parent / "terminal.txt").read_text()
    assert f"{len(crashes)} crash" in terminal and "PyInit_lh_crash" in terminal
    if any(l["module"] == "decimal" for l in crashes):
        # one bug, two modules: one row naming both
        decimal = next(l for l in crashes if l["module"] == "decimal")["crash"]["signature"]
        fractions = next(l for l in crashes if l["module"] == "fractions")["crash"]["signature"]
        assert decimal == fractions
        row = next(r for r in markdown.splitlines() if r.startswith("| `") and "decimal" in r)
        assert "fractions" in row and "| 2 |" in row and "| yes |" in row
    html = render_html(results)
    assert 'id="crash-signature-table"' in html and "PyInit_lh_crash" in html
    junit = render_junit(results)
    assert "native stack (innermost first):" in junit and "PyInit_lh_crash" in junit


def test_compare_treats_a_new_signature_as_a_new_crash_and_a_known_one_as_unchanged(
        sweep_results, tmp_path):
    lines = [json.loads(l) for l in sweep_results.read_text().splitlines()]
    baseline = tmp_path / "baseline.jsonl"
    baseline.write_text("".join(json.dumps(l) + "\n" for l in lines))
    changed = []
    for line in lines:
        if line.get("module") == "lh_crash" and line.get("verdict") == "crash":
            line = json.loads(json.dumps(line))
            line["crash"]["signature"] = "a_different_bug ← somewhere"
        changed.append(line)
    current = tmp_path / "current.jsonl"
    current.write_text("".join(json.dumps(l) + "\n" for l in changed))
    same = compare(load_results([baseline]), load_results([baseline]))
    assert not same.new_crashes and {c.line["module"] for c in same.unchanged_crashes} >= {"lh_crash"}
    moved = compare(load_results([baseline]), load_results([current]))
    assert [c.line["module"] for c in moved.new_crashes] == ["lh_crash"] and moved.failed
    assert moved.to_json()["new_crashes"][0]["signature"] == "a_different_bug ← somewhere"


def test_compare_keeps_a_crash_unchanged_where_the_baseline_has_no_signature(sweep_results, tmp_path):
    # ci/baseline.json's crashes predate stacks in results: the nightly's own
    # compare against it failed on CPython's known crashes as "new"
    lines = [json.loads(l) for l in sweep_results.read_text().splitlines()]
    unsigned = [{k: v for k, v in l.items() if k != "crash"} for l in lines]
    baseline = tmp_path / "unsigned.jsonl"
    baseline.write_text("".join(json.dumps(l) + "\n" for l in unsigned))
    outcome = compare(load_results([baseline]), load_results([sweep_results]))
    crashed = {l["module"] for l in lines if l.get("role") == "case" and l["verdict"] == "crash"}
    assert crashed and not outcome.new_crashes and not outcome.failed
    assert {c.line["module"] for c in outcome.unchanged_crashes} == crashed
    # a case that did not crash in the baseline still fails as a new crash
    clean_before = [dict(l, verdict="clean") if l.get("module") == "lh_crash" else l for l in unsigned]
    baseline.write_text("".join(json.dumps(l) + "\n" for l in clean_before))
    outcome = compare(load_results([baseline]), load_results([sweep_results]))
    assert {c.line["module"] for c in outcome.new_crashes} == {"lh_crash"} and outcome.failed


# -- the crash file, parsed without a host -------------------------------------

def test_a_record_cut_short_keeps_what_was_written():
    text = ("event crash\nsignal 11 SIGSEGV\ncycle 3\nphase end-interpreter\n"
            "frame 0x1234\nmaps\n")
    [report] = crash_stacks.parse_reports(text)
    assert (report.signal_name, report.cycle, report.phase, report.addresses) == \
        ("SIGSEGV", 3, "end-interpreter", [0x1234])
    assert report.complete is False
    described = crash_stacks.describe(report, "mod")
    assert described["note"].startswith("the record was cut short")
    assert described["signature"] == "?(?)"  # an address no map owns


def test_signature_skips_libc_and_keeps_three_functions():
    frames = [crash_stacks.Frame(1, "/lib/x86_64-linux-gnu/libc.so.6", 1, name)
              for name in ("raise", "abort")]
    frames += [crash_stacks.Frame(2, "/x/libpython3.12.so.1.0", 2, name)
               for name in ("_PyObject_Free", "dict_dealloc", "_datetime_exec", "deeper")]
    assert crash_stacks.signature(frames, "SIGABRT", "run") == \
        "_PyObject_Free ← dict_dealloc ← _datetime_exec"


def test_allocator_wrappers_of_the_host_are_not_blamed_for_a_crash_in_free():
    # 3.12.1, `import asyncio` in subinterpreter mode: glibc aborts in free()
    # under the host's hook_free during CPython's final _PyTuple_Fini, and the
    # bare host aborts the same way.  The wrappers only pass the call on:
    # the signature and the blame are of what called them.
    from harness.backends.crash_symbols import Frame

    host = "/cache/hosts/host-3.12.1-native-0123abcd"
    libc, libpython = "/usr/lib/x86_64-linux-gnu/libc.so.6", "/py/lib/libpython3.12.so.1.0"
    frames = [Frame(1, libc, 1, "raise"), Frame(2, libc, 2, "abort"), Frame(3, libc, 3, "free"),
              Frame(4, host, 4, "hook_free"), Frame(5, libpython, 5, "_PyObject_Free"),
              Frame(6, host, 6, "hook_free"), Frame(7, libpython, 7, "_PyTuple_Fini"),
              Frame(8, libpython, 8, "finalize_interp_clear")]
    assert crash_stacks.signature(frames, "SIGABRT", "finalize") == (
        "_PyObject_Free ← _PyTuple_Fini ← finalize_interp_clear")
    assert crash_stacks.blamed_module(frames, [], None) == "cpython"
    # a crash in the host's own bookkeeping is still the harness's
    own = [Frame(1, libc, 1, "raise"), Frame(2, host, 2, "track_alloc"), Frame(3, host, 3, "hook_malloc")]
    assert crash_stacks.blamed_module(own, [], "json") == crash_stacks.HARNESS


def test_a_thread_with_no_python_frame_says_so_under_its_heading():
    # a crash in an interpreter's end runs no Python code: the heading stood
    # alone, as if the frames were lost
    from harness.report.crashes import stack_text
    stack = {"signature": "s", "module": "cpython", "blamed_by": "cpython", "phase": "finalize",
             "cycle": 0, "native_stack": [],
             "python_stack": [{"thread": "0x1", "current": True, "frames": []}]}
    lines = stack_text(stack).splitlines()
    assert "phase: finalize, cycle 0 (the main interpreter, before cycle 1)" in lines
    heading = lines.index("Python stack, current thread 0x1 (most recent call first):")
    assert lines[heading + 1] == "  (no Python frame)"
