"""Hostile input on the command line: each is one line, exit 2, no traceback, and no
process left behind (never a verdict, never exit 1, which means "leak")."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.host import target as pythons
from harness.errors import TargetPythonError

REPO = Path(__file__).resolve().parent.parent


def harness(*args: str, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("usage:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("value", ["nan", "0", "-5", "inf"])
def test_timeout_must_be_positive(value):
    message = one_error_line(harness("run", "-c", "pass", f"--timeout={value}"))
    assert "--timeout must be a positive number of seconds" in message


def test_bad_x_option_value_is_a_usage_error(target_for):
    message = one_error_line(harness("run", "-c", "pass", "--python", target_for("3.12").executable,
                                     "-X", "int_max_str_digits=lots", "--cycles", "4"))
    assert "-X int_max_str_digits=lots" in message and "invalid limit" in message


def test_nul_byte_in_case_file_is_refused(tmp_path):
    case = tmp_path / "nul.py"
    case.write_bytes(b"x = 1\n\0import this_leaks_but_was_never_run\n")
    message = one_error_line(harness("run", str(case)))
    assert "NUL byte" in message and "offset 6" in message


def test_non_utf8_case_file_is_refused(tmp_path):
    case = tmp_path / "latin.py"
    case.write_bytes(b"s = '\xe9t\xe9'\n")
    message = one_error_line(harness("run", str(case)))
    assert "not UTF-8" in message and "0xe9" in message


def test_utf8_case_file_with_bom_runs(target_for, tmp_path):
    # the twin: UTF-8 (with a BOM, as some editors save it) is read fine
    case = tmp_path / "bom.py"
    case.write_bytes("\ufeffs = 'été'\n".encode("utf-8"))
    proc = harness("run", str(case), "--python", target_for("3.12").executable,
                   "--cycles", "4", "--warmup", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sweep_module_is_validated(tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    for module in (f"json; import shutil; shutil.rmtree({str(canary)!r})", "[/]", "", "a..b",
                   "class"):
        message = one_error_line(harness("sweep", "--module", module, "--cycles", "4"))
        assert "is not a module name" in message
    assert canary.is_dir()


def test_sweep_jobs_must_be_positive():
    assert "--jobs" in one_error_line(harness("sweep", "--module", "json", "--jobs", "0"))


def fake_python(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def test_python_that_is_not_a_python_is_one_line_without_the_probe(tmp_path):
    for python in (fake_python(tmp_path, "says-42", "echo 42"),
                   fake_python(tmp_path, "says-object", "echo '{}'"),
                   fake_python(tmp_path, "says-list", "echo '[1, 2]'"),
                   "/bin/ls"):
        message = one_error_line(harness("run", "-c", "pass", "--python", python))
        assert "is not a Python 3.10+ interpreter" in message
        assert "import json" not in message and "sysconfig" not in message


def test_old_python_needs_310(installed_old_python):
    message = one_error_line(harness("run", "-c", "pass", "--python", installed_old_python))
    assert "needs 3.10+" in message


@pytest.fixture
def installed_old_python() -> str:
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for version in ("2.7", "3.6", "3.7", "3.8", "3.9"):
        for entry in sorted(root.glob(f"{version}.*")) if root.is_dir() else ():
            exe = entry / "bin" / "python"
            if exe.exists():
                return str(exe)
    pytest.skip("no Python older than 3.10 installed (an optional extra, not a CI target)")


def live_with(marker: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != "Z":
            found.append(cmdline)
    return found


def test_hanging_python_is_killed_with_its_children(tmp_path, monkeypatch):
    first, second = (f"{900 + random.randrange(10**6) / 1000:.3f}" for _ in range(2))
    python = fake_python(tmp_path, "hangs", f"sleep {first} & sleep {second}")
    monkeypatch.setattr(pythons, "PROBE_TIMEOUT_S", 1.0)
    started = time.monotonic()
    with pytest.raises(TargetPythonError, match="did not answer in 1 s"):
        pythons._probe(python)
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 5
    while (live_with(f"sleep {first}") or live_with(f"sleep {second}")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not live_with(f"sleep {first}") and not live_with(f"sleep {second}")


def test_run_json_into_a_closed_pipe_is_quiet(target_for):
    # a 200 kB message: well over a pipe's 64 kB, so the write meets the closed pipe
    proc = subprocess.run(
        f"{sys.executable} -m harness run -c \"raise ValueError('x' * 200000)\" "
        f"--python {target_for('3.12').executable} --cycles 4 --warmup 1 --json | head -c 1",
        shell=True, capture_output=True, text=True, cwd=REPO, timeout=120,
        executable="/bin/bash")
    assert proc.stdout == "{"
    assert proc.stderr == "", proc.stderr


def test_a_run_that_cannot_start_prints_nothing_but_its_error(tmp_path):
    # the live cycle line's legend used to be printed before the target was
    # checked: a line on stdout announcing cycles that never ran
    proc = harness("run", "-c", "pass", "--python", str(tmp_path / "absent" / "python"))
    assert "does not exist" in one_error_line(proc)
    assert proc.stdout == ""


def test_a_run_that_starts_prints_the_legend_once_then_a_character_a_cycle(target_for):
    python = target_for("3.13").executable
    proc = harness("run", "-c", "pass", "--python", python, "--cycles", "6", "--warmup", "2",
                   "--fixed-cycles")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("cycles (2 warm-up + 6 at most;"), lines[:2]
    assert sum("warm-up + 6 at most" in line for line in lines) == 1
    # two warm-up marks, then one of `.`, 1-9, X for each measured cycle
    assert re.fullmatch(r"--[.1-9X]{6}", lines[1]), lines[1]
