"""Cost of a stdlib sweep (both default modes), against the bare-host floor.

    python bench/sweep_time.py [--python PY ...] [--jobs 2] [--cycles 20] [--warmup 5]
                               [--quick | --modules N | --module NAME ...]
                               [--adaptive] [--separate [--explain B]] [--json]

By default the figures come from one paired pass (bench/paired_sweep.py):
each (case, mode) runs on the bare host, under --fixed-cycles and (with
--adaptive) under adaptive cycles back to back, every host's CPU is reaped
with wait4, and the ratios are of CPU sums over jobs measured seconds
apart, so a shared machine's drift (the same floor took 38.7 to 48.9 s of
CPU in four runs within five minutes here) cancels.  The CPU is also split
by part: the harness process, the case hosts, the controls and probes, the
reruns (bare host after a crash, re-imports after a refusal).

`--separate` is the older way, kept for wall times and --explain: the
floor, then `leak-harness sweep` end to end, then the adaptive sweep, as
whole runs one after another:

The floor is the same `import NAME` cases run on the bare host (`bare-*`
modes: no allocator hook, no counters, no controls, no probes, no result
parsing), for the same warm-up + cycles, with the same number of jobs in
parallel.  sweep / floor is then the harness's own overhead: orchestration,
controls, probes, parsing and the hook; what the modules cost to import is
in both.  The older `pass` reference (the bare loop of `pass` once per case
and mode, divided by the jobs) is printed too: it leaves the modules' import
cost out, so its ratio says how much of the sweep is the modules plus
counting.  `--modules N` (or `--quick`: 16) takes N modules spread evenly
over the sorted names, so a short run still mixes small and large modules.
Both sides run in the same invocation, floor first, so quote their ratio,
not the seconds; the CPU-time ratio (every host and the harness itself, from
RUSAGE_CHILDREN) is the one a loaded machine disturbs least.

The sweep measured against the floor runs --fixed-cycles: the floor runs
every cycle, so only that comparison is like for like.  `--adaptive` also
runs the default sweep (adaptive cycles: a case stops once its `clean` is
settled) and prints adaptive / fixed wall and CPU time, the cycles each
ran, and the verdicts that differ (a diff: empty when adaptive cycles
changed nothing).  --python is repeatable; with several the JSON is
{"pythons": [one object per Python]}.  A benchmark, not a test: it always
exits 0 when it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.cases.model import Case, stdlib_import_cases  # noqa: E402
from harness.host.build import build_host  # noqa: E402
from harness.host.modes import DEFAULT_SWEEP_MODES, mode_problem  # noqa: E402
from harness.host.target import target_python  # noqa: E402
from harness.verdict.settled import first_decidable  # noqa: E402
from common import children_cpu_s  # noqa: E402
from paired_sweep import paired_sweep  # noqa: E402

QUICK_MODULES = 16
TARGET_OVERHEAD = 1.15
ADAPTIVE_TARGET = 0.5


def spread(cases: list[Case], n: int | None) -> list[Case]:
    """n cases evenly spaced over the sorted names (all of them for None)."""
    ordered = sorted(cases, key=lambda c: c.name)
    if n is None or n >= len(ordered):
        return ordered
    step = len(ordered) / n
    return [ordered[int(i * step)] for i in range(n)]


def bare_run_s(host: Path, mode: str, cycles: int, source: str, program: str) -> float:
    """Wall seconds of one bare host run of `source`; its counters are thrown away."""
    with tempfile.NamedTemporaryFile("w", suffix=".py") as case:
        case.write(source)
        case.flush()
        start = time.perf_counter()
        subprocess.run([str(host), f"bare-{mode}", str(cycles), case.name, "2", program],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        return time.perf_counter() - start


def floor_s(host: Path, cases: list[Case], modes: list[str], cycles: int, jobs: int,
            program: str) -> float:
    """Wall seconds of every (case, mode) on the bare host, `jobs` at a time."""
    runs = [(case, mode) for mode in modes for case in cases]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(lambda r: bare_run_s(host, r[1], cycles, r[0].source_code, program), runs))
    return time.perf_counter() - start


def pass_reference_s(host: Path, modes: list[str], cycles: int, program: str,
                     n_cases: int, jobs: int) -> float:
    """The `pass` loop per mode (best of 3), times the cases, over the jobs."""
    per_mode = [min(bare_run_s(host, m, cycles, "pass\n", program) for _ in range(3)) for m in modes]
    return sum(per_mode) * n_cases / jobs


def sweep_s(target, cases: list[Case], modes: list[str], args,
            extra: tuple[str, ...] = ()) -> tuple[float, list[dict]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "sweep.jsonl")
        argv = [sys.executable, "-m", "harness", "sweep", "--python", target.executable,
                "--jobs", str(args.jobs), "--cycles", str(args.cycles), "--warmup",
                str(args.warmup), "--out", str(out)]
        for m in modes:
            argv += ["--mode", m]
        for case in cases:
            argv += ["--module", case.module]
        argv += extra
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       cwd=Path(__file__).resolve().parent.parent)
        wall_s = time.perf_counter() - start
        rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return wall_s, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", default=None,
                        help="target (repeatable; default: this Python)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--modules", type=int, default=None, metavar="N",
                        help="only N modules spread over the sorted names")
    parser.add_argument("--quick", action="store_true", help=f"--modules {QUICK_MODULES}")
    parser.add_argument("--module", action="append", default=[], help="only these modules")
    parser.add_argument("--explain", default=None, metavar="BACKEND",
                        help="also run the sweep with --explain BACKEND and print its cost "
                             "against the sweep alone")
    parser.add_argument("--adaptive", action="store_true",
                        help="also run the default (adaptive-cycles) sweep: its time against the "
                             "fixed-cycles one and the verdict diff")
    parser.add_argument("--separate", action="store_true",
                        help="the floor, the sweep and the adaptive sweep as whole runs one after "
                             "another (the CLI end to end, wall times too) instead of paired job by job")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    if args.separate is False and args.explain:
        parser.error("--explain is measured with --separate (whole sweeps through the CLI)")
    runs = [measure(target_python(p), args) for p in (args.python or [None])]
    if args.json:
        print(json.dumps(runs[0] if len(runs) == 1 else {"pythons": runs}, indent=1))
        return 0
    for figures in runs:
        print_figures(figures, args)
    return 0


def verdict_key(row: dict) -> tuple[str, str]:
    return (row.get("module") or row.get("case"), row["mode"])


def rule_bound(fixed_rows: list[dict], adaptive_rows: list[dict]) -> dict:
    """How near adaptive cycles come to the earliest stop the verdict rule
    allows, on the case hosts' own wall time (each result's `wall_s`).

    From the fixed-cycle results: a case that is not a `leak` could have
    stopped after warm-up + first_decidable(cycles) cycles at the earliest
    (verdict.settled: no earlier stop is sure to leave the verdict
    unchanged; a crash at the interpreter's last end, as 3.12.1 has eight,
    stops there too), so its host time from that cycle's sample to its last
    (`t_ms`) is all that adaptive cycles can save; a leak runs all its
    cycles, and a case that ended before that cycle (a refusal, an early
    crash) as it did.  The bound is the case hosts' wall with all of that
    saved, over their wall at fixed cycles; `achieved` is the same ratio of
    the adaptive run's case hosts.  Start-up, the first cycles and the
    interpreter's end are paid in both, which is why the bound is above
    12/25."""
    def cases(rows):
        return [r for r in rows if r.get("role") == "case" and r.get("wall_s")]

    fixed, adaptive = cases(fixed_rows), cases(adaptive_rows)
    total = sum(r["wall_s"] for r in fixed)
    saved = 0.0
    for row in fixed:
        samples = row.get("samples") or []
        earliest = row["warmup"] + first_decidable(row["cycles"])
        if row["verdict"] == "leak" or len(samples) <= earliest:
            continue
        saved += max(0.0, (samples[-1].get("t_ms", 0.0) - samples[earliest].get("t_ms", 0.0)) / 1000)
    if not total:
        return {}
    return {"rule_bound_case_wall_ratio": round((total - saved) / total, 3),
            "achieved_case_wall_ratio": round(sum(r["wall_s"] for r in adaptive) / total, 3)}


def adaptive_figures(fixed_wall_s: float, fixed_cpu_s: float, fixed_rows: list[dict],
                     wall_s: float, cpu_s: float, rows: list[dict]) -> dict:
    """Adaptive against fixed cycles: time ratios, cycles run, the verdict diff."""
    fixed = {verdict_key(r): r["verdict"] for r in fixed_rows if r.get("role") == "case"}
    adaptive = {verdict_key(r): r["verdict"] for r in rows if r.get("role") == "case"}
    diff = [{"module": m, "mode": mode, "fixed": fixed.get((m, mode)), "adaptive": adaptive.get((m, mode))}
            for (m, mode) in sorted(set(fixed) | set(adaptive))
            if fixed.get((m, mode)) != adaptive.get((m, mode))]
    ran = [r["cycles"] for r in rows if r.get("role") == "case" and r["verdict"] in ("clean", "leak")]
    stopped = [r for r in rows if r.get("role") == "case" and (r.get("cycle_stop") or {}).get("stopped_early")]
    return {
        "adaptive_wall_s": round(wall_s, 2), "adaptive_cpu_s": round(cpu_s, 2),
        "adaptive_wall_ratio": round(wall_s / fixed_wall_s, 3) if fixed_wall_s else None,
        "adaptive_cpu_ratio": round(cpu_s / fixed_cpu_s, 3) if fixed_cpu_s else None,
        "adaptive_target": ADAPTIVE_TARGET,
        "stopped_early": len(stopped), "measured": len(ran),
        "stopped_early_by_verdict": dict(sorted(Counter(r["verdict"] for r in stopped).items())),
        "mean_cycles_run": round(statistics.mean(ran), 2) if ran else None,
        "verdict_diff": diff,
        **rule_bound(fixed_rows, rows),
    }


def chosen_cases(target, args) -> list[Case]:
    all_cases, _ = stdlib_import_cases(target)
    if args.module:
        return [c for c in all_cases if c.module in args.module]
    return spread(all_cases, QUICK_MODULES if args.quick and args.modules is None else args.modules)


def measure(target, args) -> dict:
    """Every figure of one target Python, measured in this one invocation."""
    if not args.separate:
        return measure_paired(target, args)
    modes = [m for m in DEFAULT_SWEEP_MODES if mode_problem(m, target) is None]
    cases = chosen_cases(target, args)
    host = build_host(target, native=False)
    total_cycles = args.cycles + args.warmup
    cpu_before = children_cpu_s()
    floor_wall_s = floor_s(host, cases, modes, total_cycles, args.jobs, target.sys_executable)
    floor_cpu_s = children_cpu_s() - cpu_before
    pass_ref_s = pass_reference_s(host, modes, total_cycles, target.sys_executable,
                                  len(cases), args.jobs)
    cpu_before = children_cpu_s()
    wall_s, rows = sweep_s(target, cases, modes, args, ("--fixed-cycles",))
    sweep_cpu_s = children_cpu_s() - cpu_before
    adaptive = None
    if args.adaptive:
        cpu_before = children_cpu_s()
        adaptive_wall_s, adaptive_rows = sweep_s(target, cases, modes, args)
        adaptive = adaptive_figures(wall_s, sweep_cpu_s, rows, adaptive_wall_s,
                                    children_cpu_s() - cpu_before, adaptive_rows)
    explain_wall_s, explain_rows = (sweep_s(target, cases, modes, args, ("--explain", args.explain))
                                    if args.explain else (None, []))
    case_rows = [r for r in rows if r.get("role") == "case"]
    verdicts = Counter((r["mode"], r["verdict"]) for r in case_rows)
    slowest = sorted(case_rows, key=lambda r: -r["wall_s"])[:5]
    figures = {
        "python": target.label, "modules": len(cases), "modes": modes,
        "cycles": args.cycles, "warmup": args.warmup, "jobs": args.jobs,
        "sweep_wall_s": round(wall_s, 2), "floor_wall_s": round(floor_wall_s, 2),
        "overhead_ratio": round(wall_s / floor_wall_s, 3) if floor_wall_s else None,
        "sweep_cpu_s": round(sweep_cpu_s, 2), "floor_cpu_s": round(floor_cpu_s, 2),
        "overhead_cpu_ratio": round(sweep_cpu_s / floor_cpu_s, 3) if floor_cpu_s else None,
        "overhead_target": TARGET_OVERHEAD,
        "load_average": [round(x, 1) for x in os.getloadavg()], "cpus": os.cpu_count(),
        "pass_reference_s": round(pass_ref_s, 2),
        "pass_reference_ratio": round(wall_s / pass_ref_s, 3) if pass_ref_s else None,
        "results": len(case_rows),
        "median_case_s": round(statistics.median(r["wall_s"] for r in case_rows), 3) if case_rows else None,
        "slowest": [{"module": r["module"], "mode": r["mode"], "wall_s": r["wall_s"]} for r in slowest],
        "verdicts": {f"{m} {v}": n for (m, v), n in sorted(verdicts.items())},
        **(adaptive or {}),
    }
    if args.explain:
        explained = [r for r in explain_rows if "explained_by" in r.get("evidence", {})]
        figures.update(
            explain=args.explain, explain_wall_s=round(explain_wall_s, 2),
            explain_ratio=round(explain_wall_s / wall_s, 3) if wall_s else None,
            explained=len(explained),
            same_verdicts=sorted((r["module"], r["mode"], r["verdict"]) for r in case_rows)
            == sorted((r["module"], r["mode"], r["verdict"]) for r in explain_rows
                      if r.get("role") == "case"))
    return figures


def measure_paired(target, args) -> dict:
    """The figures from one paired pass (bench/paired_sweep.py): floor, fixed
    and adaptive run job by job, so their ratios are not the machine's drift."""
    modes = [m for m in DEFAULT_SWEEP_MODES if mode_problem(m, target) is None]
    cases = chosen_cases(target, args)
    paired = paired_sweep(target, cases, modes, args.cycles, args.warmup, args.jobs, args.adaptive)
    rows = [dict(r, role="case") for r in paired["results"]["fixed"]]
    figures = {
        "python": target.label, "modules": len(cases), "modes": modes, "method": "paired",
        "cycles": args.cycles, "warmup": args.warmup, "jobs": args.jobs,
        "floor_cpu_s": paired["floor_cpu_s"], "sweep_cpu_s": paired["fixed"]["cpu_s"],
        "overhead_cpu_ratio": paired["overhead_cpu_ratio"], "overhead_target": TARGET_OVERHEAD,
        "overhead_parts": paired["fixed"]["parts_of_floor"],
        "fixed": {k: v for k, v in paired["fixed"].items() if k != "parts_of_floor"},
        "bench_wall_s": paired["bench_wall_s"],
        "load_average": [round(x, 1) for x in os.getloadavg()], "cpus": os.cpu_count(),
        "results": len(rows),
        "verdicts": {f"{m} {v}": n for (m, v), n in sorted(Counter((r["mode"], r["verdict"]) for r in rows).items())},
    }
    if args.adaptive:
        adaptive_rows = [dict(r, role="case") for r in paired["results"]["adaptive"]]
        diff = adaptive_figures(1.0, paired["fixed"]["cpu_s"], rows, 1.0, paired["adaptive"]["cpu_s"],
                                adaptive_rows)
        for key in ("adaptive_wall_s", "adaptive_wall_ratio"):
            diff.pop(key)
        figures.update(diff)
        figures["adaptive"] = paired["adaptive"]
        # the issue asks for wall time: each job's steps timed, summed
        figures["adaptive_job_wall_ratio"] = paired.get("adaptive_job_wall_ratio")
        figures["adaptive_sweep_to_floor_cpu"] = paired["adaptive"]["ratio_to_floor"]
    return figures


def print_paired(figures: dict, args) -> None:
    modes = figures["modes"]
    print(f"Python {figures['python']}: {figures['modules']} modules x {len(modes)} modes "
          f"({', '.join(modes)}), {args.warmup}+{args.cycles} cycles, --jobs {args.jobs}, "
          f"paired job by job (load {figures['load_average']})")
    ratio = figures["overhead_cpu_ratio"]
    print(f"fixed sweep / bare-host floor, CPU  {ratio:.3f}x  (target <= {TARGET_OVERHEAD}: "
          f"{'met' if ratio <= TARGET_OVERHEAD else 'NOT met'}); sweep {figures['sweep_cpu_s']:.1f} s, "
          f"floor {figures['floor_cpu_s']:.1f} s")
    for part, share in figures["overhead_parts"].items():
        print(f"  {part:<28} {share:.3f}x")
    if args.adaptive:
        met = figures["adaptive_cpu_ratio"] <= ADAPTIVE_TARGET
        print(f"adaptive / fixed cycles, CPU        {figures['adaptive_cpu_ratio']:.3f}x  (target <= "
              f"{ADAPTIVE_TARGET}: {'met' if met else 'NOT met'}); {figures['stopped_early']} of "
              f"{figures['measured']} stopped early, {figures['mean_cycles_run']} cycles on average")
        if figures.get("adaptive_job_wall_ratio") is not None:
            print(f"adaptive / fixed cycles, job wall   {figures['adaptive_job_wall_ratio']:.3f}x  "
                  "(each job's steps timed and summed)")
        print(f"adaptive sweep / floor, CPU         {figures['adaptive_sweep_to_floor_cpu']:.3f}x")
        if figures.get("rule_bound_case_wall_ratio") is not None:
            print(f"case hosts' wall, adaptive / fixed  {figures['achieved_case_wall_ratio']:.3f}x  "
                  f"(the verdict rule's earliest stops: {figures['rule_bound_case_wall_ratio']:.3f}x)")
        diff = figures["verdict_diff"]
        print(f"verdict diff (fixed -> adaptive): {'(empty)' if not diff else ''}")
        for d in diff:
            print(f"  {d['module']}[{d['mode']}]: {d['fixed']} -> {d['adaptive']}")
    for key, n in figures["verdicts"].items():
        mode, verdict = key.split(" ", 1)
        print(f"  {mode:16s} {verdict:12s} {n}")


def print_figures(figures: dict, args) -> None:
    if figures.get("method") == "paired":
        print_paired(figures, args)
        return
    wall_s, floor_wall_s = figures["sweep_wall_s"], figures["floor_wall_s"]
    sweep_cpu_s, floor_cpu_s = figures["sweep_cpu_s"], figures["floor_cpu_s"]
    pass_ref_s, modes = figures["pass_reference_s"], figures["modes"]
    print(f"Python {figures['python']}: {figures['modules']} modules x {len(modes)} modes "
          f"({', '.join(modes)}), {args.warmup}+{args.cycles} cycles, --jobs {args.jobs}"
)
    ratio = figures["overhead_ratio"]
    print(f"sweep / bare-host floor   {ratio:.2f}x  (target <= {TARGET_OVERHEAD}: "
          f"{'met' if ratio is not None and ratio <= TARGET_OVERHEAD else 'NOT met'}); "
          f"sweep {wall_s:.1f} s, floor {floor_wall_s:.1f} s")
    print(f"  in CPU time             {figures['overhead_cpu_ratio']:.2f}x  "
          f"(sweep {sweep_cpu_s:.1f} s, floor {floor_cpu_s:.1f} s; load {figures['load_average']})")
    print(f"sweep / `pass` reference  {figures['pass_reference_ratio']:.2f}x  ({pass_ref_s:.1f} s)")
    if args.explain:
        print(f"sweep --explain {args.explain} / sweep  {figures['explain_ratio']:.2f}x  "
              f"({figures['explained']} leaks explained; verdicts "
              f"{'equal' if figures['same_verdicts'] else 'DIFFER'})")
    if args.adaptive:
        met = figures["adaptive_wall_ratio"] is not None and figures["adaptive_wall_ratio"] <= ADAPTIVE_TARGET
        print(f"adaptive / fixed cycles   {figures['adaptive_wall_ratio']:.2f}x  (target <= "
              f"{ADAPTIVE_TARGET}: {'met' if met else 'NOT met'}); CPU {figures['adaptive_cpu_ratio']:.2f}x; "
              f"{figures['stopped_early']} of {figures['measured']} stopped early, "
              f"{figures['mean_cycles_run']} cycles on average")
        diff = figures["verdict_diff"]
        print(f"verdict diff (fixed -> adaptive): {'(empty)' if not diff else ''}")
        for d in diff:
            print(f"  {d['module']}[{d['mode']}]: {d['fixed']} -> {d['adaptive']}")
    if figures["median_case_s"] is not None:
        print(f"median case               {figures['median_case_s']:.2f} s")
        print("slowest cases             " + ", ".join(
            f"{r['module']}[{r['mode']}] {r['wall_s']:.1f}s" for r in figures["slowest"]))
    for key, n in figures["verdicts"].items():
        mode, verdict = key.split(" ", 1)
        print(f"  {mode:16s} {verdict:12s} {n}")


if __name__ == "__main__":
    sys.exit(main())
