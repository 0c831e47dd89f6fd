"""--explain: counters decide, a short tracing run names the sites of each leak.

Real hosts, real memray/valgrind, the fixture extensions: lh_mallocleak
(4,096 bytes malloc'd into module state per cycle, from `exec_module`) and
lh_callleak (10 calls a cycle, each stranding a tuple and 8 ints), each
with its clean twin beside it.  The explained sites must equal those of a
full tracing run of the same case (same module, same top frame / `at`), the
verdict must be the deciding backend's, and a clean case must not be rerun.
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
from harness.cases.model import Case
from harness.engine import Engine
from harness.settings import RunSettings
from harness.tools.explain import EXPLAIN_CYCLES, ExplainingEngine, choose_backend

CALLS = "for _ in range(10):\n    {m}.f()\n"


def case_for(module: str, calls: bool) -> Case:
    return Case(name=module, code=f"import {module}\n" + (CALLS.format(m=module) if calls else ""),
                module=module)


def top_frame(site: dict) -> tuple:
    frame = site["top_stacks"][0]["frames"][0]
    return site["module"], frame["function"], frame["where"]


def sweep_json(target, fixtures, tmp_path, modules, mode, explain) -> dict[str, dict]:
    """`leak-harness sweep --explain` through the CLI: {module: its case row}."""
    out = tmp_path / f"sweep-{mode}.jsonl"
    argv = [sys.executable, "-m", "harness", "sweep", "--python", target.executable, "--mode", mode,
            "--jobs", "2", "--explain", explain, "--out", str(out)]
    for module in modules:
        argv += ["--module", module]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800, cwd=REPO_ROOT,
                          env={**os.environ, "PYTHONPATH": str(fixtures.directory)})
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return {r["module"]: r for r in rows if r.get("role") == "case"}


@pytest.mark.parametrize("python_id", ["3.12", "3.13"])
def test_explained_malloc_leak_has_the_sites_of_a_full_memray_run(memray_target, fixture_modules_for,
                                                                  tmp_path, python_id):
    target = memray_target(python_id)
    fixtures = fixture_modules_for(python_id)
    rows = sweep_json(target, fixtures, tmp_path, ["lh_mallocleak", "lh_mallocclean"],
                      "subinterpreter", "memray")
    leak, clean = rows["lh_mallocleak"], rows["lh_mallocclean"]
    assert leak["verdict"] == "leak" and leak["backend"] == "counters"
    explained = leak["evidence"]["explained_by"]
    assert explained["backend"] == "memray" and "error" not in explained, explained
    assert (explained["warmup"], explained["cycles"]) == EXPLAIN_CYCLES["memray"]
    assert explained["wall_s"] > 0
    # a full memray run of the same case, at the default 5 + 20 cycles
    full = Engine().run(case_for("lh_mallocleak", False), RunSettings(
        python=target.executable, mode="subinterpreter", backend="memray",
        pythonpath=(str(fixtures.directory),)))
    assert full.verdict == "leak", full.message
    assert top_frame(leak["sites"][0]) == top_frame(full.sites[0])
    assert top_frame(leak["sites"][0])[:2] == ("lh_mallocleak", "exec_module")
    assert leak["sites"][0]["excess_bytes_per_cycle"] == full.sites[0]["excess_bytes_per_cycle"] == 4096
    # the clean twin: judged, never rerun
    assert clean["verdict"] == "clean" and "explained_by" not in clean["evidence"]
    # the counters' own hint to rerun for the sites is gone: the sites are here
    assert "to see where it is allocated" not in (leak["message"] or "")


def test_explained_call_leak_matches_full_memray_run_and_keeps_the_verdict(memray_target,
                                                                            fixture_modules_for):
    target = memray_target("3.12")
    fixtures = fixture_modules_for("3.12")
    settings = RunSettings(python=target.executable, mode="subinterpreter",
                           pythonpath=(str(fixtures.directory),))
    plain = Engine()
    engine = ExplainingEngine(Engine(), "memray")
    for module, verdict in (("lh_callleak", "leak"), ("lh_callclean", "clean")):
        case = case_for(module, True)
        decided = plain.run(case, settings)
        explained = engine.run(case, settings)
        assert decided.verdict == explained.verdict == verdict, explained.message
        if verdict == "clean":
            assert "explained_by" not in explained.evidence
            continue
        assert explained.evidence["explained_by"]["backend"] == "memray"
        full = plain.run(case, RunSettings(python=target.executable, mode="subinterpreter",
                                           backend="memray", pythonpath=(str(fixtures.directory),)))
        assert [s["module"] for s in explained.sites][:1] == [s["module"] for s in full.sites][:1] \
            == ["lh_callleak"]
        assert top_frame(explained.sites[0]) == top_frame(full.sites[0])
        assert explained.sites[0]["excess_blocks_per_cycle"] == full.sites[0]["excess_blocks_per_cycle"]


def test_nothing_leaks_nothing_is_traced(fixture_modules_for, target_for):
    """A clean case costs the sweep alone: no tracing control, no tracing run."""
    target = target_for("3.12")
    fixtures = fixture_modules_for("3.12")
    inner = Engine()
    engine = ExplainingEngine(inner, "memray")
    settings = RunSettings(python=target.executable, mode="subinterpreter",
                           pythonpath=(str(fixtures.directory),))
    result = engine.run(case_for("lh_mallocclean", False), settings)
    assert result.verdict == "clean" and "explained_by" not in result.evidence
    # only the counters' own `pass` control was measured
    assert inner.controls_measured == 1


def test_finalize_is_explained_by_valgrind_with_the_reason(target_for):
    if shutil.which("valgrind") is None:
        missing("valgrind not installed (apt-get install valgrind)")
    target = target_for("3.12")
    finalize = RunSettings(python=target.executable, mode="finalize")
    for wanted in ("memray", "tracemalloc", "auto"):
        backend, why = choose_backend(wanted, finalize)
        assert backend == "valgrind"
        assert "finalize" in why
    # tracemalloc aborts isolated subinterpreters on 3.12: auto's next choice, said why
    isolated = RunSettings(python=target.executable, mode="subinterpreter")
    backend, why = choose_backend("tracemalloc", isolated)
    assert backend in ("memray", "valgrind") and "tracemalloc" in why
    legacy = RunSettings(python=target.executable, mode="legacy-subinterpreter")
    assert choose_backend("tracemalloc", legacy) == ("tracemalloc", "--explain tracemalloc")


def valgrind_explained_twins(target_for, fixture_modules_for, tmp_path, leaky: str, clean: str):
    """(target, fixtures, the leaky twin's row) of a 3.12 finalize sweep of the
    twins with --explain valgrind; the clean twin judged clean, never rerun."""
    if shutil.which("valgrind") is None:
        missing("valgrind not installed (apt-get install valgrind)")
    target = target_for("3.12")
    fixtures = fixture_modules_for("3.12")
    rows = sweep_json(target, fixtures, tmp_path, [leaky, clean], "finalize", "valgrind")
    assert rows[clean]["verdict"] == "clean" and "explained_by" not in rows[clean]["evidence"]
    assert rows[leaky]["verdict"] == "leak", rows[leaky]["message"]
    return target, fixtures, rows[leaky]


@pytest.mark.slow
def test_explained_finalize_leak_has_the_sites_of_a_full_valgrind_run(fixture_modules_for, target_for,
                                                                     tmp_path):
    # valgrind asked for by name runs, though the counters' own sites would do
    target, fixtures, leak = valgrind_explained_twins(target_for, fixture_modules_for, tmp_path,
                                                      "lh_mallocleak", "lh_mallocclean")
    explained = leak["evidence"]["explained_by"]
    assert explained["backend"] == "valgrind" and explained["why"] == "--explain valgrind"
    full = Engine().run(case_for("lh_mallocleak", False), RunSettings(
        python=target.executable, mode="finalize", backend="valgrind", cycles=8, warmup=2,
        timeout=1800, pythonpath=(str(fixtures.directory),)))
    assert full.verdict == "leak", full.message
    site, full_site = leak["sites"][0], full.sites[0]
    assert (site["module"], site["at"]) == (full_site["module"], full_site["at"]) == \
        ("lh_mallocleak", full_site["at"])
    assert site["at"].startswith("mallocleak.c:")
    assert site["bytes_per_cycle"] == full_site["bytes_per_cycle"] == 4096
    # memray cannot measure finalize, and valgrind would stand in: for a leak
    # judged on native counts alone, all in the extension's own code, the
    # counting host's own site is that same site, and nothing is rerun
    stand_in = sweep_json(target, fixtures, tmp_path, ["lh_mallocleak", "lh_pymemleak"],
                          "finalize", "memray")
    native = stand_in["lh_mallocleak"]
    explained = native["evidence"]["explained_by"]
    assert (explained["backend"], explained["instead_of"], explained["wall_s"]) == \
        ("counters", "valgrind", 0.0)
    own = native["sites"][0]
    assert own["kind"] == "native" and own["attributed_by"] == "extension"
    assert (own["module"], os.path.basename(own["at"])) == (full_site["module"], full_site["at"])
    assert own["excess_bytes_per_cycle"] == full_site["bytes_per_cycle"] == 4096
    # its twin in kind: PyMem blocks, which no native site holds: the
    # counting host reruns naming each PyMem block's caller, and its site is
    # a full valgrind run's
    pymem = stand_in["lh_pymemleak"]
    assert pymem["verdict"] == "leak" and set(pymem["evidence"]["triggered_by"]) >= {"blocks"}
    explained = pymem["evidence"]["explained_by"]
    assert (explained["backend"], explained["instead_of"], explained["pymem_sites"]) == \
        ("counters", "valgrind", True)
    assert (explained["warmup"], explained["cycles"]) == EXPLAIN_CYCLES["valgrind"]
    full_pymem = Engine().run(case_for("lh_pymemleak", False), RunSettings(
        python=target.executable, mode="finalize", backend="valgrind", cycles=8, warmup=2,
        timeout=1800, pythonpath=(str(fixtures.directory),)))
    assert full_pymem.verdict == "leak", full_pymem.message
    site, full_site = pymem["sites"][0], full_pymem.sites[0]
    assert (site["kind"], site["attributed_by"]) == ("pymem", "extension")
    assert (site["module"], os.path.basename(site["at"])) == (full_site["module"], full_site["at"])
    assert full_site["at"].startswith("pymemleak.c:")
    assert site["excess_bytes_per_cycle"] == full_site["bytes_per_cycle"] == 24576


def test_a_stand_in_is_skipped_only_when_native_sites_in_the_extension_hold_the_judged_excess(
        target_for, fixture_modules_for):
    """own_sites_suffice on a real counters leak (lh_mallocleak, finalize:
    4,096 B a cycle from exec_module), and on that result made to miss each
    condition in turn."""
    import copy
    from harness.tools.explain import explain, own_sites_suffice
    target = target_for("3.12")
    fixtures = fixture_modules_for("3.12")
    settings = RunSettings(python=target.executable, mode="finalize",
                           pythonpath=(str(fixtures.directory),))
    engine = Engine()
    result = engine.run(case_for("lh_mallocleak", False), settings)
    assert result.verdict == "leak" and result.evidence["triggered_by"], result.message
    assert own_sites_suffice(result, "memray", "valgrind")
    assert own_sites_suffice(result, "auto", "valgrind")
    # asked for by name: it runs
    assert own_sites_suffice(result, "valgrind", "valgrind") is None
    judged_blocks = copy.deepcopy(result)
    judged_blocks.evidence["triggered_by"] = [*result.evidence["triggered_by"], "blocks"]
    assert own_sites_suffice(judged_blocks, "memray", "valgrind") is None
    in_a_library = copy.deepcopy(result)
    for site in in_a_library.sites:
        site["attributed_by"] = "library"
    assert own_sites_suffice(in_a_library, "memray", "valgrind") is None
    short = copy.deepcopy(result)
    for site in short.sites:
        site["excess_bytes_per_cycle"] *= 0.5
        site["excess_blocks_per_cycle"] *= 0.5
    assert own_sites_suffice(short, "memray", "valgrind") is None
    # through explain(): no tracing run, no control of its own, the sites kept
    controls = engine.controls_measured
    explained = explain(engine, case_for("lh_mallocleak", False), copy.deepcopy(result), settings,
                        "memray")
    assert engine.controls_measured == controls
    assert explained.sites == result.sites and explained.verdict == "leak"
    assert explained.evidence["explained_by"]["instead_of"] == "valgrind"
    assert "all of it allocated in lh_mallocleak's own code" in explained.evidence["explained_by"]["why"]
    most = copy.deepcopy(result)
    for site in most.sites:
        site["excess_bytes_per_cycle"] *= 0.95
        site["excess_blocks_per_cycle"] *= 0.95
    assert ", 95% of it allocated in" in own_sites_suffice(most, "memray", "valgrind")


@pytest.mark.parametrize("python_id", ["3.10", "3.12", "3.13"])
def test_pymem_sites_stand_in_only_when_they_account_for_the_judged_excess(
        target_for, fixture_modules_for, python_id):
    """The --pymem-sites rerun of a real PyMem leak (lh_pymemleak, finalize:
    one 24 KiB PyMem block a cycle from exec_module) accounts for it, before
    and after 3.12's immortal interned strings; made to miss each condition
    in turn, it does not, and valgrind would run."""
    import copy
    from harness.tools.explain import (_pymem_settings, pymem_sites_account,
                                       pymem_sites_may_explain)
    target = target_for(python_id)
    fixtures = fixture_modules_for(python_id)
    settings = RunSettings(python=target.executable, mode="finalize",
                           pythonpath=(str(fixtures.directory),))
    engine = Engine()
    case = case_for("lh_pymemleak", False)
    deciding = engine.run(case, settings)
    assert deciding.verdict == "leak" and set(deciding.evidence["triggered_by"]) <= {"blocks", "bytes"}
    assert pymem_sites_may_explain(deciding, "memray", "valgrind")
    assert not pymem_sites_may_explain(deciding, "valgrind", "valgrind")   # by name
    mixed = copy.deepcopy(deciding)
    mixed.evidence["triggered_by"] = [*deciding.evidence["triggered_by"], "native_blocks"]
    assert not pymem_sites_may_explain(mixed, "memray", "valgrind")
    traced = engine.run(case, _pymem_settings(settings))
    held = traced.evidence["pymem_sites_held"]
    assert held["own_bytes"] == 24576 and held["own_blocks"] == 1, held
    why = pymem_sites_account(traced)
    assert why and "in lh_pymemleak's own code" in why, why
    clean = copy.deepcopy(traced)
    clean.verdict = "clean"
    assert pymem_sites_account(clean) is None
    short = copy.deepcopy(traced)
    short.evidence["pymem_sites_held"] = {**held, "own_bytes": held["own_bytes"] * 0.8,
                                          "own_blocks": held["own_blocks"] * 0.8}
    assert pymem_sites_account(short) is None
    in_cpython = copy.deepcopy(traced)
    in_cpython.evidence["pymem_sites_held"] = {**held, "own_bytes": held["own_bytes"] * 0.4,
                                               "cpython_bytes": held["own_bytes"] * 0.6}
    assert pymem_sites_account(in_cpython) is None      # accounted, but not the extension's
    nothing = copy.deepcopy(traced)
    nothing.excess = {**traced.excess, "bytes": 0.0}
    assert pymem_sites_account(nothing) is None
    # the clean twin's sites hold nothing
    twin = engine.run(case_for("lh_pymemclean", False), _pymem_settings(settings))
    assert twin.verdict == "clean"
    assert twin.evidence["pymem_sites_held"]["own_bytes"] <= 0


def _source_line(name: str, text: str) -> int:
    """The line of tests/fixtures/ext/`name` that holds `text`."""
    lines = (REPO_ROOT / "tests" / "fixtures" / "ext" / name).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


@pytest.mark.parametrize("python_id", ["3.11", "3.12", "3.13"])
def test_a_type_kept_in_a_static_is_named_by_its_pymem_site_not_by_its_interned_names(
        target_for, fixture_modules_for, python_id):
    """lh_errorleak is 3.12.1 _curses' shape: each single-phase PyInit makes an
    exception type and keeps it in a static (so it is never freed), beside 40
    named int constants, whose names are interned, and immortal from 3.12 on
    (the verdict discounts those).  The --pymem-sites explanation names the
    PyErr_NewException line and holds what is judged beyond the interned
    names, not the names' line; the clean twin is not rerun."""
    target = target_for(python_id)
    fixtures = fixture_modules_for(python_id)
    settings = RunSettings(python=target.executable, mode="finalize",
                           pythonpath=(str(fixtures.directory),))
    engine = ExplainingEngine(Engine(), "auto")
    leak = engine.run(case_for("lh_errorleak", False), settings)
    assert leak.verdict == "leak", leak.message
    explained = leak.evidence["explained_by"]
    assert (explained["backend"], explained.get("pymem_sites")) == ("counters", True), explained
    error_line = _source_line("errorleak.c", "PyErr_NewException(")
    names_line = _source_line("errorleak.c", "PyModule_AddIntConstant(")
    own = [site for site in leak.sites if site["attributed_by"] == "extension"]
    assert os.path.basename(own[0]["at"]) == f"errorleak.c:{error_line}", own
    assert all(os.path.basename(site["at"]) != f"errorleak.c:{names_line}" for site in own), own
    interned = leak.evidence.get("interned_per_cycle") or {}
    if python_id != "3.11":
        assert interned.get("blocks", 0) >= 40      # the 40 names, immortal
    judged = leak.excess["bytes"] - (interned.get("bytes") or 0)
    held = sum(site["excess_bytes_per_cycle"] for site in own)
    assert 0.5 * judged < held <= 1.1 * judged, (held, judged)
    clean = engine.run(case_for("lh_errorclean", False), settings)
    assert clean.verdict == "clean" and "explained_by" not in clean.evidence, clean.message


def test_a_legacy_subinterpreter_leak_is_named_by_pymem_sites_not_by_tracemalloc(
        target_for, fixture_modules_for):
    """auto in the subinterpreter modes picks memray, else tracemalloc; both
    trace the interned names the verdict discounts, as valgrind does in
    finalize, so the --pymem-sites rerun goes first there too.  lh_errorleak
    in legacy subinterpreters on 3.12 (each cycle runs its single-phase
    PyInit again; 3.13 reuses the first cycle's module there, clean), no
    memray in the target: the PyErr_NewException line, its type's blocks
    apart from the 40 interned names.  `--explain tracemalloc` by name runs
    tracemalloc, whose one site for the module lumps the names in, at the
    import's Python line."""
    target = target_for("3.12")
    fixtures = fixture_modules_for("3.12")
    settings = RunSettings(python=target.executable, mode="legacy-subinterpreter",
                           pythonpath=(str(fixtures.directory),))
    error_line = f"errorleak.c:{_source_line('errorleak.c', 'PyErr_NewException(')}"
    leak = ExplainingEngine(Engine(), "auto").run(case_for("lh_errorleak", False), settings)
    assert leak.verdict == "leak", leak.message
    explained = leak.evidence["explained_by"]
    assert (explained["backend"], explained.get("pymem_sites")) == ("counters", True), explained
    assert explained["instead_of"] in ("memray", "tracemalloc"), explained
    assert f"{explained['instead_of']} would trace the whole heap" in explained["why"]
    own = [site for site in leak.sites if site["attributed_by"] == "extension"]
    assert own and os.path.basename(own[0]["at"]) == error_line, leak.sites
    assert 0 < sum(site["excess_blocks_per_cycle"] for site in own) < 40, own
    traced = ExplainingEngine(Engine(), "tracemalloc").run(case_for("lh_errorleak", False), settings)
    assert traced.evidence["explained_by"]["backend"] == "tracemalloc"
    top = traced.sites[0]
    assert top["module"] == "lh_errorleak" and top["excess_blocks_per_cycle"] >= 40, top


def test_the_hint_of_a_finalize_leak_is_the_command_that_names_its_site(target_for,
                                                                       fixture_modules_for):
    """A counters leak ends with the next step; taken verbatim, it must name
    the site.  On lh_errorleak the hint this gave before --explain existed,
    `--backend valgrind`, names the interned constant names instead (the
    slow test below); `--explain auto` names the PyErr_NewException line."""
    target = target_for("3.12")
    fixtures = fixture_modules_for("3.12")

    def run(*extra: str) -> dict:
        proc = subprocess.run(
            [sys.executable, "-m", "harness", "run", "-c", "import lh_errorleak", "--module",
             "lh_errorleak", "--python", target.executable, "--mode", "finalize", "--json", *extra],
            capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(fixtures.directory)})
        assert proc.returncode == 1, proc.stdout + proc.stderr
        return check_contract(proc.stdout) or json.loads(proc.stdout)

    first = run()
    assert first["verdict"] == "leak" and not first["sites"], first["message"]
    hint = first["message"].rsplit("rerun with ", 1)[1]
    sited = run(*hint.split())
    assert sited["verdict"] == "leak", sited["message"]
    own = [site for site in sited["sites"] if site["attributed_by"] == "extension"]
    assert own and os.path.basename(own[0]["at"]) == (
        f"errorleak.c:{_source_line('errorleak.c', 'PyErr_NewException(')}"), sited["sites"]
    assert "to see where it is allocated" not in sited["message"]


@pytest.mark.slow
def test_valgrind_records_miss_a_type_kept_in_a_static(target_for, fixture_modules_for):
    """Why --pymem-sites goes first: a full valgrind run of lh_errorleak
    (3.12, finalize, 2+8) names the interned constant names, which the
    verdict discounts, and not the exception type, which a static keeps
    reachable, so memcheck reports it in no loss record."""
    if shutil.which("valgrind") is None:
        missing("valgrind not installed (apt-get install valgrind)")
    target = target_for("3.12")
    fixtures = fixture_modules_for("3.12")
    full = Engine().run(case_for("lh_errorleak", False), RunSettings(
        python=target.executable, mode="finalize", backend="valgrind", cycles=8, warmup=2,
        timeout=1800, pythonpath=(str(fixtures.directory),)))
    assert full.verdict == "leak", full.message
    wheres = [site["at"] for site in full.sites]
    assert wheres[0] == f"errorleak.c:{_source_line('errorleak.c', 'PyModule_AddIntConstant(')}"
    assert f"errorleak.c:{_source_line('errorleak.c', 'PyErr_NewException(')}" not in wheres


@pytest.mark.slow
def test_valgrind_explains_from_after_the_second_cycle(fixture_modules_for, target_for, tmp_path):
    """lh_secondleak keeps 4 KiB a cycle and, at its second exec in the
    process only, loses a 32 KiB block: a valgrind window from cycle 1 shows
    that one-off (32768 / 4 cycles) as its biggest site; the explaining run's
    window starts after cycle 2, as 3.12.1's _ctypes and _curses need."""
    _, _, leak = valgrind_explained_twins(target_for, fixture_modules_for, tmp_path,
                                          "lh_secondleak", "lh_secondclean")
    lines = [site["at"] for site in leak["sites"] if site["module"] == "lh_secondleak"]
    source = (REPO_ROOT / "tests" / "fixtures" / "ext" / "mallocleak.c").read_text().splitlines()
    kept = next(i for i, text in enumerate(source, 1) if "malloc(LH_BUFFER_BYTES)" in text)
    one_off = next(i for i, text in enumerate(source, 1) if "malloc(LH_ONE_OFF_BYTES)" in text)
    # at 1+4 the top site was the one-off's line, 8,192 B a cycle
    assert lines[0] == f"mallocleak.c:{kept}", leak["sites"]
    assert leak["sites"][0]["bytes_per_cycle"] == 4096
    assert f"mallocleak.c:{one_off}" not in lines
    explained = leak["evidence"]["explained_by"]
    assert (explained["backend"], explained["warmup"]) == ("valgrind", 2)
    assert explained["verdict"] == "leak"


def test_explain_with_the_deciding_backend_is_one_line_exit_2(target_for):
    target = target_for("3.12")
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "-c", "pass", "--python", target.executable,
         "--mode", "subinterpreter", "--backend", "memray", "--explain", "memray"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "--explain memray" in proc.stderr + proc.stdout


def test_explained_result_follows_the_run_json_contract(memray_target, fixture_modules_for):
    target = memray_target("3.13")
    fixtures = fixture_modules_for("3.13")
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "-c", "import lh_mallocleak", "--module",
         "lh_mallocleak", "--python", target.executable, "--mode", "subinterpreter",
         "--cycles", "8", "--warmup", "2", "--explain", "memray", "--json"],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(fixtures.directory)})
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert result["verdict"] == "leak" and result["backend"] == "counters"
    assert result["evidence"]["explained_by"]["backend"] == "memray"
    assert result["sites"][0]["module"] == "lh_mallocleak"
    check_contract(proc.stdout)


def test_sites_of_a_tracing_run_that_found_no_leak_are_said_to_be_unconfirmed():
    # msgpack 1.2.4 on 3.13.0 finalize: the counters find +1 block beyond the
    # 1,228 interned strings CPython keeps; --explain's valgrind run judged
    # the case clean and its sites were CPython's own strings and code
    # objects, shown under the counters' `leak` as if they were its sites
    from harness.report.terminal import _explained_line
    explained = {"wanted": "memray", "backend": "valgrind", "why": "finalize mode", "warmup": 1,
                 "cycles": 4, "wall_s": 23.5}
    confirmed = _explained_line({**explained, "verdict": "leak"})
    unconfirmed = _explained_line({**explained, "verdict": "clean"})
    assert confirmed.startswith("sites by valgrind (1+4 cycles, 23.5 s; finalize mode)")
    assert "need not be this leak's" not in confirmed
    assert unconfirmed.startswith(confirmed)
    assert unconfirmed.endswith("but valgrind's own run judged the case clean, so these sites are its "
                                "growth over the control and need not be this leak's")


def test_a_valgrind_explain_run_skips_undefined_value_tracking_and_a_full_run_does_not(target_for,
                                                                                      tmp_path):
    # only the explaining run's sites are read, so memcheck's V-bits are not
    # needed there (pdb, 3.13.0, finalize, 1+4 cycles: 14.9 s -> 11.9 s); a
    # --backend valgrind run reports memcheck's errors, uninitialised values too
    from harness.backends.valgrind.backend import ValgrindBackend
    from harness.tools.explain import _explain_settings
    if shutil.which("valgrind") is None:
        missing("valgrind not installed (apt-get install valgrind)")
    target = target_for("3.12")
    deciding = RunSettings(python=target.executable, mode="finalize")
    explaining = _explain_settings(deciding, "valgrind")
    assert explaining.backend_options.sites_only
    assert not _explain_settings(deciding, "memray").backend_options.sites_only
    full = RunSettings(python=target.executable, mode="finalize", backend="valgrind")
    for flag in ("--undef-value-errors=no", "--keep-stacktraces=alloc"):
        assert flag in ValgrindBackend().launch(target, explaining, "case", tmp_path).prefix
        assert flag not in ValgrindBackend().launch(target, full, "case", tmp_path).prefix


def test_a_sites_only_valgrind_run_on_3_11_needs_no_plain_start_and_finds_no_error(target_for,
                                                                                 fixture_modules_for):
    # 3.11.7's plain start makes 622 uninitialised-value reports (26 contexts),
    # which the full backend discounts by running `python -c pass` under
    # memcheck; without undefined-value tracking it makes none, so the
    # explaining run skips that run, and still finds no error of the case's
    from harness.backends.valgrind import backend as valgrind_backend
    from harness.tools.explain import _explain_settings
    if shutil.which("valgrind") is None:
        missing("valgrind not installed (apt-get install valgrind)")
    target = target_for("3.11")
    fixtures = fixture_modules_for("3.11")
    settings = _explain_settings(RunSettings(python=target.executable, mode="finalize",
                                             pythonpath=(str(fixtures.directory),)), "valgrind")
    before = valgrind_backend.plain_start_errors.cache_info()
    result = Engine().run(case_for("lh_mallocleak", False), settings)
    assert valgrind_backend.plain_start_errors.cache_info() == before
    assert result.errors == [] and result.verdict == "leak", result.message
    assert result.sites[0]["module"] == "lh_mallocleak"
