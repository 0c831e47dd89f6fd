"""What a case pays before its first cycle: the host's start-up and the harness's own work per case.

    python bench/startup.py [--python PY ...] [--cases N] [--repeats R] [--root DIR] [--json]

Host side (the counting host, `build_host(target, native=True)`, finalize
mode, the `pass` case, the harness's own argv: path file, crash file, token):
- `true_ms`: wall time of exec'ing /bin/true, the machine's process start;
- `host0_ms`: the host run for 0 cycles: process start, dynamic linking
  (libpython, libgcc_s, libc), reading its arguments and the path file, no
  interpreter; `dynlink_mcycles`: the dynamic loader's own count
  (LD_DEBUG=statistics, TSC cycles) of that;
- `first_cycle_ms` / `steady_cycle_ms`: from the host's own clock (`t_ms`
  of its samples), the first cycle (the first Py_Initialize reads the
  stdlib from disk and warms every cache) against the mean later cycle.
Harness side (an Engine with its controls already measured, as in a sweep
after its first case): `case_ms` is Engine.run's wall time for one
`import NAME` case, `host_ms` the case host's own wall time inside it;
`harness_ms` = case_ms - host_ms is the harness's work per case.  Its parts
are timed alone too (`steps_ms`): the target lookup, finding the cached host
and probe extension (build_host, build_probe_extension), the traceback
dumper's offset, the distribution lookup, the work directory and its files,
and the /proc scan for strays that ends every host run (counted in host_ms,
since run.wall_s includes it).

Ratios first: harness_ms / host_ms (the harness's share of a case),
first_cycle / steady_cycle, host0 / steady_cycle.  Minimum over the repeats
for every figure (the least disturbed run on a shared machine).
`--root DIR` measures the harness of another checkout (e.g. a worktree of an
older commit), so a before/after pair is two runs of this one script.
A benchmark, not a test: it always exits 0 when it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
STEADY_CYCLES = 8
#: small stdlib modules: the case is the harness's, not the module's
CASE_MODULES = ("abc", "string", "textwrap", "base64", "csv", "json", "heapq", "bisect")


def _min_ms(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def _host_lines(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, list[dict], str]:
    """(wall ms, the JSON lines on fd 1, stderr) of one host run."""
    t = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    wall = (time.perf_counter() - t) * 1e3
    if proc.returncode != 0:
        raise RuntimeError(f"host exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return wall, lines, proc.stderr


def host_side(target, repeats: int) -> dict:
    from harness.host.build import build_host
    from harness.host.launch import c_host_argv
    from harness.host.target import search_path

    binary = build_host(target, native=True)
    with tempfile.TemporaryDirectory() as tmp:
        case_file = Path(tmp, "case.py")
        case_file.write_text("pass\n")
        path_file = Path(tmp, "sys_path.txt")
        path_file.write_bytes(b"".join(os.fsencode(e) + b"\n" for e in search_path(target)))

        def argv(cycles: int) -> list[str]:
            # the harness's own argv, its token on a closed fd replaced by none
            args = c_host_argv(binary, "finalize", cycles, str(case_file), target,
                               path_file=str(path_file), crash_file=str(Path(tmp, "crash.txt")),
                               warmup=0)
            args = [str(a) for a in args]
            if "--token-fd" in args:
                i = args.index("--token-fd")
                del args[i:i + 2]
            return [("1" if a == "{out_fd}" else a) for a in args]

        true_ms = _min_ms(lambda: subprocess.run(["/bin/true"], check=True), repeats)
        host0 = min(_host_lines(argv(0))[0] for _ in range(repeats))
        env = dict(os.environ, LD_DEBUG="statistics")
        _, _, stats = _host_lines(argv(0), env)
        found = re.search(r"total startup time in dynamic loader: ([\d,]+) cycles", stats)
        dynlink = int(found.group(1).replace(",", "")) / 1e6 if found else None
        firsts, steadies = [], []
        for _ in range(repeats):
            _, lines, _ = _host_lines(argv(STEADY_CYCLES))
            t = {s["cycle"]: s["t_ms"] for s in lines if s.get("event") == "sample"}
            firsts.append(t[1] - t[0])
            steadies.append((t[STEADY_CYCLES] - t[1]) / (STEADY_CYCLES - 1))
    return {"true_ms": round(true_ms, 2), "host0_ms": round(host0, 2),
            "dynlink_mcycles": round(dynlink, 3) if dynlink is not None else None,
            "first_cycle_ms": round(min(firsts), 2), "steady_cycle_ms": round(min(steadies), 2)}


def harness_side(target, cases: int, repeats: int) -> dict:
    from harness.backends.crash_symbols import traceback_dumper_offset
    from harness.cases.model import Case
    from harness.cases.packages import distribution_json
    from harness.engine import Engine
    from harness.host.build import build_host, build_probe_extension
    from harness.host.strays import _session_members
    from harness.host.target import search_path, target_python
    from harness.settings import RunSettings
    from harness.verdict.crash import libpython_of

    engine = Engine()
    settings = RunSettings(python=target.executable, mode="finalize", backend="counters",
                           cycles=4, warmup=1)
    engine.run(Case(name="abc", code="import abc", module="abc"), settings)  # controls, once
    harness, host, whole = [], [], []
    for i in range(cases):
        module = CASE_MODULES[i % len(CASE_MODULES)]
        t = time.perf_counter()
        result = engine.run(Case(name=module, code=f"import {module}", module=module), settings)
        case_ms = (time.perf_counter() - t) * 1e3
        whole.append(case_ms)
        host.append(result.wall_s * 1e3)
        harness.append(case_ms - result.wall_s * 1e3)

    def workdir() -> None:
        d = Path(tempfile.mkdtemp(prefix="leak-harness-bench-"))
        (d / "case.py").write_text("import json\n", encoding="utf-8")
        (d / "sys_path.txt").write_bytes(b"".join(os.fsencode(e) + b"\n" for e in search_path(target)))
        shutil.rmtree(d, ignore_errors=True)

    steps = {
        "target_python": lambda: target_python(target.executable),
        "build_host": lambda: build_host(target, native=True),
        "build_probe_extension": lambda: build_probe_extension(target),
        "traceback_dumper_offset": lambda: traceback_dumper_offset(libpython_of(target)),
        "distribution_json": lambda: distribution_json(target, "json"),
        "workdir_and_files": workdir,
        # runner.run_host's /proc scan for the host's strays, after every host:
        # inside host_ms (run.wall_s), though it is the harness's work
        "stray_scan_in_host_ms": lambda: _session_members(os.getsid(0)),
    }
    return {"case_ms": round(min(whole), 2), "host_ms": round(min(host), 2),
            "harness_ms": round(min(harness), 2),
            "steps_ms": {name: round(_min_ms(fn, repeats), 3) for name, fn in steps.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help="target Python (repeatable)")
    parser.add_argument("--cases", type=int, default=6, help="cases timed through the Engine")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--root", help="the checkout whose harness is measured (default: this one)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve() if args.root else BENCH.parent
    sys.path.insert(0, str(root))
    from harness.host.target import target_python  # first: common.py puts this checkout on the path
    sys.path.insert(1, str(BENCH))
    from common import release_pythons

    ratios, figures = {}, {}
    for python in args.python or release_pythons():
        target = target_python(python)
        try:
            f = {**host_side(target, args.repeats), **harness_side(target, args.cases, args.repeats)}
        except Exception as exc:  # one broken Python must not hide the others
            print(f"{python}: {exc}", file=sys.stderr)
            continue
        figures[target.label] = f
        ratios[target.label] = {
            "harness_over_host": round(f["harness_ms"] / f["host_ms"], 3),
            "first_over_steady_cycle": round(f["first_cycle_ms"] / f["steady_cycle_ms"], 3),
            "host0_over_steady_cycle": round(f["host0_ms"] / f["steady_cycle_ms"], 3),
        }
    report = {"ratios": ratios, "figures": figures, "root": str(root),
              "unit": "ms (wall), minimum of the repeats", "repeats": args.repeats,
              "cases": args.cases}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    for label in figures:
        r, f = ratios[label], figures[label]
        print(f"Python {label}: harness/host per case {r['harness_over_host']:.3f}, "
              f"first/steady cycle {r['first_over_steady_cycle']:.2f}, "
              f"host start/steady cycle {r['host0_over_steady_cycle']:.2f}")
        print(f"  process start {f['true_ms']:.2f} ms, host 0 cycles {f['host0_ms']:.2f} ms "
              f"(dynamic loader {f['dynlink_mcycles']} Mcycles), first cycle {f['first_cycle_ms']:.1f} ms, "
              f"steady {f['steady_cycle_ms']:.1f} ms")
        print(f"  per case: {f['case_ms']:.1f} ms, of which host {f['host_ms']:.1f} ms, "
              f"harness {f['harness_ms']:.1f} ms")
        print("  harness steps (ms): " + ", ".join(f"{k} {v}" for k, v in f["steps_ms"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
