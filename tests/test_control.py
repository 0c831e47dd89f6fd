"""A chosen control (`--control CODE`, a case file's `control`, `leak_check(control=...)`).

lh_importcallleak and lh_importcallclean (tests/fixtures/ext/importcall.c)
both keep a list every time they are imported; only the first one's f()
leaks.  Judged against `pass`, both read `leak` (the import's retention);
judged against `import M`, only the call leak is left: the leaky module is
`leak`, its twin `clean`.  That both default verdicts are `leak` proves the
chosen control, not luck, makes the difference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from fixtures.contract import check_contract
from fixtures.targets import REPO_ROOT
from harness.cases.catalog import load_case_file
from harness.cases.model import Case
from harness.engine import Engine
from harness.settings import RunSettings
from harness.errors import CaseError

CYCLES, WARMUP = 8, 2
CALLS = "import {m}\nfor _ in range(3):\n    {m}.f()"
PYTHONS = ["3.12", "3.13"]


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


def settings_for(built, mode: str = "finalize") -> RunSettings:
    return RunSettings(python=built.target.executable, mode=mode, cycles=CYCLES, warmup=WARMUP,
                       pythonpath=(str(built.directory),))


def calls_case(module: str, control: str | None) -> Case:
    return Case(name=f"{module}-calls", code=CALLS.format(m=module), module=module, control=control)


@pytest.mark.parametrize("python_id", PYTHONS)
@pytest.mark.parametrize("mode", ["finalize", "legacy-subinterpreter"])
def test_import_as_control_flags_the_call_leak_and_passes_the_clean_call(engine, fixture_modules_for,
                                                                         python_id, mode):
    built = fixture_modules_for(python_id)
    settings = settings_for(built, mode)
    results = {}
    for module in ("lh_importcallleak", "lh_importcallclean"):
        for control in (None, f"import {module}"):
            results[module, control] = engine.run(calls_case(module, control), settings)
    # against `pass`, the import's own retention reads as a leak for both twins
    assert results["lh_importcallleak", None].verdict == "leak"
    assert results["lh_importcallclean", None].verdict == "leak"
    leaky = results["lh_importcallleak", "import lh_importcallleak"]
    clean = results["lh_importcallclean", "import lh_importcallclean"]
    assert leaky.verdict == "leak", leaky.message
    assert clean.verdict == "clean", clean.message
    # 3 calls a cycle, each strands a tuple and its 8 ints
    assert leaky.excess["blocks"] == 27
    for result in (leaky, clean):
        control = result.control
        assert control["code"] == f"import {result.module}"
        assert control["case"] == f"(control: import {result.module})"
        for key in ("blocks", "bytes"):
            assert result.excess[key] == pytest.approx(result.per_cycle[key] - control["per_cycle"][key],
                                                       abs=1e-3)
        # the import's retention is in the chosen control, not in `pass`
        assert control["per_cycle"]["blocks"] > control["pass_per_cycle"]["blocks"]
    # with the `pass` control, pass_per_cycle is the control's own row
    default = results["lh_importcallleak", None].control
    assert default["code"] == "pass" and default["pass_per_cycle"] == default["per_cycle"]
    assert default["pass_per_cycle"] == leaky.control["pass_per_cycle"]   # one `pass` run, cached


def test_a_control_that_fails_on_its_own_is_an_error_saying_so(engine, fixture_modules_for):
    built = fixture_modules_for("3.12")
    result = engine.run(calls_case("lh_importcallclean", "import lh_no_such_module"), settings_for(built))
    assert result.verdict == "error"
    assert result.message.startswith("the `import lh_no_such_module` control failed on its own")
    assert "ModuleNotFoundError" in result.message


def _cli(*args: str, built) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(built.directory)]))
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=600)


def test_run_control_option_judges_only_the_calls_and_follows_the_contract(fixture_modules_for):
    built = fixture_modules_for("3.12")
    py = built.target.executable
    outputs = {}
    for module in ("lh_importcallleak", "lh_importcallclean"):
        proc = _cli("run", "--python", py, "-c", CALLS.format(m=module), "--module", module,
                    "--control", f"import {module}", "--cycles", str(CYCLES), "--warmup", str(WARMUP),
                    "--json", built=built)
        outputs[module] = proc
        data = json.loads(proc.stdout)
        assert data["control"]["code"] == f"import {module}"
        check_contract(proc.stdout)
    assert outputs["lh_importcallleak"].returncode == 1
    assert outputs["lh_importcallclean"].returncode == 0
    text = _cli("run", "--python", py, "-c", CALLS.format(m="lh_importcallleak"),
                "--control", "import lh_importcallleak", "--cycles", str(CYCLES),
                "--warmup", str(WARMUP), built=built)
    assert "control (import lh_importcallleak)" in text.stdout and "pass control" in text.stdout


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_a_control_that_does_not_compile_is_one_line_exit_2(fixture_modules_for, command):
    built = fixture_modules_for("3.12")
    target = ["-c", "pass"] if command == "run" else ["--module", "json"]
    proc = _cli(command, "--python", built.target.executable, *target, "--control", "import (",
                built=built)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and "--control is not valid Python" in lines[0], lines


def test_sweep_control_applies_to_cases_and_cpythons_row_stays_pass(fixture_modules_for, tmp_path):
    built = fixture_modules_for("3.12")
    out = tmp_path / "sweep.jsonl"
    proc = _cli("sweep", "--python", built.target.executable, "--mode", "finalize",
                "--module", "lh_importcallclean", "--control", "import lh_importcallclean",
                "--cycles", str(CYCLES), "--warmup", str(WARMUP), "--jobs", "2", "--out", str(out),
                built=built)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    (case,) = [r for r in rows if r["role"] == "case"]
    (control,) = [r for r in rows if r["role"] == "control"]
    # `import M` against `import M`: nothing beyond the control
    assert case["verdict"] == "clean" and case["control"]["code"] == "import lh_importcallclean"
    assert control["case"] == "(control: pass)" and control["control"]["code"] == "pass"


def _case_file(tmp_path, module: str, **extra: str):
    lines = [f'module = "{module}"', f'body = """{CALLS.format(m=module)}"""']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    path = tmp_path / f"{module}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_case_file_control_field(engine, fixture_modules_for, tmp_path):
    built = fixture_modules_for("3.12")
    verdicts = {}
    for module in ("lh_importcallleak", "lh_importcallclean"):
        case = load_case_file(_case_file(tmp_path, module, control=f'"import {module}"')).case
        assert case.control == f"import {module}"
        verdicts[module] = engine.run(case, settings_for(built)).verdict
    assert verdicts == {"lh_importcallleak": "leak", "lh_importcallclean": "clean"}


@pytest.mark.parametrize("value, problem", [
    ("3", "field 'control' must be a string"),
    ('""', "field 'control' is empty"),
    ('"import ("', "field 'control' is not valid Python"),
])
def test_case_file_control_errors_name_file_and_field(tmp_path, value, problem):
    path = _case_file(tmp_path, "json", control=value)
    with pytest.raises(CaseError) as info:
        load_case_file(path)
    assert str(info.value).startswith(f"{path}: {problem}")


pytest_plugins = ["pytester"]


def test_leak_check_fixture_takes_a_control(pytester, fixture_modules_for):
    modules = fixture_modules_for("3.12")
    pytester.makeconftest(f"import sys\nsys.path.insert(0, {str(modules.directory)!r})\n")
    pytester.makepyfile(test_ctl=textwrap.dedent(f"""
        CALLS = {CALLS!r}

        def test_leaky(leak_check):
            leak_check.assert_clean(CALLS.format(m="lh_importcallleak"), module="lh_importcallleak",
                                    control="import lh_importcallleak", cycles={CYCLES}, warmup={WARMUP})

        def test_clean_twin(leak_check):
            result = leak_check.assert_clean(CALLS.format(m="lh_importcallclean"),
                                             module="lh_importcallclean",
                                             control="import lh_importcallclean",
                                             cycles={CYCLES}, warmup={WARMUP})
            assert result.control["code"] == "import lh_importcallclean"

        def test_default_control_sees_the_import(leak_check):
            result = leak_check(CALLS.format(m="lh_importcallclean"), module="lh_importcallclean",
                                cycles={CYCLES}, warmup={WARMUP})
            assert result.verdict == "leak"

        def test_bad_control(leak_check):
            leak_check("pass", control="import (")
    """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                           f"--leak-python={modules.target.executable}", timeout=600)
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert "leak_check(control=...) is not valid Python" in out
    assert "test_leaky" in out
