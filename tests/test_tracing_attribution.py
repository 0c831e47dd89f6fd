"""Attribution and valgrind verdicts that survive what real packages do.

Real valgrind, real memray, the fixture extensions (tests/fixtures/ext):

- lh_argleak keeps a reference to an object CPython made for the case's
  code (no frame of the module is on the allocation's stack): the site
  names lh_argleak, `attributed_by: "case"`, and says why; lh_argclean is
  clean.  lh_initleak / lh_stateleak strand lists that CPython handed out
  from its free list (allocated long before, in gcmodule.c): the valgrind
  site is the fixture module, not gcmodule.c.
- CPython's own memcheck errors (3.11: uninitialised values in ceval that
  a plain `python -c pass` shows too) are not charged to `import json`.
- A case's own memcheck error and its leak are both in the result.
- lh_staticgrow grows a C static list (still reachable, never "lost") from
  cycle 3 on; the default cycles and warm-up find it, lh_staticclean not.
"""

from __future__ import annotations

import shutil

import pytest

from fixtures.targets import missing
from harness.backends.attribution import CASE_NOTE
from harness.backends.memray_ import memray_location
from harness.backends.valgrind.analysis import case_errors, error_signature, ValgrindArtifacts
from harness.result import Result
from harness.cases.model import Case
from harness.engine import Engine
from harness.settings import RunSettings
from harness.errors import HarnessError
from harness.backends.valgrind.memcheck_xml import Frame, MemcheckError, MemcheckReport

pytestmark = pytest.mark.slow
CYCLES, WARMUP = 4, 1
LIBPYTHON = "/x/lib/libpython3.11.so.1.0"
KEEP = "import {m}\nfor _ in range(3):\n    {m}.keep(bytearray(64))\n"
LATE = """import os
path = {path!r}
n = int(open(path).read()) if os.path.exists(path) else 0
with open(path, "w") as counter:
    counter.write(str(n + 1))
if n >= 2:   # cycles 3, 4, ...: the module's exec runs from here on
    import {m}
"""


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.fixture(scope="module", autouse=True)
def valgrind_present():
    if shutil.which("valgrind") is None:
        missing("valgrind not installed (apt-get install valgrind)")


def valgrind(engine, built, module: str, code: str | None = None, **settings) -> "Result":
    settings = {"cycles": CYCLES, "warmup": WARMUP, **settings}
    run_settings = RunSettings(python=built.target.executable, mode="finalize", backend="valgrind",
                               timeout=900, pythonpath=(str(built.directory),), **settings)
    return engine.run(Case(name=module, code=code or f"import {module}", module=module), run_settings)


# -- the error signature: pure ------------------------------------------------

def _error(kind: str, *frames: tuple) -> MemcheckError:
    return MemcheckError(unique="0x1", kind=kind, what=kind, stack=tuple(
        Frame(ip="0x0", obj=obj, fn=fn, file=file, line=line) for fn, file, line, obj in frames))


def test_error_signature_matches_cpythons_class_through_other_callers_not_an_extensions():
    incref = ("Py_INCREF", "object.h", 502, LIBPYTHON)
    ceval = ("_PyEval_EvalFrameDefault", "ceval.c", 1863, LIBPYTHON)
    plain = _error("UninitValue", incref, ceval, ("_PyEval_Vector", "ceval.c", 6434, LIBPYTHON),
                   ("run_mod", "pythonrun.c", 1, LIBPYTHON))
    in_json = _error("UninitValue", incref, ceval, ("_PyEval_Vector", "ceval.c", 6434, LIBPYTHON),
                     ("import_find_and_load", "import.c", 1748, LIBPYTHON))
    elsewhere = _error("UninitValue", incref, ("_PyEval_EvalFrameDefault", "ceval.c", 1801, LIBPYTHON))
    ext = "/x/lh_uaf.cpython-311-x86_64-linux-gnu.so"
    uaf = _error("InvalidRead", ("module_free", "uaf.c", 30, ext), ceval)
    assert error_signature(plain) == error_signature(in_json)
    assert error_signature(plain) != error_signature(elsewhere)
    assert error_signature(uaf) == ("InvalidRead", (("module_free", "uaf.c", 30),))
    control = ValgrindArtifacts(report=MemcheckReport(), method="client-requests", suppression_files=[],
                                host_object="host", plain_start_errors=frozenset({error_signature(plain)}))
    case = ValgrindArtifacts(report=MemcheckReport(errors=[in_json, elsewhere, uaf]),
                             method="client-requests", suppression_files=[], host_object="host")
    own, cpythons = case_errors(case, control)
    assert own == [elsewhere, uaf] and cpythons == [in_json]


# -- valgrind on the fixtures --------------------------------------------------

def test_cpythons_own_memcheck_errors_are_not_charged_to_import_json(engine, target_for):
    target = target_for("3.11")
    result = engine.run(Case(name="json", code="import json", module="json"),
                        RunSettings(python=target.executable, backend="valgrind", cycles=CYCLES,
                                    warmup=WARMUP, timeout=900))
    assert result.verdict == "clean", result.message
    assert result.errors == []
    discounted = result.evidence["valgrind"]["cpython_errors"]
    assert discounted["count"] >= 1 and "UninitValue" in discounted["kinds"]


def test_a_cases_own_error_and_its_leak_are_both_kept(engine, fixture_modules_for):
    built = fixture_modules_for("3.12")
    both = valgrind(engine, built, "lh_uaf", "import lh_uaf\nimport lh_mallocleak")
    assert both.verdict == "error", both.message
    assert both.evidence["growth_verdict"] == "leak"
    assert [e["kind"] for e in both.errors] == ["InvalidRead"] and both.errors[0]["module"] == "lh_uaf"
    assert both.excess["bytes"] >= 4096 and both.sites[0]["module"] == "lh_mallocleak"
    assert "InvalidRead in lh_uaf" in both.message and "leak" in both.message.split(";", 1)[1]
    twin = valgrind(engine, built, "lh_uafclean", "import lh_uafclean\nimport lh_mallocleak")
    assert twin.verdict == "leak" and twin.errors == [], twin.message
    # the same growth either way: the error did not replace the numbers (bytes
    # differ only by the interned module names, "lh_uafclean" being 5 longer)
    assert both.excess["blocks"] == twin.excess["blocks"]
    assert 0 <= twin.excess["bytes"] - both.excess["bytes"] <= len("clean")


@pytest.mark.parametrize("module", ["lh_initleak", "lh_stateleak"])
def test_free_list_leaks_name_the_fixture_module_not_gcmodule(engine, fixture_modules_for, module):
    result = valgrind(engine, fixture_modules_for("3.12"), module)
    assert result.verdict == "leak", result.message
    top = result.sites[0]
    assert top["module"] == module
    assert "gcmodule" not in top["at"]
    if top["attributed_by"] == "case":
        assert top["note"] == CASE_NOTE and top["allocated_at"]
    assert "gcmodule" not in result.message


def test_reference_leak_allocated_by_cpython_names_the_case_module_and_says_so(engine, fixture_modules_for):
    built = fixture_modules_for("3.12")
    leaky = valgrind(engine, built, "lh_argleak", KEEP.format(m="lh_argleak"))
    assert leaky.verdict == "leak", leaky.message
    top = leaky.sites[0]
    assert (top["module"], top["attributed_by"], top["note"]) == ("lh_argleak", "case", CASE_NOTE)
    assert top["blocks_per_cycle"] == 3   # three bytearrays a cycle (their buffers inside)
    clean = valgrind(engine, built, "lh_argclean", KEEP.format(m="lh_argclean"))
    assert clean.verdict == "clean", clean.message


def test_default_cycles_find_a_still_reachable_leak_that_starts_at_cycle_3(engine, fixture_modules_for,
                                                                           tmp_path):
    built = fixture_modules_for("3.12")
    defaults = RunSettings()
    verdicts = {}
    for module in ("lh_staticgrow", "lh_staticclean"):
        code = LATE.format(path=str(tmp_path / f"{module}.count"), m=module)
        result = valgrind(engine, built, module, code, cycles=defaults.cycles, warmup=defaults.warmup)
        verdicts[module] = result.verdict
        if module == "lh_staticgrow":
            # one 1,008-byte node a cycle, reachable from a C static
            assert min(result.evidence["excess_halves"]["blocks"]) >= 1, result.message
    assert verdicts == {"lh_staticgrow": "leak", "lh_staticclean": "clean"}


# -- memray ---------------------------------------------------------------------

@pytest.mark.parametrize("python_id", ["3.12", "3.13"])
def test_memray_names_the_case_module_for_a_reference_leak(fixture_modules_for, target_for, python_id):
    target = target_for(python_id)
    try:
        memray_location(target)
    except HarnessError as exc:
        missing(str(exc))
    built = fixture_modules_for(python_id)
    engine = Engine()
    results = {}
    for module in ("lh_argleak", "lh_argclean"):
        settings = RunSettings(python=target.executable, mode="subinterpreter", backend="memray",
                               cycles=8, warmup=2, pythonpath=(str(built.directory),))
        results[module] = engine.run(Case(name=module, code=KEEP.format(m=module), module=module),
                                     settings)
    leaky = results["lh_argleak"]
    assert leaky.verdict == "leak", leaky.message
    top = leaky.sites[0]
    assert (top["module"], top["attributed_by"], top["note"]) == ("lh_argleak", "case", CASE_NOTE)
    assert results["lh_argclean"].verdict == "clean", results["lh_argclean"].message
