"""`leak-harness compare` and known leaks, on the results of a real sweep.

The sweep: the fixture extensions (leaking, clean, crashing) in finalize mode on
3.12 and 3.13, plus `ossaudiodev` on 3.12 and `_curses` on 3.13, which the seeded
suppressions/known-leaks.toml must recognise as the leaks it documents.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.targets import REPO_ROOT
from harness.results.compare import compare, compare_key, parse_threshold
from harness.errors import HarnessError
from harness.results.known_leaks import VersionRange, load_known_leaks
from harness.results.load import ResultSet, load_results

KNOWN_FILE = REPO_ROOT / "suppressions" / "known-leaks.toml"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def results(fixture_modules_for, tmp_path_factory) -> Path:
    """One JSON-lines file: both sweeps (3.12 and 3.13), run side by side."""
    out = tmp_path_factory.mktemp("compare") / "results.jsonl"
    procs = []
    for python_id, stdlib_module in (("3.12", "ossaudiodev"), ("3.13", "_curses")):
        fixtures = fixture_modules_for(python_id)
        args = [sys.executable, "-m", "harness", "sweep", "--python", fixtures.target.executable,
                "--mode", "finalize", "--cycles", "8", "--warmup", "2", "--jobs", "1",
                "--out", str(out)]
        for module in ("lh_initleak", "lh_initclean", "lh_crash", stdlib_module):
            args += ["--module", module]
        procs.append(subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=dict(os.environ, PYTHONPATH=str(fixtures.directory))))
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 1, f"sweep exit {proc.returncode}:\n{stdout}\n{stderr}"
    return out


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def pick(lines: list[dict], module: str, version: str = "3.12") -> dict:
    return next(l for l in lines if l.get("module") == module and l["role"] == "case"
                and l["python"]["version"].startswith(version))


def test_a_new_leak_fails_and_the_same_leak_listed_as_known_passes(results, tmp_path):
    without_leak = [l for l in lines_of(results) if l.get("module") != "lh_initleak"]
    # the baseline as the nightly keeps it: a JSON report without samples
    baseline = tmp_path / "baseline.json"
    proc = cli("report", str(write(tmp_path / "yesterday.jsonl", without_leak)), "--format", "json",
               "--no-samples", "-o", str(baseline))
    assert proc.returncode == 0, proc.stderr
    proc = cli("compare", str(baseline), str(results), "--json", str(tmp_path / "compare.json"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "NEW LEAKS (2)" in proc.stdout and "FAIL: 2 new leak(s)" in proc.stdout
    report = json.loads((tmp_path / "compare.json").read_text())
    assert {(c["module"], c["python"][:4], c["baseline_verdict"]) for c in report["new"]} == \
        {("lh_initleak", "3.12", None), ("lh_initleak", "3.13", None)}
    assert report["failed"] is True and report["grown"] == [] and report["new_crashes"] == []

    known = tmp_path / "known.toml"
    known.write_text('[[leak]]\nmodule = "lh_initleak"\npython = ">=3.12, <3.14"\nmode = "finalize"\n'
                     'reason = "the fixture keeps its table in a C static"\nlink = "https://example.org/1"\n'
                     '[[leak]]\nmodule = "lh_initclean"\nreason = "fixed long ago"\n'
                     '[[leak]]\nmodule = "lh_never_swept"\nreason = "not in this run"\n')
    proc = cli("compare", str(baseline), str(results), "--known", str(known), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["new"] == [] and report["failed"] is False
    assert [(c["module"], c["category"], c["known"]["reason"]) for c in report["known"]] == \
        [("lh_initleak", "new", "the fixture keeps its table in a C static")] * 2
    assert [e["module"] for e in report["stale_known_leaks"]] == ["lh_initclean"]
    assert [e["module"] for e in report["unexercised_known_leaks"]] == ["lh_never_swept"]
    text = cli("compare", str(baseline), str(results), "--known", str(known)).stdout
    assert "KNOWN (2)" in text and "STALE known-leaks entries (1)" in text and text.rstrip().endswith(
        "(2 known, 2 unchanged, 0 fixed)")  # ossaudiodev and _curses leak in both runs


def test_a_new_crash_fails_unless_known(results, tmp_path):
    baseline = write(tmp_path / "base.jsonl", [l for l in lines_of(results) if l.get("module") != "lh_crash"])
    proc = cli("compare", str(baseline), str(results), "--json")
    assert proc.returncode == 1
    crashes = json.loads(proc.stdout)["new_crashes"]
    assert {(c["module"], c["verdict"]) for c in crashes} == {("lh_crash", "crash")}
    known = tmp_path / "known.toml"
    known.write_text('[[leak]]\nmodule = "lh_crash"\nverdicts = ["crash"]\nreason = "writes through NULL"\n')
    assert cli("compare", str(baseline), str(results), "--known", str(known)).returncode == 0


def test_the_seeded_known_leaks_cover_the_leaks_they_document_and_no_more(results):
    entries = load_known_leaks(KNOWN_FILE)
    assert entries and all(len(e.reason) > 40 for e in entries)
    current = load_results([results])
    outcome = compare(ResultSet(), current, entries)
    known = {(c.now["module"], c.now["python"]["version"][:4]) for c in outcome.known}
    assert ("ossaudiodev", "3.12") in known       # the 3.12 ossaudiodev entry
    assert ("_curses", "3.13") in known           # the 3.12-3.13 _curses entry
    # the fixture's leak is documented nowhere: it stays new
    assert {(c.now["module"], c.now["python"]["version"][:4]) for c in outcome.new} == \
        {("lh_initleak", "3.12"), ("lh_initleak", "3.13")}


def _pair(results: Path, scale_bytes: float, scale_blocks: float | None = None) -> tuple[ResultSet, ResultSet]:
    line = pick(lines_of(results), "lh_initleak")
    grown = copy.deepcopy(line)
    grown["excess"]["bytes"] *= scale_bytes
    grown["excess"]["blocks"] *= scale_blocks if scale_blocks is not None else scale_bytes
    return ResultSet(lines=[line]), ResultSet(lines=[grown])


def test_grown_needs_the_threshold_and_the_noise(results):
    before, now = _pair(results, 2.0)
    outcome = compare(before, now, threshold=0.25)
    assert [c.category for c in outcome.grown] == ["grown"] and outcome.failed
    assert outcome.grown[0].growth == {"bytes": 1.0, "blocks": 1.0}
    before, now = _pair(results, 1.2)                   # +20% < 25%
    assert not compare(before, now, threshold=0.25).grown
    assert compare(before, now, threshold=0.10).grown   # but > 10%
    # bytes +40% (+338 B): past the threshold but inside the noise (the 368 B tolerance);
    # blocks unchanged -> not grown
    before, now = _pair(results, 1.4, 1.0)
    line = now.lines[0]
    assert line["tolerance"]["bytes"] > line["excess"]["bytes"] - before.lines[0]["excess"]["bytes"]
    outcome = compare(before, now, threshold=0.25)
    assert not outcome.grown and [c.category for c in outcome.unchanged] == ["unchanged"]


def test_fixed_and_patch_releases_match_the_baseline(results):
    lines = lines_of(results)
    leak, clean = pick(lines, "lh_initleak"), pick(lines, "lh_initclean")
    fixed = dict(clean, case=leak["case"], module=leak["module"])
    outcome = compare(ResultSet(lines=[leak]), ResultSet(lines=[fixed]))
    assert [c.category for c in outcome.fixed] == ["fixed"] and not outcome.failed
    newer = copy.deepcopy(leak)
    newer["python"]["version"] = "3.12.9"
    assert compare_key(newer) == compare_key(leak)
    outcome = compare(ResultSet(lines=[leak]), ResultSet(lines=[newer]))
    assert not outcome.new and len(outcome.unchanged) == 1
    debug = copy.deepcopy(leak)
    debug["python"]["debug"] = True
    assert compare(ResultSet(lines=[leak]), ResultSet(lines=[debug])).new


def test_version_ranges_compare_on_the_precision_written():
    assert VersionRange.parse(">=3.12, <3.14", "t").admits("3.13.0")
    assert not VersionRange.parse(">=3.12, <3.14", "t").admits("3.14.0a1")
    assert VersionRange.parse("<=3.13", "t").admits("3.13.5")
    assert VersionRange.parse("==3.12", "t").admits("3.12.1")
    assert not VersionRange.parse("==3.12", "t").admits("3.13.0")
    assert not VersionRange.parse("!=3.12.1", "t").admits("3.12.1")
    assert parse_threshold("25%") == 0.25 and parse_threshold("0.1") == 0.1
    for bad in ("25x", "-5%", "3"):
        with pytest.raises(HarnessError):
            parse_threshold(bad)


@pytest.mark.parametrize("content, message", [
    ("[[leak]\nmodule=", "not valid TOML"),
    ('[[leak]]\nmodule = "x"\n', "entry 1: 'reason' is required"),
    ('[[leak]]\nmodule = "x"\nreason = "r"\nmodes = "finalize"\n', "entry 1: unknown field(s) modes"),
    ('[[leak]]\nmodule = "x"\nreason = "r"\nmode = "final"\n', "mode 'final' is not one of"),
    ('[[leak]]\nmodule = "x"\nreason = "r"\npython = "3.12+"\n', "python = '3.12+'"),
    ('[[leak]]\nmodule = "x"\nreason = "r"\ntriggered_by = ["rss"]\n', "triggered_by 'rss' is not one of"),
    ('[leak]\nmodule = "x"\n', "must be an array of tables"),
])
def test_bad_known_leaks_files_are_one_line_errors(results, tmp_path, content, message):
    known = tmp_path / "known.toml"
    known.write_text(content)
    proc = cli("compare", str(results), str(results), "--known", str(known))
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_bad_threshold_and_foreign_schema_are_usage_errors(results, tmp_path):
    proc = cli("compare", str(results), str(results), "--grow-threshold", "lots")
    assert proc.returncode == 2 and "--grow-threshold wants a percentage" in proc.stderr
    old = write(tmp_path / "old.jsonl", [dict(l, schema=0) for l in lines_of(results)])
    proc = cli("compare", str(old), str(results))
    assert proc.returncode == 2 and "results of schema 0" in proc.stderr
