"""Scaling of isolated subinterpreters: `pass` and `import json` at 1 and 2 threads.

    python bench/scale.py [--python PY ...] [--threads 1,2] [--cycles N] [--repeats R] [--json]

For each target Python (default: every installed 3.12 and 3.13), runs each
case on the bare parallel host (no allocator hook) at each thread count and
prints interpreter cycles per second (best of the repeats), the ratio
against one thread and the efficiency (ratio / threads; 1.0 is perfect).
Rounds are fenced by barriers in the host, so on a machine shared with
other work the figures are lower bounds; the load average is printed with
them.  A benchmark, not a test: it always exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.cases.model import code_case  # noqa: E402
from common import release_pythons  # noqa: E402
from harness.tools.scale import measure_scaling, parse_thread_counts  # noqa: E402

CASES = ("pass", "import json")



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", default=[])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    counts = parse_thread_counts(args.threads)
    rows: list[dict] = []
    say = (lambda *a, **k: None) if args.json else print
    say(f"{'python':8} {'case':12} {'threads':>7} {'cycles/s':>9} {'vs 1':>6} {'eff.':>5}  runs")
    for python in args.python or release_pythons():
        for code in CASES:
            table = measure_scaling(code_case(code), python, counts, cycles=args.cycles,
                                    warmup=args.warmup, repeats=args.repeats)
            for p in table.points:
                rate = "-" if p.cycles_per_s is None else f"{p.cycles_per_s:.1f}"
                ratio, eff = table.ratio(p), table.efficiency(p)
                rows.append({"python": table.python["version"], "case": code, "threads": p.threads,
                             "cycles_per_s": p.cycles_per_s, "ratio_to_1": ratio, "efficiency": eff,
                             "rates": p.rates, "problem": p.problem})
                say(f"{table.python['version']:8} {code:12} {p.threads:>7} {rate:>9} "
                      f"{'-' if ratio is None else f'{ratio:.2f}x':>6} "
                      f"{'-' if eff is None else f'{eff:.0%}':>5}  "
                      + (p.problem or " ".join(f"{r:.1f}" for r in p.rates)))
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"cycles": args.cycles, "warmup": args.warmup, "repeats": args.repeats,
                          "statistic": "best of the repeats", "load_average": list(load),
                          "cpus": os.cpu_count(), "rows": rows}, indent=1))
        return 0
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs; "
          f"bare-parallel host, best of {args.repeats} runs x {args.cycles} cycles per thread")
    return 0


if __name__ == "__main__":
    sys.exit(main())
