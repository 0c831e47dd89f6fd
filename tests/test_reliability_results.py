"""Results files under attack: empty or foreign comparisons, poisoned numbers, known-leaks
entries that silently widen or vanish.  All one line, exit 2, no traceback."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import dispatch

REPO = Path(__file__).resolve().parent.parent


def harness(*args: str) -> subprocess.CompletedProcess:
    """The command line in this process (the real dispatch and error mapping; no
    interpreter start per call)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = dispatch(list(args))
        except SystemExit as exc:
            code = exc.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_compare_of_a_missing_file_is_one_line_from_a_real_process():
    # the same file through a real interpreter start, once: no traceback, exit 2
    proc = subprocess.run([sys.executable, "-m", "harness", "compare", "/nonexistent", "/dev/null"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    one_error_line(proc)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("leak-harness: error:"), proc.stderr
    return lines[0]


def result_line(case: str = "json-import", verdict: str = "leak", version: str = "3.12.1",
                mode: str = "finalize", **extra) -> dict:
    line = {"schema": 1, "case": case, "module": case.split("-")[0],
            "python": {"version": version, "executable": "/py", "debug": False},
            "mode": mode, "backend": "counters", "host": "c", "cycles": 20, "warmup": 5,
            "verdict": verdict, "role": "case",
            "per_cycle": {"blocks": 12.0, "bytes": 480.0, "refs": None, "rss": 0.0},
            "control": {"case": "(control: pass)",
                        "per_cycle": {"blocks": 2.0, "bytes": 80.0, "refs": None, "rss": 0.0}},
            "excess": {"blocks": 10.0, "bytes": 400.0, "refs": None, "rss": 0.0},
            "tolerance": {"blocks": 1.0, "bytes": 128.0},
            "samples": [{"cycle": c, "mem_blocks": 0, "obj_blocks": 10 * c, "mem_bytes": 0,
                         "obj_bytes": 400 * c} for c in range(6)],
            "sites": [], "message": "leaks"}
    line.update(extra)
    return line


def write_lines(path: Path, *lines: dict) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_compare_refuses_empty_results(tmp_path):
    baseline = write_lines(tmp_path / "base.jsonl", result_line())
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    message = one_error_line(harness("compare", str(baseline), str(empty)))
    assert "no case results" in message
    assert "OK" not in harness("compare", str(baseline), str(empty)).stdout


def test_compare_refuses_results_covering_none_of_the_baseline(tmp_path):
    baseline = write_lines(tmp_path / "base.jsonl", result_line(version="3.12.1"))
    other = write_lines(tmp_path / "new.jsonl", result_line(version="3.13.0", verdict="clean"))
    assert "cover none of the baseline" in one_error_line(
        harness("compare", str(baseline), str(other)))
    # the twin: the same key covered is compared as usual (here a fixed leak: exit 0)
    same = write_lines(tmp_path / "same.jsonl", result_line(version="3.12.4", verdict="clean"))
    proc = harness("compare", str(baseline), str(same))
    assert proc.returncode == 0 and "FIXED (1)" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("field, value, named", [
    ("excess", {"blocks": float("nan"), "bytes": 1.0, "refs": None, "rss": 0.0}, "excess.blocks"),
    ("excess", {"blocks": "12", "bytes": 1.0, "refs": None, "rss": 0.0}, "excess.blocks"),
    ("samples", [{"cycle": 0, "obj_blocks": "many"}], "samples[0].obj_blocks"),
    ("samples", ["not a sample"], "samples[0]"),
    ("samples", {"cycle": 0}, "samples"),
    ("tolerance", {"blocks": float("inf")}, "tolerance.blocks"),
])
def test_report_and_compare_refuse_poisoned_numbers(tmp_path, field, value, named):
    bad = write_lines(tmp_path / "bad.jsonl", result_line(**{field: value}))
    good = write_lines(tmp_path / "good.jsonl", result_line())
    for args in (("report", str(bad), "--format", "html", "--output", str(tmp_path / "r.html")),
                 ("report", str(bad), "--format", "markdown"),
                 ("compare", str(good), str(bad)), ("compare", str(bad), str(good))):
        assert named in one_error_line(harness(*args)), args
    # the clean twin renders
    proc = harness("report", str(good), "--format", "html", "--output", str(tmp_path / "ok.html"))
    assert proc.returncode == 0, proc.stderr


def known_leaks(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "known.toml"
    path.write_text('[[leak]]\nmodule = "json"\nreason = "understood"\n' + body)
    return path


@pytest.mark.parametrize("body, named", [
    ('python = ""\n', "python"),
    ("verdicts = []\n", "verdicts"),
    ("mode = []\n", "mode"),
    ("backend = []\n", "backend"),
    ("triggered_by = []\n", "triggered_by"),
])
def test_known_leaks_empty_values_are_errors_not_wildcards(tmp_path, body, named):
    baseline = write_lines(tmp_path / "base.jsonl", result_line(verdict="clean"))
    new = write_lines(tmp_path / "new.jsonl", result_line())
    message = one_error_line(harness("compare", str(baseline), str(new), "--known",
                                     str(known_leaks(tmp_path, body))))
    assert named in message


def test_known_leak_of_a_still_leaking_module_is_known_not_stale(tmp_path):
    baseline = write_lines(tmp_path / "base.jsonl", result_line(verdict="clean"))
    new = write_lines(tmp_path / "new.jsonl", result_line())
    proc = harness("compare", str(baseline), str(new), "--known",
                   str(known_leaks(tmp_path, 'verdicts = ["leak"]\npython = ">=3.12"\n')))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "KNOWN (1)" in proc.stdout and "STALE" not in proc.stdout


@pytest.mark.parametrize("text", ["", "\n\n\n", '{"schema": 1, "case": "json-imp'])
def test_report_and_merge_refuse_input_with_no_results(tmp_path, text):
    # an empty JUnit file with exit 0 turned a sweep that wrote nothing into a green CI step
    empty = tmp_path / "empty.jsonl"
    empty.write_text(text)
    for args in (("report", str(empty), "--format", "junit", "-o", str(tmp_path / "r.xml")),
                 ("report", str(empty)), ("merge", str(empty), "-o", str(tmp_path / "m.jsonl"))):
        proc = harness(*args)
        if text.endswith("imp"):   # the cut-off line is said first, as a note
            notes = [ln for ln in proc.stderr.splitlines() if ln.startswith("leak-harness: note:")]
            assert len(notes) == 1 and "incomplete last line dropped" in notes[0]
            proc.stderr = proc.stderr.replace(notes[0] + "\n", "")
        assert "no results" in one_error_line(proc), args
    assert not (tmp_path / "r.xml").exists()
    # the twin: one empty shard among others merges and reports as before
    good = write_lines(tmp_path / "good.jsonl", result_line())
    for args in (("merge", str(empty), str(good), "-o", str(tmp_path / "m.jsonl")),
                 ("report", str(empty), str(good), "--format", "junit")):
        proc = harness(*args)
        assert proc.returncode == 0, proc.stderr
    assert "json-import" in (tmp_path / "m.jsonl").read_text()
