"""`bisect git` on a synthetic repository: a C extension over 8 commits.

The test writes the history itself (fixed dates, so the same hashes every
time): commit 1 is clean, commit 4 does not compile, commit 5 repairs it,
commit 6 adds the leak (an extra Py_INCREF in f(), 9 blocks per call),
commits 7 and 8 touch other functions.  git bisect's first probe of the
7 candidates lands on commit 4 (skip, exit 125), so the skip path is
exercised on every run.  What is checked: the first bad commit named is
commit 6, the leak per cycle on both sides, the skip, and that the
repository is left with no bisect state, on its original branch, clean;
and the same after Ctrl-C in the middle of a bisection.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.targets import REPO_ROOT
from harness.cli import main
from harness.tools.bisect.git import bisect_in_progress
from harness.host.build import config_script, find_compiler

CYCLES, WARMUP = "6", "2"
PYTHON_ID = "3.12"

MODULE = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
/* revision: {revision} */
static PyObject *f(PyObject *m, PyObject *a) {{
    PyObject *t = PyTuple_New(8);
    if (!t) return NULL;
    for (Py_ssize_t i = 0; i < 8; i++) PyTuple_SET_ITEM(t, i, PyLong_FromLong(1000003L + i * 7919L));
    {leak}
    return t;
}}
static PyObject *g(PyObject *m, PyObject *a) {{ return PyLong_FromLong({g_value}); }}
{broken}
static PyMethodDef methods[] = {{{{"f", f, METH_NOARGS, NULL}}, {{"g", g, METH_NOARGS, NULL}}, {{NULL}}}};
static struct PyModuleDef def = {{PyModuleDef_HEAD_INIT, "lh_gitmod", NULL, 0, methods}};
PyMODINIT_FUNC PyInit_lh_gitmod(void) {{ return PyModuleDef_Init(&def); }}
"""

# (subject, leaks, builds): the history, oldest first
HISTORY = [
    ("Add lh_gitmod with f() and g()", False, True),
    ("g: return 2", False, True),
    ("Comment the tuple loop", False, True),
    ("Half-done refactor that does not compile", False, False),
    ("Finish the refactor", False, True),
    ("f: keep the tuple for a later cache", True, True),
    ("g: return 7", True, True),
    ("Bump the revision note", True, True),
]
FIRST_BAD = 6


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
           "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def make_repo(root: Path) -> list[str]:
    """The 8-commit history; returns the commit hashes, oldest first."""
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("*.so\n")
    hashes = []
    for number, (subject, leaks, builds) in enumerate(HISTORY, start=1):
        (root / "lh_gitmod.c").write_text(MODULE.format(
            revision=number, leak="Py_INCREF(t);" if leaks else "",
            g_value=7 if number >= 7 else (2 if number >= 2 else 1),
            broken="" if builds else "static int refactor(void) { return undefined_helper(); }"))
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", subject)
        hashes.append(_git(root, "rev-parse", "HEAD"))
    return hashes


@pytest.fixture
def synthetic(tmp_path, target_for):
    target = target_for(PYTHON_ID)
    hashes = make_repo(tmp_path / "repo")
    cflags = subprocess.run([str(config_script(target)), "--cflags"], capture_output=True,
                            text=True, check=True).stdout.strip()
    build = (f"{find_compiler()} {cflags} -O0 -Werror=implicit-function-declaration -shared -fPIC "
             f"lh_gitmod.c -o lh_gitmod{target.ext_suffix}")
    return target, tmp_path / "repo", hashes, build


def assert_left_clean(repo: Path) -> None:
    assert not bisect_in_progress(repo)
    assert _git(repo, "symbolic-ref", "--short", "HEAD") == "main"
    assert _git(repo, "status", "--porcelain") == ""
    assert subprocess.run(["git", "-C", str(repo), "bisect", "log"], capture_output=True).returncode != 0


def test_bisect_git_names_the_commit_that_added_the_leak(synthetic, capsys):
    target, repo, hashes, build = synthetic
    started = time.monotonic()
    status = main(["bisect", "git", "--repo", str(repo), "--good", hashes[0], "--bad", "main",
                   "--build", build, "-c", "import lh_gitmod; lh_gitmod.f()",
                   "--python", target.executable, "--cycles", CYCLES, "--warmup", WARMUP, "--json"])
    wall_s = time.monotonic() - started
    report = json.loads(capsys.readouterr().out)
    assert status == 1
    assert report["kind"] == "git"
    assert report["minimal"]["commit"] == hashes[FIRST_BAD - 1]
    assert report["minimal"]["subject"] == HISTORY[FIRST_BAD - 1][0]
    # both sides of the first bad commit, measured: 9 blocks per cycle appear at it
    assert report["result"]["first_bad"]["verdict"] == "leak"
    assert report["result"]["first_bad"]["excess"]["blocks"] >= 8
    assert report["result"]["last_good"]["commit"] == hashes[FIRST_BAD - 2]
    assert report["result"]["last_good"]["verdict"] == "clean"
    assert abs(report["result"]["last_good"]["excess"]["blocks"]) < 3
    # the broken commit was met and skipped, not judged
    assert hashes[3] in report["result"]["skipped"]
    assert report["original"]["good"]["verdict"] == "clean"
    assert report["original"]["bad"]["verdict"] == "leak"
    assert_left_clean(repo)
    print(f"\nbisect git: {report['runs']} steps, {wall_s:.1f} s")


def test_bisect_git_refuses_a_bad_endpoint_and_leaves_the_repo_clean(synthetic, capsys):
    target, repo, hashes, build = synthetic
    # --bad at a commit without the leak: nothing to bisect, said in one line
    status = main(["bisect", "git", "--repo", str(repo), "--good", hashes[0], "--bad", hashes[2],
                   "--build", build, "-c", "import lh_gitmod; lh_gitmod.f()",
                   "--python", target.executable, "--cycles", CYCLES, "--warmup", WARMUP])
    err = capsys.readouterr().err
    assert status == 2
    assert "--bad" in err and "clean" in err and "must build and be leak" in err
    assert_left_clean(repo)
    status = main(["bisect", "git", "--repo", str(repo), "--good", "nonexistent", "--bad", "main",
                   "--build", build, "-c", "pass"])
    assert status == 2 and "no such commit" in capsys.readouterr().err


def test_interrupted_bisect_git_resets_the_repository(synthetic, tmp_path):
    target, repo, hashes, build = synthetic
    marker = tmp_path / "building"
    # the build announces itself, then takes long enough to be interrupted
    slow_build = f"touch {shlex.quote(str(marker))} && sleep 30 && {build}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "bisect", "git", "--repo", str(repo), "--good", hashes[0],
         "--bad", "main", "--build", slow_build, "-c", "import lh_gitmod",
         "--python", target.executable, "--cycles", CYCLES, "--warmup", WARMUP],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert marker.exists(), proc.communicate(timeout=30)
        assert bisect_in_progress(repo)
        os.killpg(proc.pid, signal.SIGINT)      # Ctrl-C reaches the whole foreground group
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert_left_clean(repo)
