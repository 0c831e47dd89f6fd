"""A leak through PyMem's RAW domain is judged, not only reported.

The native count leaves out what PyMem_RawMalloc hands to malloc (the RAW
hook counts it), and RAW was reported only: a RAW leak was seen by no judged
metric.  Found on _cffi_backend 2.1.1 (init_cffi_tls_zombie keeps a
PyThread_allocate_lock() per init, PyMem_RawMalloc(32)): `clean` in finalize
mode on 3.12.1 and 3.13.0 with `raw_blocks` +1 a cycle in its excess, while
memcheck on a plain Py_Initialize/import/Py_FinalizeEx loop shows the same
block "definitely lost" once per cycle.

tests/fixtures/ext/rawleak.c (built with the other fixtures) keeps a PyMem_RawMalloc(32) block
per exec in a C static; its twin frees the previous one first.
"""

from __future__ import annotations

import subprocess

import pytest

from fixtures.targets import missing
from harness.cases.model import Case
from harness.engine import Engine
from harness.settings import RunSettings

MODES = [("3.11", "finalize"), ("3.12", "finalize"), ("3.12", "subinterpreter"),
         ("3.13", "finalize"), ("3.13", "subinterpreter"), ("3.13", "legacy-subinterpreter")]


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.mark.parametrize("python_id, mode", MODES)
def test_a_raw_domain_leak_is_a_leak_and_its_twin_clean(engine, fixture_modules_for, python_id, mode):
    built = fixture_modules_for(python_id)
    target, directory = built.target, built.directory

    def run(module: str):
        settings = RunSettings(python=target.executable, mode=mode, backend="counters", cycles=8,
                               warmup=2, timeout=60.0, pythonpath=(str(directory),))
        return engine.run(Case(name=module, code=f"import {module}", module=module), settings)

    leaky, twin = run("lh_rawleak"), run("lh_rawclean")
    assert leaky.verdict == "leak", leaky.message
    assert set(leaky.evidence["triggered_by"]) == {"raw_blocks"}, leaky.evidence["triggered_by"]
    # one block a cycle, exactly; its 32 bytes are under the bytes floor
    assert leaky.excess["raw_blocks"] == 1.0 and leaky.excess["raw_bytes"] == 32.0
    assert "; PyMem RAW +1 blocks/cycle, +32 B/cycle (judged on raw_blocks" in leaky.message
    assert twin.verdict == "clean", twin.message
    assert twin.excess["raw_blocks"] == 0.0


@pytest.mark.slow
def test_cffi_backend_from_the_package_index_leaks_one_raw_block_a_finalize_cycle(
        engine, target_for, tmp_path):
    """cffi 2.x on 3.13 in finalize mode: the RAW lock its init keeps."""
    base = target_for("3.13").executable
    venv = tmp_path / "v"
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "cffi"],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        missing(f"cannot install cffi from the package index: {proc.stderr[-200:]}")
    settings = RunSettings(python=str(venv / "bin" / "python"), mode="finalize", backend="counters",
                           cycles=8, warmup=2, timeout=120.0)
    result = engine.run(Case(name="_cffi_backend", code="import _cffi_backend",
                             module="_cffi_backend"), settings)
    assert result.verdict == "leak", result.message
    assert "raw_blocks" in result.evidence["triggered_by"]
    assert result.excess["raw_blocks"] >= 1.0
    assert result.distribution["name"] == "cffi"


def test_raw_is_judged_under_counters_only():
    # tracemalloc keeps a RAW trace entry per live block it traces: its RAW
    # growth follows the case's kept blocks and is the tool's own
    from harness.verdict.rule import judge, judged_metrics
    flat = [0.0] * 9
    case = {"blocks": flat, "raw_blocks": [float(i) for i in range(9)]}
    control = {"blocks": flat, "raw_blocks": flat}
    assert judge(case, control, 2, judged=judged_metrics("counters")).triggered_by == ["raw_blocks"]
    for backend in ("tracemalloc", "memray", "valgrind"):
        judgement = judge(case, control, 2, judged=judged_metrics(backend))
        assert judgement.verdict == "clean" and judgement.excess["raw_blocks"] == 1.0
