"""ThreadSanitizer over the host's parallel mode: are the host's own threads race free?

    python bench/tsan.py [--python PY] [--cycles N] [--threads T] [--json]

Builds the plain host with TSAN_FLAGS (harness/host/build.py; never used for
a measurement), runs the `pass` case in parallel mode and prints a summary
of the reports: how many, and how many touch the host's own files.  Only
the host's code is instrumented; libpython is not, so CPython's races show
only through TSan's interceptors (qsort, memcpy, ...).  One of those is
suppressed by name, CPython's own: posixmodule_exec sorts the static
constant tables (posix_constants_*) with qsort in every interpreter that
imports posix, so two own-GIL interpreters starting at once write them
together (3.12).  Exits 1 when a report is the host's own, else 0.
`--json`: one object instead (the counts, and the host's own reports' text).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.host.build import TSAN_FLAGS, build_host  # noqa: E402
from harness.host.target import TargetPython, target_python  # noqa: E402

#: the host's own sources: a report whose racing access is in one of them is ours
HOST_FILES = ("host.c", "crash_report.c", "native_alloc.c")
#: CPython's own races, suppressed by function name (see the module docstring)
CPYTHON_SUPPRESSIONS = ("race:setup_confname_table",)

_FRAME = re.compile(r"^\s+#\d+ (\S+) (\S+)")


@dataclass
class TsanSummary:
    """What one TSan run reported."""

    returncode: int
    reports: list[str] = field(default_factory=list)   # each WARNING block
    host_reports: list[str] = field(default_factory=list)  # those with a racing access of ours
    suppressed: int = 0
    samples: int = 0                                   # sample lines the host wrote

    @property
    def clean(self) -> bool:
        return not self.host_reports


def _racing_frames(report: str) -> list[str]:
    """The first frame outside the sanitizer's own interceptors of each access
    ("Write of size", "Previous read", ...): where the racing access is."""
    found, in_access = [], False
    for line in report.splitlines():
        if re.match(r"\s+(Previous )?(Read|Write|Atomic)", line):
            in_access = True
            continue
        match = _FRAME.match(line)
        if in_access and match:
            if "libsanitizer" in match.group(2) or "libtsan" in line:
                continue
            found.append(line.strip())
            in_access = False
    return found


def run_tsan(target: TargetPython, cycles: int = 3, threads: int = 2,
             timeout_s: float = 600.0) -> TsanSummary:
    """Build the TSan host for `target` and run `pass` in parallel mode."""
    host = build_host(target, native=False, extra_flags=TSAN_FLAGS)
    with tempfile.TemporaryDirectory(prefix="lh-tsan-") as work:
        case = Path(work, "case.py")
        case.write_text("pass\n")
        suppressions = Path(work, "tsan.supp")
        suppressions.write_text("\n".join(CPYTHON_SUPPRESSIONS) + "\n")
        samples = Path(work, "samples")
        env = dict(os.environ, TSAN_OPTIONS=f"suppressions={suppressions} print_suppressions=1 "
                                            "halt_on_error=0 report_signal_unsafe=0 exitcode=66")
        with open(samples, "wb") as out:
            proc = subprocess.run([str(host), "parallel", str(cycles), str(case), str(out.fileno()),
                                   target.sys_executable, "--threads", str(threads)],
                                  pass_fds=(out.fileno(),), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, env=env, timeout=timeout_s)
        sample_lines = samples.read_text().count('"event":"sample"')
    return summarize(proc.stderr, proc.returncode, sample_lines)


def summarize(text: str, returncode: int, samples: int) -> TsanSummary:
    """The reports in TSan's stderr `text`, split into the host's own and the rest."""
    blocks = re.findall(r"WARNING: ThreadSanitizer:.*?(?=\n==================|\Z)", text, re.S)
    suppressed = re.search(r"ThreadSanitizer: Matched (\d+) suppressions", text)
    summary = TsanSummary(returncode=returncode, reports=blocks, samples=samples,
                          suppressed=int(suppressed.group(1)) if suppressed else 0)
    summary.host_reports = [b for b in blocks
                            if any(name in frame for frame in _racing_frames(b) for name in HOST_FILES)]
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    args = parser.parse_args()
    target = target_python(args.python)
    summary = run_tsan(target, args.cycles, args.threads)
    if args.json:
        print(json.dumps({
            "python": target.label, "mode": "parallel", "threads": args.threads,
            "cycles": args.cycles, "samples": summary.samples, "host_exit": summary.returncode,
            "reports": len(summary.reports), "host_reports": len(summary.host_reports),
            "suppressed": summary.suppressed, "suppressions": list(CPYTHON_SUPPRESSIONS),
            "host_files": list(HOST_FILES), "host_report_texts": summary.host_reports,
        }, indent=1))
        return 0 if summary.clean else 1
    print(f"Python {target.label}: parallel mode, {args.threads} threads, {args.cycles} cycles, "
          f"{summary.samples} samples, host exit {summary.returncode}")
    print(f"TSan reports: {len(summary.reports)} ({len(summary.host_reports)} in the host's own files: "
          f"{', '.join(HOST_FILES)}); {summary.suppressed} suppressed as CPython's own "
          f"({', '.join(CPYTHON_SUPPRESSIONS)})")
    for report in summary.host_reports:
        print(report)
    return 0 if summary.clean else 1


if __name__ == "__main__":
    sys.exit(main())
