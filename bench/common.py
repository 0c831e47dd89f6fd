"""What the benchmarks share: which interpreters to measure by default."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.errors import HarnessError  # noqa: E402
from harness.host.target import installed_pythons, target_python  # noqa: E402


def release_pythons(versions=((3, 12), (3, 13))) -> list[str]:
    """One installed non-debug interpreter per wanted (major, minor), oldest first."""
    chosen: dict[tuple[int, int], str] = {}
    for exe in installed_pythons():
        try:
            target = target_python(exe)
        except HarnessError:  # an unusable interpreter is skipped, not fatal
            continue
        minor = tuple(target.version_info[:2])
        if minor in versions and not target.debug:
            chosen.setdefault(minor, exe)
    return [chosen[k] for k in sorted(chosen)]


def children_cpu_s() -> float:
    """CPU seconds of every waited-for descendant so far: hosts and sweeps.

    Other work on a shared machine inflates wall time at random, not the
    CPU time the runs themselves use, so the CPU ratio is the steadier one."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
