"""How even `--shard i/n --durations FILE` makes the shards, on real results files.

    python bench/shards.py --results TONIGHT.jsonl [--durations LAST_NIGHT.jsonl]
                           [--shards 4] [--json]

The nightly splits tonight's sweep by last night's `wall_s` per (case, mode)
(harness/tools/shards.py) and tonight's jobs then take what they take.  So
the figure that matters is out of sample: shards assigned from
`--durations` (an earlier run), costed with `--results` (a later run of the
same sweep).  Without `--durations` the assignment uses `--results` itself,
the best case, which says only that the packing works.  Printed beside it:
the split without any durations file (every job the same cost, as a first
nightly runs), costed the same way.  A shard's cost is the sum of its jobs'
`wall_s`; the figure is the slowest shard over the mean.  A benchmark, not a
test: it always exits 0 when it ran.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.results.load import ResultsError  # noqa: E402
from harness.tools.shards import assign_shards, durations_from  # noqa: E402

TARGET_RATIO = 1.15


def shard_seconds(keys: list[tuple[str, str]], shard_of: list[int], count: int,
                  cost: dict[tuple[str, str], float]) -> list[float]:
    totals = [0.0] * count
    for key, shard in zip(keys, shard_of):
        totals[shard] += cost[key]
    return totals


def slowest_over_mean(totals: list[float]) -> float | None:
    mean = sum(totals) / len(totals)
    return round(max(totals) / mean, 4) if mean else None


def figures(results: Path, durations: Path | None, count: int) -> dict:
    measured = durations_from([results])
    keys = sorted(measured)
    assigned_from = durations_from([durations]) if durations else measured
    by_cost = shard_seconds(keys, assign_shards(keys, count, assigned_from), count, measured)
    equal = shard_seconds(keys, assign_shards(keys, count, None), count, measured)
    return {
        "results": str(results), "durations": str(durations) if durations else None,
        "out_of_sample": durations is not None, "shards": count, "jobs": len(keys),
        "jobs_without_earlier_time": sum(k not in assigned_from for k in keys),
        "total_s": round(sum(measured.values()), 2),
        "by_durations_slowest_over_mean": slowest_over_mean(by_cost),
        "by_durations_shard_s": [round(t, 2) for t in by_cost],
        "without_durations_slowest_over_mean": slowest_over_mean(equal),
        "without_durations_shard_s": [round(t, 2) for t in equal],
        "target": TARGET_RATIO,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True,
                        help="the run whose jobs' wall_s are the shards' costs")
    parser.add_argument("--durations", type=Path, default=None,
                        help="an earlier run the shards are assigned from (default: --results)")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.shards < 1:
        parser.error("--shards must be at least 1")
    for path in filter(None, (args.results, args.durations)):
        if not path.is_file():
            parser.error(f"no such results file: {path}")
    try:
        result = figures(args.results, args.durations, args.shards)
    except ResultsError as exc:
        parser.error(str(exc))
    if not result["jobs"]:
        parser.error(f"{args.results} holds no case result with a wall_s")
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    sample = "out of sample" if result["out_of_sample"] else "in sample (assigned from the same run)"
    print(f"{result['jobs']} jobs, {result['shards']} shards, {sample}")
    print(f"  by --durations:     slowest / mean {result['by_durations_slowest_over_mean']}  "
          f"{result['by_durations_shard_s']} s  (target <= {TARGET_RATIO})")
    print(f"  without durations:  slowest / mean {result['without_durations_slowest_over_mean']}  "
          f"{result['without_durations_shard_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
