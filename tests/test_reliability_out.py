"""`sweep --out FILE` under faults: refused before any work when it cannot be written,
repaired on start (a partial last line moved aside, never glued), and a full disk mid-sweep
costs no finished line and cuts none."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from fixtures.targets import missing
from harness.tools.sweep_out import ResultsOut

REPO = Path(__file__).resolve().parent.parent


def sweep(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "sweep", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=timeout, env=env)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("leak-harness: error:"), proc.stderr
    return lines[0]


def whole_lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "the file ends in a cut line"
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_sweep_out_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out, why in ((tmp_path, "is a directory"),
                     (a_file / "results.jsonl", "is a file"),
                     (Path("/dev/full"), "No space left"),
                     (tmp_path / ("n" * 300 + ".jsonl"), "too long")):
        # --module with no host built: the refusal must come first, and fast
        message = one_error_line(sweep("--module", "json", "--out", str(out), timeout=60))
        assert why in message, message


def unshared(script: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a shell script in a mount namespace of its own (its tmpfs mounts vanish with it)."""
    if not shutil.which("unshare"):
        missing("unshare (util-linux) is needed for a private small or read-only file system")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        missing(f"cannot create a mount namespace here: {probe.stderr.decode().strip()}")
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


def test_sweep_out_on_read_only_or_full_file_system_is_one_line(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    for options, why in (("ro,size=64k", "Read-only file system"), ("size=16k", "no space left")):
        proc = unshared(f"mount -t tmpfs -o {options} tmpfs {mnt} && "
                        f"exec {sys.executable} -m harness sweep --module json --out {mnt}/r.jsonl")
        assert why in one_error_line(proc)


def test_sweep_out_moves_partial_last_line_aside(tmp_path):
    out = tmp_path / "r.jsonl"
    whole = json.dumps({"schema": 1, "case": "a", "verdict": "clean"}) + "\n"
    out.write_text(whole + '{"schema": 1, "case": "b", "verd')
    results = ResultsOut(out)
    results.write_line({"schema": 1, "case": "c", "verdict": "clean"})
    results.close()
    assert [line["case"] for line in whole_lines(out)] == ["a", "c"]   # never glued onto "b"
    side = tmp_path / "r.jsonl.partial-1"
    assert side.read_text() == '{"schema": 1, "case": "b", "verd'
    assert any("partial last line" in note and str(side) in note for note in results.notes)
    # the twin: a whole file is left exactly as it is
    before = out.read_bytes()
    ResultsOut(out).close()
    assert out.read_bytes() == before and not (tmp_path / "r.jsonl.partial-2").exists()


def test_sweep_out_ends_a_whole_last_line_that_lacks_its_newline(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"schema": 1, "case": "a", "verdict": "clean"}')
    ResultsOut(out).close()
    assert [line["case"] for line in whole_lines(out)] == ["a"]


def test_sweep_repairs_its_out_file_and_reports_it(target_for, tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"schema": 1, "case": "cut')
    proc = sweep("--python", target_for("3.12").executable, "--mode", "finalize",
                 "--module", "colorsys", "--cycles", "4", "--warmup", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "partial last line" in " ".join(proc.stdout.split())
    rows = whole_lines(out)
    assert sorted(r["role"] for r in rows) == ["case", "control"]
    assert (tmp_path / "r.jsonl.partial-1").read_text() == '{"schema": 1, "case": "cut'
    # report/compare read the repaired file
    report = subprocess.run([sys.executable, "-m", "harness", "report", str(out)],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert report.returncode == 0, report.stderr


def test_disk_full_mid_sweep_keeps_every_finished_line_whole(target_for, tmp_path):
    """A 2 MB tmpfs filled up after the first result: no traceback, one line saying how many
    results could not be written, exit 2, and every line in the file whole."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    keep = tmp_path / "kept.jsonl"
    modules = ("colorsys", "keyword", "bisect", "heapq")
    driver = textwrap.dedent(f"""
        import json, os, subprocess, sys, time
        out = {str(mnt / 'r.jsonl')!r}
        proc = subprocess.Popen([sys.executable, "-m", "harness", "sweep", "--python",
                                 {target_for("3.12").executable!r}, "--mode", "finalize",
                                 {", ".join(f'"--module", "{m}"' for m in modules)},
                                 "--cycles", "4", "--warmup", "1", "--jobs", "1", "--out", out],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (os.path.exists(out) and os.path.getsize(out)):
            time.sleep(0.05)
        filler = os.open({str(mnt / 'filler')!r}, os.O_WRONLY | os.O_CREAT)
        try:   # the disk is full from here on
            while True:
                os.write(filler, b"x" * 4096)
        except OSError:
            os.close(filler)
        stdout, stderr = proc.communicate(timeout=240)
        with open({str(keep)!r}, "w") as copy:
            copy.write(open(out).read())
        print(json.dumps({{"rc": proc.returncode, "stdout": stdout, "stderr": stderr}}))
    """)
    script = tmp_path / "driver.py"
    script.write_text(driver)
    proc = unshared(f"mount -t tmpfs -o size=2m tmpfs {mnt} && {sys.executable} {script}")
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    text = " ".join(seen["stdout"].split())
    assert "Traceback" not in seen["stderr"] + seen["stdout"]
    assert seen["rc"] == 2, seen
    rows = whole_lines(keep)
    assert rows, "the first result was written before the disk filled"
    missing_count = int(text.split(" result line(s) could not be written")[0].rsplit(" ", 1)[-1])
    assert len(rows) + missing_count == 1 + len(modules)   # control + cases: none lost unsaid
    # the results that could not be written are still in the summary table
    assert all(m in seen["stdout"] for m in modules)
