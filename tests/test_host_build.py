"""Building the host: clear errors for what is missing, and the pure-Python fallback."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HostBuildError
from harness.host.build import build_host, config_script, embed_flags, find_compiler

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)


def env_without_compiler(tmp_path: Path) -> dict[str, str]:
    """A fresh host cache and a PATH with no compiler on it."""
    env = dict(os.environ)
    env.pop("CC", None)
    env["PATH"] = str(tmp_path / "empty-bin")
    env["LEAK_HARNESS_CACHE"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = str(REPO)
    return env


def test_missing_compiler_named_in_cc_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/bin/cc")
    with pytest.raises(HostBuildError, match=r"\$CC \(/nonexistent/bin/cc\) was not found"):
        find_compiler()


def test_no_compiler_on_path_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HostBuildError, match="no C compiler found.*apt-get install gcc"):
        find_compiler()


def test_static_only_libpython_is_refused_with_what_to_do(target_for):
    target = dataclasses.replace(target_for("3.12"), shared=False, ldlibrary="libpython3.12.a")
    with pytest.raises(HostBuildError, match="only a static libpython.*--enable-shared"):
        embed_flags(target)


def test_missing_config_script_names_the_package(target_for, tmp_path):
    fake = tmp_path / "bin" / "python3.12"
    fake.parent.mkdir()
    fake.symlink_to(target_for("3.12").realpath)
    target = dataclasses.replace(target_for("3.12"), realpath=str(fake), executable=str(fake),
                                 bindir=str(tmp_path / "bin"))
    with pytest.raises(HostBuildError, match=r"no python3\.12-config.*python3\.12-dev"):
        config_script(target)


def test_config_script_is_asked_once_per_process_until_it_changes(target_for, tmp_path):
    # every case of a sweep looks its host up through embed_flags: the
    # config script (a shell script, ~0.1 s a call) runs once, not per case
    real = target_for("3.12")
    log = tmp_path / "calls.log"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3.12").symlink_to(real.realpath)
    wrapper = bindir / "python3.12-config"
    wrapper.write_text(f"#!/bin/sh\necho \"$*\" >> {log}\nexec {config_script(real)} \"$@\"\n")
    wrapper.chmod(0o755)
    target = dataclasses.replace(real, realpath=str(bindir / "python3.12"),
                                 executable=str(bindir / "python3.12"), bindir=str(bindir))
    first = embed_flags(target)
    assert embed_flags(target) == first == embed_flags(real)
    assert log.read_text().splitlines() == ["--cflags --embed", "--ldflags --embed"]
    info = wrapper.stat()
    os.utime(wrapper, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    assert embed_flags(target) == first
    assert len(log.read_text().splitlines()) == 4


def test_host_is_cached_per_interpreter_and_source(target_for, tmp_path, monkeypatch):
    monkeypatch.setenv("LEAK_HARNESS_CACHE", str(tmp_path))
    first = build_host(target_for("3.12"))
    mtime = first.stat().st_mtime_ns
    assert build_host(target_for("3.12")) == first and first.stat().st_mtime_ns == mtime
    assert build_host(target_for("3.13")) != first
    assert first.parent == tmp_path / "hosts"


def test_without_compiler_run_exits_2_with_one_line(target_for, tmp_path):
    py = target_for("3.11").executable
    proc = run_cli("run", "-c", "pass", "--python", py, "--mode", "finalize", "--cycles", "4",
                   "--warmup", "1", env=env_without_compiler(tmp_path))
    assert proc.returncode == 2
    assert "no C compiler found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_without_compiler_subinterpreter_mode_falls_back_to_python_host(
        target_for, fixture_modules_for, tmp_path):
    """The fallback still measures: the per-call leak is caught, its twin is not."""
    py = target_for("3.13").executable
    env = env_without_compiler(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(fixture_modules_for("3.13").directory)])
    verdicts = {}
    for module in ("lh_callleak", "lh_callclean"):
        proc = run_cli("run", "-c", f"import {module}\nfor _ in range(5): {module}.f()",
                       "--python", py, "--mode", "subinterpreter", "--module", module,
                       "--cycles", "8", "--warmup", "2", "--json", env=env)
        result = json.loads(proc.stdout)
        assert result["host"] == "python"
        assert "pure-Python host" in result["evidence"]["host_fallback"]
        verdicts[module] = (result["verdict"], proc.returncode)
    assert verdicts == {"lh_callleak": ("leak", 1), "lh_callclean": ("clean", 0)}
