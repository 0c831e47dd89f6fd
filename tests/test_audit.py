"""`leak-harness audit`: init kind without source, loadability, leaks, crashes isolated.

The fixtures stand for the cases an audit meets: lh_singlephase (single-phase
init, refused by isolated subinterpreters), lh_callclean (multi-phase,
declares Py_MOD_PER_INTERPRETER_GIL_SUPPORTED), lh_stateleak (ready, but
leaks its state in every mode), lh_crash (SIGSEGV in PyInit: the probe and
every mode die, in processes of their own, and the audit carries on).
"""

from __future__ import annotations

import json

import pytest

from harness.report.audit import markdown_summary
from harness.tools.audit.survey import run_audit
from harness.cli import main as cli_main
from harness.engine import Engine
from harness.settings import RunSettings

FIXTURES = ["lh_singlephase", "lh_callclean", "lh_stateleak", "lh_crash"]
BASE = dict(cycles=6, warmup=2, timeout=60.0)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.fixture(scope="module")
def audit_312(fixture_modules_for, engine):
    built = fixture_modules_for("3.12")
    base = RunSettings(pythonpath=(str(built.directory),), **BASE)
    return run_audit(built.target.executable, base, modules=FIXTURES, jobs=2, engine=engine)


def rows_by_name(audit):
    return {row.module: row for row in audit.rows}


def test_single_phase_fixture_is_single_phase_and_refused_isolated(audit_312):
    row = rows_by_name(audit_312)["lh_singlephase"]
    assert row.init == "single-phase"
    assert row.multiple_interpreters is None
    assert row.loads("subinterpreter") is False
    assert "module lh_singlephase does not support loading in subinterpreters" in \
        row.refusal("subinterpreter")
    assert row.loads("legacy-subinterpreter") is True
    assert row.ready is False and not row.leaks


def test_clean_multi_phase_fixture_is_ready(audit_312):
    row = rows_by_name(audit_312)["lh_callclean"]
    assert row.init == "multi-phase"
    assert row.multiple_interpreters == "per-interpreter GIL"
    assert row.loads("subinterpreter") and row.loads("legacy-subinterpreter")
    assert row.ready is True and not row.leaks and not row.crashes()
    assert row.end_interpreter_leak()["mode"] == "subinterpreter"
    assert row.leak("finalize")["verdict"] == "clean"


def test_state_leak_is_ready_but_leaks_per_end_interpreter_and_finalize(audit_312):
    row = rows_by_name(audit_312)["lh_stateleak"]
    assert row.ready is True
    assert row.end_interpreter_leak()["verdict"] == "leak"
    assert row.leak("finalize")["verdict"] == "leak"
    # a list, its item array and 20 ints: 22 blocks a module object
    assert row.end_interpreter_leak()["blocks"] == pytest.approx(22, abs=2)


def test_crashing_fixture_is_isolated_to_its_own_processes(audit_312):
    rows = rows_by_name(audit_312)
    row = rows["lh_crash"]
    assert row.init == "unknown"
    assert row.probe_problem == "probe killed by SIGSEGV in PyInit"
    crashed = row.crashes()
    assert any(c.startswith("init probe:") for c in crashed)
    assert {c.split(":")[0] for c in crashed} >= {"subinterpreter", "legacy-subinterpreter", "finalize"}
    assert row.ready is False
    # the audit went on: every other row has its probe and all three modes
    for name in FIXTURES[:-1]:
        assert rows[name].init != "unknown" and len(rows[name].results) == 3


def test_markdown_summary_counts_ready_and_leaking(audit_312):
    text = markdown_summary(audit_312)
    assert "**2 of 4 extension modules are ready for per-interpreter GIL; these 1 leak per cycle:** " \
           "`lh_stateleak`" in text
    counts = audit_312.counts()
    assert counts == {"extension_modules": 4, "multi_phase": 2, "single_phase": 1,
                      "declare_per_interpreter_gil": 2, "load_isolated": 2, "ready": 2,
                      "leaking": 1, "crashing": 1}


def test_before_312_there_is_no_own_gil_column(fixture_modules_for, engine):
    built = fixture_modules_for("3.11")
    base = RunSettings(pythonpath=(str(built.directory),), **BASE)
    audit = run_audit(built.target.executable, base, modules=["lh_singlephase", "lh_callclean"],
                      jobs=2, engine=engine)
    rows = rows_by_name(audit)
    assert audit.modes == ["legacy-subinterpreter", "finalize"]
    assert rows["lh_singlephase"].init == "single-phase"
    assert rows["lh_callclean"].init == "multi-phase"
    assert rows["lh_callclean"].multiple_interpreters is None  # the slot is 3.12+
    assert rows["lh_callclean"].ready is None
    assert "has no per-interpreter GIL (3.12+)" in markdown_summary(audit)


def test_cli_json_and_exit_code(fixture_modules_for, capsys, monkeypatch, tmp_path):
    built = fixture_modules_for("3.13")
    monkeypatch.setenv("PYTHONPATH", str(built.directory))
    summary = tmp_path / "audit.md"
    code = cli_main(["audit", "--python", built.target.executable, "--module", "lh_callclean",
                     "--module", "lh_singlephase", "--cycles", "6", "--warmup", "2", "--json",
                     "--markdown", str(summary)])
    report = json.loads(capsys.readouterr().out)
    assert code == 0  # nothing leaks, nothing crashes
    rows = {m["module"]: m for m in report["modules"]}
    assert rows["lh_callclean"]["ready"] is True
    assert rows["lh_singlephase"]["loads_isolated"] is False
    assert "does not support loading in subinterpreters" in rows["lh_singlephase"]["isolated_message"]
    assert report["counts"]["ready"] == 1
    assert "1 of 2 extension modules are ready" in summary.read_text()


def test_stdlib_audit_of_the_running_python_completes(engine):
    import sys
    base = RunSettings(cycles=4, warmup=1, timeout=120.0)
    audit = run_audit(sys.executable, base, scope="stdlib", jobs=2, engine=engine)
    counts = audit.counts()
    assert counts["extension_modules"] >= 40, counts
    rows = rows_by_name(audit)
    # every module's init kind was read from PyInit's return value, none guessed
    unknown = {r.module: r.probe_problem for r in audit.rows if r.init == "unknown"}
    assert not unknown, unknown
    assert rows["_json"].init == "multi-phase"
    assert counts["multi_phase"] + counts["single_phase"] == counts["extension_modules"]
    assert all(len(r.results) == len(audit.modes) for r in audit.rows)
    assert "_thread" in audit.builtins  # compiled in: listed, not audited
