"""The C host holds itself to the standard of CPython's Programs/_testembed.c.

Warning free with -Werror on every target, no reference of its own left
behind (on the Py_DEBUG build, where the samples carry the refcount total),
no hang when a thread cannot start, and no data race of its own under
ThreadSanitizer in parallel mode.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.targets import PYTHON_IDS, REPO_ROOT, missing
from harness.errors import CompileError
from harness.host.build import WARNING_FLAGS, build_host, embed_flags, find_compiler
from harness.host.modes import mode_problem
from harness.host.runner import run_host

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from tsan import HOST_FILES, run_tsan  # noqa: E402

_FD = "{out_fd}"


def run_case(target, mode: str, code: str, cycles: int, *extra: str, tmp_path: Path,
             preexec=None, timeout_s: float = 120.0):
    """The host's samples and how it ended, for `code` run `cycles` times."""
    case = tmp_path / "case.py"
    case.write_text(code)
    argv = [str(build_host(target)), mode, str(cycles), str(case), _FD, target.sys_executable, *extra]
    if preexec is None:
        return run_host(argv, _FD, dict(os.environ), timeout_s)
    # run_host has no preexec hook: a plain run, samples not needed
    return subprocess.run(argv[:4] + ["1"] + argv[5:], capture_output=True, text=True,
                          timeout=timeout_s, preexec_fn=preexec)


def test_the_build_adds_the_warnings_it_promises(target_for):
    cflags, _ = embed_flags(target_for("3.12"))
    assert all(flag in cflags for flag in WARNING_FLAGS)
    assert cflags.index("-Wextra") > cflags.index("-O2")  # after the target's own flags


@pytest.mark.parametrize("native", [True, False], ids=["counting", "plain"])
@pytest.mark.parametrize("python_id", PYTHON_IDS)
def test_host_builds_warning_free_with_werror(target_for, python_id, native):
    target = target_for(python_id)
    try:
        build_host(target, native=native, extra_flags=("-Werror",))
    except CompileError as exc:
        pytest.fail(f"the host warns on Python {target.label}: {exc}")


def _refs_per_cycle(run) -> list[int]:
    assert run.completed, run.output_tail
    refs = [s["refs"] for s in run.samples]  # present on Py_DEBUG builds only
    return [later - earlier for earlier, later in zip(refs[1:], refs[2:])]  # after cycle 1


def test_pass_control_leaves_no_reference_per_cycle_on_the_debug_build(target_for, tmp_path):
    """From cycle 2 on, the refcount total of `pass` does not move in any
    mode the debug build has: the host's own calls (the case's run, the
    extension list, the interned-string count) release what they own."""
    target = target_for("debug")
    modes = [m for m in ("finalize", "legacy-subinterpreter", "subinterpreter")
             if mode_problem(m, target) is None]
    assert "finalize" in modes and "legacy-subinterpreter" in modes
    for mode in modes:
        assert _refs_per_cycle(run_case(target, mode, "pass\n", 6, tmp_path=tmp_path)) == [0] * 5, mode
    # the main-interpreter hook (tracemalloc's, memray's) is called each cycle too
    hook = tmp_path / "hook.py"
    hook.write_text("def lh_event(event, cycle):\n    pass\n")
    run = run_case(target, "legacy-subinterpreter", "pass\n", 6, "--main-hook", str(hook), tmp_path=tmp_path)
    assert _refs_per_cycle(run) == [0] * 5


def test_refcount_total_sees_a_leak_of_nine_refs_a_call_on_the_debug_build(target_for,
                                                                          fixture_modules_for, tmp_path):
    """The leaky twin of the test above: lh_callleak.f() keeps a tuple of 8
    fresh ints, 9 references; calling it 3 times a cycle instead of once
    leaves 18 more a cycle."""
    target = target_for("debug")
    fixture_dir = str(fixture_modules_for("debug").directory)
    growth = {}
    for calls in (1, 3):
        code = f"import sys\nsys.path.insert(0, {fixture_dir!r})\nimport lh_callleak\n" \
               f"for _ in range({calls}): lh_callleak.f()\n"
        growth[calls] = _refs_per_cycle(run_case(target, "legacy-subinterpreter", code, 6, tmp_path=tmp_path))
    assert [three - one for one, three in zip(growth[1], growth[3])] == [18] * 5


HOOK_WITNESS = """\
import gc, os, sys

class _Witness:
    def __del__(self, write=os.write):
        write(2, b"hook-namespace-freed\\n")

_witness = _Witness()

def lh_event(event, cycle):
    if event == "end":
        held = sys.getrefcount(__name__) - 1  # less the argument's own
        line = f"name-refs {held} referrers {len(gc.get_referrers(__name__))}\\n"
        os.write(2, line.encode())
"""


@pytest.mark.parametrize("python_id", ["3.10", "3.13"])
def test_main_hook_namespace_is_released(target_for, tmp_path, python_id):
    """The host held a reference to the hook's __name__ and to its globals
    that no Python object accounts for: the name had one more reference
    than its referrers, and the namespace outlived Py_FinalizeEx."""
    hook = tmp_path / "hook.py"
    hook.write_text(HOOK_WITNESS)
    run = run_case(target_for(python_id), "legacy-subinterpreter", "pass\n", 2,
                   "--main-hook", str(hook), tmp_path=tmp_path)
    assert run.completed and run.returncode == 0, run.output_tail
    counts = [line.split() for line in run.output_tail.splitlines() if line.startswith("name-refs")]
    assert len(counts) == 1 and counts[0][1] == counts[0][3], run.output_tail
    assert "hook-namespace-freed" in run.output_tail


def _stack_too_big_for_a_thread() -> None:
    """glibc sizes a new thread's stack from RLIMIT_STACK: 1 TiB cannot be
    mapped (heuristic overcommit), so every pthread_create fails."""
    _, hard = resource.getrlimit(resource.RLIMIT_STACK)
    soft = 1 << 40 if hard == resource.RLIM_INFINITY else min(hard, 1 << 40)
    resource.setrlimit(resource.RLIMIT_STACK, (soft, hard))


def test_a_thread_that_cannot_start_ends_the_parallel_run_instead_of_hanging(target_for, tmp_path):
    """The barriers count every thread: before the start gate, one failed
    pthread_create left the main thread waiting at the first one for good."""
    _, hard = resource.getrlimit(resource.RLIMIT_STACK)
    if hard != resource.RLIM_INFINITY and hard < 1 << 40:
        missing("RLIMIT_STACK's hard limit is too low to make pthread_create fail")
    proc = run_case(target_for("3.12"), "parallel", "pass\n", 3, "--threads", "2", tmp_path=tmp_path,
                    preexec=_stack_too_big_for_a_thread, timeout_s=60)
    assert proc.returncode == 2
    assert "cannot start parallel thread 1 of 2" in proc.stderr


@pytest.mark.slow
def test_threadsanitizer_finds_no_race_of_the_hosts_own_in_parallel_mode(target_for):
    """A TSan build of the plain host, parallel mode, 2 threads: no report
    whose racing access is in the host's files.  CPython's own race in
    posixmodule_exec is suppressed by name (bench/tsan.py says why)."""
    compiler = find_compiler()
    if not shutil.which(compiler.split()[0]):
        missing(f"no compiler {compiler}")
    probe = subprocess.run([*compiler.split(), "-fsanitize=thread", "-x", "c", "-", "-o", os.devnull],
                           input="int main(void) { return 0; }\n", capture_output=True, text=True)
    if probe.returncode != 0:
        missing(f"{compiler} cannot link -fsanitize=thread (libtsan): {probe.stderr.strip()[-200:]}")
    summary = run_tsan(target_for("3.12"), cycles=3, threads=2)
    assert summary.samples == 4, summary.returncode  # cycle 0 to 3: it ran
    assert summary.clean, (HOST_FILES, summary.host_reports)
    # 3.13 through the script, as its --json figures are read
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "tsan.py"), "--python",
                           target_for("3.13").executable, "--cycles", "3", "--threads", "2", "--json"],
                          capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)
    figures = json.loads(proc.stdout)
    assert figures["samples"] == 4, (figures, proc.stderr[-2000:])
    assert proc.returncode == 0 and figures["host_reports"] == 0, figures["host_report_texts"]


@pytest.mark.parametrize("offset", ["0x1000junk", "-4096", ""])
def test_a_malformed_traceback_dumper_offset_is_refused(target_for, tmp_path, offset):
    """strtoul read "0x1000junk" as 0x1000 and "-4096" as a huge offset: on
    a crash the handler would have called whatever code lies there."""
    case = tmp_path / "case.py"
    case.write_text("pass\n")
    target = target_for("3.12")
    proc = subprocess.run([str(build_host(target)), "finalize", "1", str(case), "1", target.sys_executable,
                           "--crash-file", str(tmp_path / "crash"), "--traceback-dumper", offset],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--traceback-dumper must be an offset" in proc.stderr
