"""Cost of the host's allocator hook: hooked modes against the bare loop.

    python bench/overhead.py [--python PY ...] [--cycles N] [--repeats R]

For each target Python, runs the `pass` case in every bare-* mode and its
hooked twin, alternating bare and hooked runs so that drift of the machine
(frequency, other load) hits both alike, and prints ms per cycle of each and
their ratio.  The time per run is the host's own `done` t_ms (process start-up
and dynamic loading excluded); the minimum over the repeats is kept, as the
least disturbed run.  A benchmark, not a test: it always exits 0.
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

from harness.host.build import build_host  # noqa: E402
from harness.pythons import installed_pythons, target_python  # noqa: E402

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
    for exe in installed_pythons():
        try:
            target = target_python(exe)
        except Exception:  # an unusable interpreter is skipped, not fatal
            continue
        if target.version_info[:2] in ((3, 12), (3, 13)) and not target.debug:
            chosen.setdefault(os.path.realpath(exe), exe)
    return list(chosen.values())


def run_ms_per_cycle(host: Path, mode: str, cycles: int, case_file: str, program: str):
    """ms per cycle of one host run, or None (with the reason on stderr) on failure."""
    proc = subprocess.run(
        [str(host), mode, str(cycles), case_file, "1", program],
        capture_output=True, text=True, timeout=600,
    )
    for line in reversed(proc.stdout.splitlines()):
        event = json.loads(line)
        if event.get("event") == "done" and proc.returncode == 0:
            return event["t_ms"] / cycles
    tail = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
    print(f"  {mode} failed (exit {proc.returncode}): {tail}", file=sys.stderr)
    return None


def measure(python: str, cycles: int, repeats: int, case_file: str, stat) -> list[tuple]:
    target = target_python(python)
    host = build_host(target)
    rows = []
    for hooked_mode, bare_mode, since in MODE_PAIRS:
        if target.version_info[:2] < since:
            continue
        times = {bare_mode: [], hooked_mode: []}
        for i in range(repeats):
            # alternate which variant goes first so neither always runs "warm"
            order = (bare_mode, hooked_mode) if i % 2 == 0 else (hooked_mode, bare_mode)
            for mode in order:
                ms = run_ms_per_cycle(host, mode, cycles, case_file, target.executable)
                if ms is not None:
                    times[mode].append(ms)
        if not times[bare_mode] or not times[hooked_mode]:
            rows.append((target.label, hooked_mode, None, None))
            continue
        rows.append((target.label, hooked_mode, stat(times[bare_mode]), stat(times[hooked_mode])))
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
    print(f"{args.cycles} cycles of `pass`, {'median' if args.median else 'minimum'} "
          f"of {args.repeats} interleaved runs")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
