"""Sweep the curated case catalog (cases/*.toml) like `sweep` does the stdlib.

The nightly job runs the catalog next to the stdlib imports, into the same
JSON-lines file, with the same sharding (`--shard i/n`, by case-name hash),
the same engine (one `pass` control per python and mode) and the same line
format (`"role": "case"` / `"control"`). It is a thin driver over
harness.sweep; a case whose `requires` the target does not meet is skipped
with its reason. Exit status as `sweep`: 0 no leak, 1 a leak, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:   # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

from harness.cases.catalog import CATALOG_DIR, load_catalog  # noqa: E402
from harness.engine import Engine # noqa: E402
from harness.settings import RunSettings # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness.host.modes import MODES  # noqa: E402
from harness.tools.sweep import append_path, parse_shard, plan, run_sweep  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", default=[], required=True)
    parser.add_argument("--mode", action="append", default=[], choices=list(MODES), required=True)
    parser.add_argument("--cases-dir", default=str(CATALOG_DIR))
    parser.add_argument("--case", action="append", default=[], help="only these case names")
    parser.add_argument("--backend", default="counters")
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--shard")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        catalog = load_catalog(args.cases_dir)
        if args.case:
            unknown = sorted(set(args.case) - {c.name for c in catalog})
            if unknown:
                raise HarnessError(f"no case named {', '.join(unknown)} in {args.cases_dir}")
            catalog = [c for c in catalog if c.name in args.case]

        def cases_for(target):
            fitting = []
            for case_file in catalog:
                problem = case_file.requires.problem(target)
                if problem:
                    print(f"skipped {case_file.name} on {target.label}: {problem}", file=sys.stderr)
                else:
                    fitting.append(case_file.case)
            return fitting

        base = RunSettings(mode=args.mode[0], backend=args.backend, cycles=args.cycles,
                           warmup=args.warmup, timeout=args.timeout)
        jobs, skipped = plan(cases_for, args.python, args.mode, base, parse_shard(args.shard))
        for line in skipped:
            print(f"skipped {line}", file=sys.stderr)
        out = append_path(args.out)
        try:
            outcome = run_sweep(jobs, Engine(), args.jobs, out=out)
        finally:
            if out:
                out.close()
    except HarnessError as exc:
        print(f"sweep_cases: error: {exc}", file=sys.stderr)
        return exc.exit_code
    counts: dict[str, int] = {}
    for result in outcome.results:
        counts[result.verdict] = counts.get(result.verdict, 0) + 1
    print(f"catalog: {len(outcome.results)} results: "
          + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())), file=sys.stderr)
    if outcome.interrupted:
        return 130
    return 1 if counts.get("leak") else 0


if __name__ == "__main__":
    sys.exit(main())
