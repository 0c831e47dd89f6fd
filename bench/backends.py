"""Cost of the tracemalloc and memray backends against counters, same case, one run.

    python bench/backends.py [--python PY ...] [--case CODE] [--cycles N] [--warmup W] [--repeats R] [--json]

For each target Python, runs one case (default `import json`) through a whole
`leak-harness run` — the case, its `pass` control and the extension-import
probe — with each backend, in the mode all three can measure there
(subinterpreter on 3.13, legacy-subinterpreter on 3.12, whose isolated mode
tracemalloc refuses).  Backends alternate within each repeat so drift of the
machine hits all alike.  A run's cost is the CPU time (user + system) of its
host processes, read from RUSAGE_CHILDREN, not wall time, which other
processes on a shared machine inflate at random; the minimum over the
repeats is kept.  Prints seconds per run and the ratio to counters, against
the targets (tracemalloc <= 2x, memray <= 3x).  A benchmark, not a test: it
always exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.cases.model import Case  # noqa: E402
from harness.engine import Engine # noqa: E402
from harness.settings import RunSettings # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness.host.target import target_python  # noqa: E402
from common import children_cpu_s, release_pythons  # noqa: E402

BACKENDS = ("counters", "tracemalloc", "memray")
TARGET_RATIO = {"tracemalloc": 2.0, "memray": 3.0}


def one_run(python: str, mode: str, backend: str, code: str, cycles: int, warmup: int) -> float:
    """CPU seconds of one whole run: a fresh Engine, so the control is measured too."""
    settings = RunSettings(python=python, mode=mode, backend=backend, cycles=cycles, warmup=warmup)
    before = children_cpu_s()
    result = Engine().run(Case(name="bench", code=code), settings)
    spent = children_cpu_s() - before
    if result.verdict not in ("clean", "leak"):
        raise HarnessError(f"{backend}: {result.verdict}: {result.message}")
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", action="append", default=None)
    parser.add_argument("--case", default="import json")
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    rows: list[dict] = []
    for python in args.python or release_pythons():
        target = target_python(python)
        mode = "subinterpreter" if target.version_info[:2] >= (3, 13) else "legacy-subinterpreter"
        best: dict[str, float] = {}
        try:
            for _ in range(args.repeats):
                for backend in BACKENDS:
                    spent = one_run(python, mode, backend, args.case, args.cycles, args.warmup)
                    best[backend] = min(best.get(backend, spent), spent)
        except HarnessError as exc:
            rows.append({"python": target.version, "mode": mode, "skipped": str(exc)})
            if not args.json:
                print(f"Python {target.version} {mode}: skipped: {exc}")
            continue
        rows.append({"python": target.version, "mode": mode,
                     "cpu_s": {b: round(best[b], 3) for b in BACKENDS},
                     "ratio_to_counters": {b: round(best[b] / best["counters"], 3) for b in BACKENDS}})
        if args.json:
            continue
        print(f"Python {target.version}  {mode}  case {args.case!r}  "
              f"{args.warmup} warm-up + {args.cycles} cycles, case + control (+ the import probe for counters), "
              f"min CPU s of {args.repeats}")
        for backend in BACKENDS:
            ratio = best[backend] / best["counters"]
            target_note = (f"  (target <= {TARGET_RATIO[backend]:g}x: "
                           f"{'met' if ratio <= TARGET_RATIO[backend] else 'NOT met'})"
                           if backend in TARGET_RATIO else "")
            print(f"  {backend:12s} {best[backend]:7.2f} s  {ratio:5.2f}x{target_note}")
    if args.json:
        print(json.dumps({"case": args.case, "cycles": args.cycles, "warmup": args.warmup,
                          "repeats": args.repeats, "statistic": "minimum CPU s of the host processes",
                          "target_ratio": TARGET_RATIO, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
