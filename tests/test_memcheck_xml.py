"""The memcheck XML reader on files recorded here (tests/data/memcheck), Python 3.12.1.

- callleak-finalize-3.12.xml: `import lh_callleak` + 3 calls of its leaky
  function, 1 warm-up + 3 cycles, per-cycle leak checks, cpython-3.12.supp;
  its .samples.json holds the host's samples of the same run.
- uaf-finalize-3.12.xml: `import lh_uaf` (reads its buffer after freeing it).
- pass-finalize-3.12.xml: the `pass` control of that run (all suppressed).
- truncated-finalize-3.12.xml: a valgrind run killed with SIGKILL mid-run.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.backends.valgrind.analysis import ValgrindArtifacts, record_growth
from harness.backends.valgrind.records import records_by_cycle
from harness.backends.valgrind.memcheck_xml import parse_file, parse_stream, totals
from harness.host.runner import HostRun

DATA = Path(__file__).with_name("data") / "memcheck"


def test_per_cycle_checks_are_split_and_the_exit_check_is_full():
    report = parse_file(DATA / "callleak-finalize-3.12.xml")
    assert report.complete
    # checks after cycles 1..4 printed something (cycle 0 had nothing lost), then the exit check
    assert len(report.cycle_checks) == 4
    assert report.final_check is not None and report.final_check.full
    tuple_records = [r for r in report.final_check.records if r.total_bytes == 4320]
    assert len(tuple_records) == 1
    # 12 tuples directly lost, their 8 ints each indirectly: bytes count both, blocks only tuples
    assert tuple_records[0].total_blocks == 12 and "indirect" in tuple_records[0].text


def test_added_bytes_are_read_from_the_text_of_each_check():
    report = parse_file(DATA / "callleak-finalize-3.12.xml")
    added = [r.added_bytes for c in report.cycle_checks for r in c.records if r.total_bytes % 1080 == 0
             and "lh_callleak" in " ".join(f.obj or "" for f in r.stack)]
    assert added == [1080, 1080, 1080, 1080]


def test_checks_map_to_cycles_by_the_samples_lost_bytes():
    report = parse_file(DATA / "callleak-finalize-3.12.xml")
    samples = json.loads((DATA / "callleak-finalize-3.12.samples.json").read_text())
    history = records_by_cycle(report, samples)
    assert [cycle for cycle, _ in history] == [1, 2, 3, 4]
    for cycle, records in history:
        sample = next(s for s in samples if s["cycle"] == cycle)
        assert totals(records, "definite")[0] == sample["vg_lost_bytes"]


def test_record_growth_per_cycle_over_the_window():
    report = parse_file(DATA / "callleak-finalize-3.12.xml")
    samples = json.loads((DATA / "callleak-finalize-3.12.samples.json").read_text())
    run = HostRun(samples=samples, completed=True, returncode=0,
                  artifacts=ValgrindArtifacts(report, "client-requests", [], "host"))
    growth = record_growth(run, warmup=1)
    by_bytes = sorted(growth.values(), key=lambda g: -g[0])
    bytes_pc, blocks_pc, record = by_bytes[0]
    assert (bytes_pc, blocks_pc) == (1080.0, 3.0)
    assert any(f.fn == "f" and f.file == "callleak.c" for f in record.stack)


def test_invalid_read_with_free_and_alloc_stacks():
    report = parse_file(DATA / "uaf-finalize-3.12.xml")
    (error,) = report.errors
    assert error.kind == "InvalidRead" and error.what == "Invalid read of size 1"
    assert error.count == 5  # once per cycle: 1 warm-up + 4
    assert error.stack[0].fn == "free_module" and error.stack[0].file == "uaf.c"
    labels = [label for label, _ in error.aux]
    assert "free'd" in labels[0] and labels[1] == "Block was alloc'd at"
    assert error.aux[1][1][1].fn == "exec_module"


def test_suppression_counts_are_read():
    report = parse_file(DATA / "pass-finalize-3.12.xml")
    assert report.complete and not report.errors
    assert sum(report.suppression_counts.values()) > 100
    assert all(name.startswith("lh-cpython-3.12.1-") for name in report.suppression_counts)


def test_truncated_xml_from_a_killed_run_keeps_what_was_written():
    path = DATA / "truncated-finalize-3.12.xml"
    text = path.read_bytes()
    assert not text.rstrip().endswith(b"</valgrindoutput>")
    report = parse_file(path)
    assert not report.complete
    assert report.pid is not None
    assert report.cycle_checks, "the checks before the kill are kept"
    assert all(r.stack for c in report.checks for r in c.records)


def test_cut_anywhere_never_raises():
    whole = (DATA / "uaf-finalize-3.12.xml").read_bytes()
    previous_errors = 0
    for cut in range(0, len(whole), max(1, len(whole) // 37)):
        report = parse_stream([whole[:cut]])
        assert not report.complete
        assert len(report.errors) >= previous_errors  # a longer prefix never loses an error
        previous_errors = len(report.errors)
    assert parse_stream([whole]).complete


def test_missing_file_is_an_empty_incomplete_report():
    report = parse_file(DATA / "does-not-exist.xml")
    assert not report.complete and not report.checks and not report.errors
