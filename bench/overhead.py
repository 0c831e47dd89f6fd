"""Cost of the host's allocator hook: hooked modes against the bare loop.

    python bench/overhead.py [--python PY ...] [--cycles N] [--repeats R]

For each target Python, runs the `pass` case in every bare-* mode and its
hooked twin, alternating bare and hooked runs so that drift of the machine
(frequency, other load) hits both alike, and prints ms per cycle of each and
their ratio.  A run's time is the CPU time (user + system) of the host, not
wall time, which other processes on a shared machine inflate at random; the
time of a 0-cycle run of the same mode is subtracted, so start-up and the
main interpreter of the subinterpreter modes do not dilute the ratio.  The
minimum over the repeats is kept, as the least disturbed run.  A benchmark,
not a test: it always exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.host.build import build_host  # noqa: E402
from common import release_pythons  # noqa: E402
from harness.host.target import target_python  # noqa: E402

TARGET_RATIO = 1.05
# (hooked mode, its bare twin, oldest Python that has it)
MODE_PAIRS = [
    ("finalize", "bare-finalize", (3, 10)),
    ("subinterpreter", "bare-subinterpreter", (3, 12)),
    ("legacy-subinterpreter", "bare-legacy-subinterpreter", (3, 10)),
]


def default_pythons() -> list[str]:
    """The running Python plus every other installed 3.12 and 3.13."""
    chosen = {os.path.realpath(sys.executable): sys.executable}
    for exe in release_pythons():
        chosen.setdefault(os.path.realpath(exe), exe)
    return list(chosen.values())


def run_cpu_ms(host: Path, mode: str, cycles: int, case_file: str, program: str):
    """CPU ms of one host run, or None (with the reason on stderr) on failure."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen([str(host), mode, str(cycles), case_file, "1", program],
                                stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        done = any(json.loads(line).get("event") == "done" for line in stdout)
        if proc.returncode == 0 and done:
            return (usage.ru_utime + usage.ru_stime) * 1e3
        stderr.seek(0)
        tail = (stderr.read().decode(errors="replace").strip().splitlines() or ["(no stderr)"])[-1]
    print(f"  {mode} failed (exit {proc.returncode}): {tail}", file=sys.stderr)
    return None


def measure(python: str, cycles: int, repeats: int, case_file: str, stat) -> list[tuple]:
    target = target_python(python)
    host = build_host(target)
    rows = []
    for hooked_mode, bare_mode, since in MODE_PAIRS:
        if target.version_info[:2] < since:
            continue
        runs = [(mode, n) for mode in (bare_mode, hooked_mode) for n in (cycles, 0)]
        times = {run: [] for run in runs}
        for i in range(repeats):
            # alternate the order so that no variant always runs first
            for mode, n in runs if i % 2 == 0 else runs[::-1]:
                ms = run_cpu_ms(host, mode, n, case_file, target.executable)
                if ms is not None:
                    times[mode, n].append(ms)
        if not all(times.values()):
            rows.append((target.label, hooked_mode, None, None))
            continue
        bare_ms, hooked_ms = (
            (stat(times[mode, cycles]) - stat(times[mode, 0])) / cycles
            for mode in (bare_mode, hooked_mode)
        )
        rows.append((target.label, hooked_mode, bare_ms, hooked_ms))
    return rows


def print_table(rows: list[tuple]) -> None:
    header = f"{'python':<14} {'mode':<22} {'bare ms/cyc':>11} {'hooked ms/cyc':>13} {'ratio':>7}  <= {TARGET_RATIO}"
    print(header)
    print("-" * len(header))
    for label, mode, bare_ms, hooked_ms in rows:
        if bare_ms is None:
            print(f"{label:<14} {mode:<22} {'failed':>11}")
            continue
        ratio = hooked_ms / bare_ms
        ok = "yes" if ratio <= TARGET_RATIO else "no"
        print(f"{label:<14} {mode:<22} {bare_ms:>11.2f} {hooked_ms:>13.2f} {ratio:>7.3f}  {ok}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help="target Python (repeatable)")
    parser.add_argument("--cycles", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--median", action="store_true", help="median instead of minimum")
    args = parser.parse_args(argv)
    stat = statistics.median if args.median else min
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        case_file = os.path.join(tmp, "pass.py")
        Path(case_file).write_text("pass\n")
        for python in args.python or default_pythons():
            try:
                rows.extend(measure(python, args.cycles, args.repeats, case_file, stat))
            except Exception as exc:  # one broken Python must not hide the others
                print(f"{python}: {exc}", file=sys.stderr)
    print(f"{args.cycles} cycles of `pass`, CPU ms per cycle, "
          f"{'median' if args.median else 'minimum'} of {args.repeats} interleaved runs")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
