"""Wall time of a full stdlib sweep (both default modes), against a bare loop.

    python bench/sweep_time.py [--python PY] [--jobs 2] [--cycles 20]

The bare reference is the host's `bare-*` loop of `pass` for the same number
of cycles, once per case and mode, divided by the jobs: what the sweep would
cost if every module were free to import and nothing were counted. The
ratio says how much of the sweep is the modules themselves plus counting.
Target (foundation issue): the sweep <= 3 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.cases.model import stdlib_import_cases  # noqa: E402
from harness.host.build import build_host  # noqa: E402
from harness.host.modes import DEFAULT_SWEEP_MODES, mode_problem  # noqa: E402
from harness.host.target import target_python  # noqa: E402


def bare_cycle_s(host: Path, mode: str, cycles: int, program: str) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".py") as case:
        case.write("pass\n")
        case.flush()
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([str(host), f"bare-{mode}", str(cycles), case.name, "2", program],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    target = target_python(args.python)
    modes = [m for m in DEFAULT_SWEEP_MODES if mode_problem(m, target) is None]
    cases, _ = stdlib_import_cases(target)
    host = build_host(target)
    total_cycles = args.cycles + args.warmup
    bare_s = sum(bare_cycle_s(host, m, total_cycles, target.sys_executable) for m in modes)
    bare_total_s = bare_s * len(cases) / args.jobs

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "sweep.jsonl")
        argv = [sys.executable, "-m", "harness", "sweep", "--python", target.executable,
                "--jobs", str(args.jobs), "--cycles", str(args.cycles), "--warmup",
                str(args.warmup), "--out", str(out)]
        for m in modes:
            argv += ["--mode", m]
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       cwd=Path(__file__).resolve().parent.parent)
        wall_s = time.perf_counter() - start
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    case_rows = [r for r in rows if r.get("role") == "case"]
    verdicts = Counter((r["mode"], r["verdict"]) for r in case_rows)
    slowest = sorted(case_rows, key=lambda r: -r["wall_s"])[:5]
    print(f"Python {target.label}: {len(cases)} modules x {len(modes)} modes "
          f"({', '.join(modes)}), {args.warmup}+{args.cycles} cycles, --jobs {args.jobs}")
    print(f"sweep wall time      {wall_s:8.1f} s   (target <= 180 s: "
          f"{'met' if wall_s <= 180 else 'NOT met'})")
    print(f"bare-loop reference  {bare_total_s:8.1f} s   ratio {wall_s / bare_total_s:.2f}x")
    print(f"median case          {statistics.median(r['wall_s'] for r in case_rows):8.2f} s")
    print("slowest cases        " + ", ".join(
        f"{r['module']}[{r['mode']}] {r['wall_s']:.1f}s" for r in slowest))
    for (mode, verdict), n in sorted(verdicts.items()):
        print(f"  {mode:16s} {verdict:12s} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
