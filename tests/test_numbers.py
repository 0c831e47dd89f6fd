"""Numbers for people: one formatting module, no scientific notation, no rich outside the terminal."""

from __future__ import annotations

import subprocess
import sys

from fixtures.targets import REPO_ROOT, debug_build_version
from harness.verdict.ending import summary_line, with_where_hint
from harness.report.numbers import fmt_bytes, fmt_count, fmt_number
from harness.result import Result


def result_with(excess: dict, mode: str = "finalize", backend: str = "counters") -> Result:
    return Result(case="x", module="x", python={"version": "3.12.1", "executable": "/py", "debug": False},
                  mode=mode, backend=backend, host="c", cycles=20, warmup=5, verdict="leak",
                  excess=excess, evidence={"interned_strings_per_cycle": 1068.0})


def test_big_growth_reads_in_megabytes_with_separators_never_scientific():
    line = summary_line(result_with({"blocks": 32768.0, "bytes": 3276800.0}), ["bytes"])
    assert "+32,768 blocks/cycle, +3.3 MB/cycle over the control" in line
    assert "1,068 interned strings/cycle" in line
    assert "e+" not in line and "e-" not in line


def test_formatters():
    assert fmt_bytes(842.0) == "+842 B" and fmt_bytes(-448.0) == "-448 B"
    assert fmt_bytes(53777.0) == "+53.8 kB" and fmt_bytes(3.2768e9) == "+3.3 GB"
    assert fmt_number(1487.0) == "+1,487" and fmt_number(1 / 3) == "+0.33"
    assert fmt_count(1068.0) == "1,068" and fmt_number(None) == "-"


def _with_hint(result, triggered):
    result.message = summary_line(result, triggered)
    with_where_hint(result)
    return result.message


def test_counters_leak_ends_with_the_backend_that_says_where():
    finalize = _with_hint(result_with({"blocks": 9.0, "bytes": 360.0}), ["blocks"])
    assert finalize.endswith("rerun with --explain auto")
    sub = _with_hint(result_with({"blocks": 9.0, "bytes": 360.0}, mode="subinterpreter"), ["blocks"])
    assert ("rerun with --explain auto (memray when it is inside the target: /py -m pip install "
            "memray; else tracemalloc or valgrind)") in sub
    traced = _with_hint(result_with({"blocks": 9.0, "bytes": 360.0}, backend="valgrind"), ["blocks"])
    assert "rerun" not in traced
    # a counters leak whose native sites already say where gets no hint
    sited = result_with({"blocks": 9.0, "bytes": 360.0})
    sited.sites = [{"module": "lh_mallocleak", "kind": "native"}]
    assert "rerun" not in _with_hint(sited, ["native_blocks"])


def test_file_reports_and_messages_do_not_load_rich():
    code = ("import sys, harness.report.markdown, harness.report.html, harness.report.junit, "
            "harness.verdict.ending, harness.report.numbers; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_debug_target_is_whichever_debian_dbg_build_is_installed(tmp_path):
    assert debug_build_version(tmp_path) == "3.11"   # none: the name `missing` reports
    for name in ("python3.11-dbg", "python3.13-dbg", "python3.13-dbg-config", "python3.9"):
        (tmp_path / name).touch()
    assert debug_build_version(tmp_path) == "3.13"
