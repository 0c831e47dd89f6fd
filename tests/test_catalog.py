"""The shipped case catalog: every file valid (fast, nothing runs); a handful run for real.

The whole catalog x modes x Pythons takes far too long for CI (about 290 host
runs); it was run by hand and each case file records what it measured.  Here
a few cases run through pytest collection on 3.12, one per outcome.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys


from fixtures.targets import REPO_ROOT
from harness.cases.catalog import CATALOG_DIR, load_catalog
from harness.host.modes import MODES

pytest_plugins = ["pytester"]


def test_every_catalog_file_loads_and_is_curated():
    catalog = load_catalog(CATALOG_DIR)
    assert len(catalog) >= 40
    assert len({c.case.module.split(".")[0] for c in catalog}) >= 40
    for case_file in catalog:
        case = case_file.case
        where = case_file.path.name
        assert case.tags, f"{where}: untagged"
        assert case_file.description, f"{where}: no description"
        # a hyphen keeps case names apart from module names in `leak-harness run CASE`
        assert "-" in case.name and case_file.path.stem == case.name, where
        assert case.code.strip() != f"import {case.module}", f"{where}: exercise more than the import"
        assert set(case.modes) <= set(MODES), where
        compile(case.source_code, where, "exec")
        assert "Measured with leak-harness" in case_file.path.read_text(), f"{where}: no measured verdicts"


# one case per outcome on 3.12.1 (see each file's comments): clean in both modes,
# unsupported in isolated subinterpreters, CPython's own crash on re-initialization,
# a finalize-only case
SUBSET = {
    "struct-pack": {"finalize": "PASSED", "subinterpreter": "PASSED"},
    "pyexpat-handlers": {"finalize": "PASSED", "subinterpreter": "SKIPPED"},
    "decimal-context": {"finalize": "ERROR", "subinterpreter": "ERROR"},
    "signal-handler": {"finalize": "PASSED"},
}


def test_catalog_subset_runs_through_pytest_collection(pytester, target_for):
    python = target_for("3.12").executable
    cases = pytester.mkdir("cases")
    for name in SUBSET:
        shutil.copy(CATALOG_DIR / f"{name}.toml", cases)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", "-rs", f"--leak-python={python}",
                                           "--leak-cycle-count", "10", "--leak-warmup", "3", timeout=300)
    out = result.stdout.str()
    result.assert_outcomes(passed=4, skipped=1, errors=2)
    for name, outcomes in SUBSET.items():
        for mode, outcome in outcomes.items():
            assert f"cases/{name}.toml::{name}[{mode}] {outcome}" in out, out
    assert "module pyexpat does not support loading in subinterpreters" in out
    assert "host killed by SIG" in out


def test_leak_harness_run_accepts_a_catalog_name_and_a_toml_path(target_for):
    python = target_for("3.12").executable
    for case in ("struct-pack", str(REPO_ROOT / "harness" / "data" / "cases" / "struct-pack.toml")):
        proc = subprocess.run(
            [sys.executable, "-m", "harness", "run", case, "--python", python, "--cycles", "8",
             "--warmup", "2", "--json"], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert (report["case"], report["module"], report["verdict"]) == ("struct-pack", "struct", "clean")
