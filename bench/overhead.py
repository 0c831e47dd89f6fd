"""Cost of the host's counting: hooked modes, with and without native counting, against the bare loop.

    python bench/overhead.py [--python PY ...] [--cycles N] [--repeats R] [--before DIR]
                             [--code SOURCE | --stdlib N] [--json]

For each target Python, runs the `pass` case (or --code's) in every bare-* mode (the
plain host: no PyMem hook, no malloc interposer), its hooked twin in the
plain host (the PyMem hook alone, what valgrind/memray runs get) and in the
counting host (hook + native counting: malloc & co. interposed, what the
counters backend runs), interleaving the three so that drift of the machine
(frequency, other load) hits all alike, and prints ms per cycle of each and
their ratios to the bare loop, all measured in one run.  `--stdlib N` measures
the same variants on `import NAME` for N stdlib modules instead (finalize and
subinterpreter), each module's variants back to back, and prints the summed
CPU and its ratios as JSON: the hook on the work a sweep really does.  `--before DIR`
adds a fourth: the counting host built from DIR's sources (an older
checkout's harness/host), so a change is quoted as before/after ratios of
the same rounds.  A run's time is the CPU time (user + system) of the host, not
wall time, which other processes on a shared machine inflate at random; the
time of a 0-cycle run of the same mode is subtracted, so start-up and the
main interpreter of the subinterpreter modes do not dilute the ratio.  The
minimum over the repeats is kept, as the least disturbed run; the `_paired`
ratios are the median over the repeats of each round's own ratio (the runs
of one round share the machine's load of that moment).  A benchmark,
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
NATIVE_TARGET_RATIO = 1.10
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


def run_cpu_ms(host: Path, mode: str, cycles: int, case_file: str, program: str) -> float | None:
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


def build_from(sources: Path, target, native: bool) -> Path:
    """The host built from another checkout's harness/host sources (`--before`);
    a checkout older than the shared headers simply has none."""
    from harness.host import build
    names = ("HOST_SOURCE", "CRASH_REPORT_SOURCES", "NATIVE_SOURCES", "SHARED_HEADERS")
    saved = {name: getattr(build, name) for name in names}
    try:
        build.HOST_SOURCE = sources / "host.c"
        build.CRASH_REPORT_SOURCES = (sources / "crash_report.c", sources / "crash_report.h")
        build.NATIVE_SOURCES = (sources / "native_alloc.c", sources / "native_alloc.h")
        build.SHARED_HEADERS = tuple(sources / p.name for p in saved["SHARED_HEADERS"]
                                     if (sources / p.name).exists())
        return build_host(target, native=native)
    finally:
        for name, value in saved.items():
            setattr(build, name, value)


def host_variants(target, before: Path | None):
    """name -> (host binary, hooked?) for one target: the bare host, the PyMem
    hook alone, hook + native counting, and with `before` that checkout's
    counting host.  The mode of each run is taken from the pair being timed."""
    plain, counting = build_host(target, native=False), build_host(target, native=True)
    variants = {"bare": (plain, False), "hook": (plain, True), "hook_native": (counting, True)}
    if before:
        variants["hook_native_before"] = (build_from(before, target, native=True), True)
    return variants


def measure(python: str, cycles: int, repeats: int, case_file: str, stat,
            before: Path | None = None) -> list[dict]:
    target = target_python(python)
    hosts = host_variants(target, before)
    rows = []
    for hooked_mode, bare_mode, since in MODE_PAIRS:
        if target.version_info[:2] < since:
            continue
        variants = {name: (host, hooked_mode if hooked else bare_mode)
                    for name, (host, hooked) in hosts.items()}
        runs = [(name, n) for name in variants for n in (cycles, 0)]
        times = {run: [] for run in runs}
        rounds = []  # per round: name -> ms per cycle, when all of its runs worked
        for i in range(repeats):
            # alternate the order so that no variant always runs first
            this = {}
            for name, n in runs if i % 2 == 0 else runs[::-1]:
                host, mode = variants[name]
                ms = run_cpu_ms(host, mode, n, case_file, target.executable)
                if ms is not None:
                    times[name, n].append(ms)
                    this[name, n] = ms
            if len(this) == len(runs):
                rounds.append({name: (this[name, cycles] - this[name, 0]) / cycles for name in variants})
        row = {"python": target.label, "mode": hooked_mode}
        if all(times.values()):
            for name in variants:
                row[f"{name}_ms"] = round((stat(times[name, cycles]) - stat(times[name, 0])) / cycles, 3)
            row["hook_ratio"] = round(row["hook_ms"] / row["bare_ms"], 3)
            row["hook_native_ratio"] = round(row["hook_native_ms"] / row["bare_ms"], 3)
        if rounds:
            # the same ratio within each round (its six runs take a few
            # seconds, so the load of a shared machine is much the same for
            # all of them), then the median over the rounds: steadier than
            # the ratio of minima taken from different moments
            row["hook_ratio_paired"] = round(statistics.median(r["hook"] / r["bare"] for r in rounds), 3)
            row["hook_native_ratio_paired"] = round(
                statistics.median(r["hook_native"] / r["bare"] for r in rounds), 3)
            if before:
                row["hook_native_before_ratio_paired"] = round(
                    statistics.median(r["hook_native_before"] / r["bare"] for r in rounds), 3)
        if before and "bare_ms" in row:
            row["hook_native_before_ratio"] = round(row["hook_native_before_ms"] / row["bare_ms"], 3)
        rows.append(row)
    return rows


def measure_stdlib(python: str, n_modules: int, cycles: int, before: Path | None = None,
                   repeats: int = 3, stat=min) -> list[dict]:
    """The hook's cost on real work: `import NAME` for n stdlib modules
    (spread over the sorted names), every variant of one module back to
    back (order alternating), `repeats` rounds of that per module; each
    variant's CPU for a module is the `stat` (minimum: the least disturbed)
    of its rounds, summed over the modules that completed in every run.
    A single round per module put the same tree anywhere from 1.05x to
    1.15x on this shared machine: the minimum of a few rounds is what the
    hook costs, the rest is the neighbours.  `ratio_rounds` gives each
    round's own ratio (that round's runs summed) so the spread is on
    record.  A run's start-up is in every variant alike."""
    from harness.cases.model import stdlib_import_cases
    from sweep_time import spread
    target = target_python(python)
    hosts = host_variants(target, before)
    cases = spread(stdlib_import_cases(target)[0], n_modules)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for hooked_mode, bare_mode, since in MODE_PAIRS[:2]:
            if target.version_info[:2] < since:
                continue
            variants = {name: (host, hooked_mode if hooked else bare_mode)
                        for name, (host, hooked) in hosts.items()}
            sums = dict.fromkeys(variants, 0.0)
            round_sums = [dict.fromkeys(variants, 0.0) for _ in range(repeats)]
            used = 0
            for i, case in enumerate(cases):
                case_file = os.path.join(tmp, f"case{i}.py")
                Path(case_file).write_text(case.source_code)
                runs: dict[str, list[float]] = {name: [] for name in variants}
                failed = False
                for r in range(repeats):
                    names = list(variants) if (i + r) % 2 == 0 else list(variants)[::-1]
                    for name in names:
                        ms = run_cpu_ms(*variants[name], cycles, case_file, target.executable)
                        if ms is None:
                            failed = True
                            break
                        runs[name].append(ms / 1e3)
                    if failed:
                        break
                if failed:
                    continue
                used += 1
                for name, values in runs.items():
                    sums[name] += stat(values)
                    for r, v in enumerate(values):
                        round_sums[r][name] += v
            row = {"python": target.label, "mode": hooked_mode, "case": f"import of {used} stdlib modules",
                   "repeats": repeats, **{f"{name}_cpu_s": round(v, 2) for name, v in sums.items()}}
            if sums["bare"]:
                for name in variants:
                    if name != "bare":
                        row[f"{name}_ratio"] = round(sums[name] / sums["bare"], 3)
                        row[f"{name}_ratio_rounds"] = [round(rs[name] / rs["bare"], 3)
                                                       for rs in round_sums if rs["bare"]]
            rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    header = (f"{'python':<14} {'mode':<22} {'bare':>7} {'hook':>7} {'hook+native':>11} "
              f"{'hook/bare':>9} {'native/bare':>11} {'paired':>7}  <= {NATIVE_TARGET_RATIO}")
    print(header)
    print("-" * len(header))
    for row in rows:
        label, mode = row["python"], row["mode"]
        if "bare_ms" not in row:
            print(f"{label:<14} {mode:<22} {'failed':>7}")
            continue
        ok = "yes" if row["hook_native_ratio"] <= NATIVE_TARGET_RATIO else "no"
        print(f"{label:<14} {mode:<22} {row['bare_ms']:>7.2f} {row['hook_ms']:>7.2f} "
              f"{row['hook_native_ms']:>11.2f} {row['hook_ratio']:>9.3f} "
              f"{row['hook_native_ratio']:>11.3f} {row.get('hook_native_ratio_paired', 0):>7.3f}  {ok}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help="target Python (repeatable)")
    parser.add_argument("--cycles", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved runs of each variant (default 7; 3 per module with --stdlib)")
    parser.add_argument("--median", action="store_true", help="median instead of minimum")
    parser.add_argument("--code", default="pass",
                        help="the case's source (default `pass`); e.g. a few stdlib imports, "
                             "whose allocations weigh the hook more than an empty cycle's")
    parser.add_argument("--stdlib", type=int, default=None, metavar="N",
                        help="instead of one case: `import NAME` for N stdlib modules, each "
                             "module's variants back to back, CPU summed (the hook on real work)")
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON object")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also the counting host built from DIR (another checkout's "
                             "harness/host), interleaved in the same rounds: a before/after pair")
    args = parser.parse_args(argv)
    stat = statistics.median if args.median else min
    rows = []
    if args.stdlib:
        repeats = args.repeats or 3
        for python in args.python or default_pythons():
            rows.extend(measure_stdlib(python, args.stdlib, args.cycles, args.before, repeats, stat))
        how = f"CPU summed over the modules, each module's {'median' if args.median else 'minimum'} of {repeats} rounds"
        print(json.dumps({"cycles": args.cycles, "statistic": how,
                          "target_ratio": NATIVE_TARGET_RATIO, "rows": rows}, indent=1))
        return 0
    args.repeats = args.repeats or 7
    with tempfile.TemporaryDirectory() as tmp:
        case_file = os.path.join(tmp, "pass.py")
        Path(case_file).write_text(args.code + "\n")
        for python in args.python or default_pythons():
            try:
                rows.extend(measure(python, args.cycles, args.repeats, case_file, stat, args.before))
            except Exception as exc:  # one broken Python must not hide the others
                print(f"{python}: {exc}", file=sys.stderr)
    how = f"{'median' if args.median else 'minimum'} of {args.repeats} interleaved runs"
    if args.json:
        print(json.dumps({"case": args.code, "cycles": args.cycles, "statistic": how,
                          "unit": "CPU ms per cycle", "target_ratio": NATIVE_TARGET_RATIO,
                          "rows": rows}, indent=1))
        return 0
    print(f"{args.cycles} cycles of `{args.code}`, CPU ms per cycle, {how}")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
