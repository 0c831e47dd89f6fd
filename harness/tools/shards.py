"""Split a sweep into n shards of about equal cost, as measured by an earlier run.

Cost is what a (case, mode) took last time (`wall_s` of its result in a
previous results file, `--durations`), the median of the known ones for a
case never measured.  Jobs are dealt longest first, each to the shard with
the least work so far (LPT: no shard ends up more than 4/3 of the optimum),
ties broken by name, so every shard of one nightly computes the same split
from the same job list and file without talking to the others.  Without a
durations file every job costs the same and shards differ by at most one job.
"""

from __future__ import annotations

import heapq
import statistics
from pathlib import Path
from typing import Sequence

from ..results.load import load_results


def durations_from(paths: Sequence[str | Path]) -> dict[tuple[str, str], float]:
    """(case, mode) -> seconds, from earlier results (the longest seen where shards overlap)."""
    costs: dict[tuple[str, str], float] = {}
    for line in load_results(paths).lines:
        wall = line.get("wall_s")
        if line.get("role") == "control" or not isinstance(wall, (int, float)) or wall < 0:
            continue
        key = (str(line.get("case")), str(line.get("mode")))
        costs[key] = max(costs.get(key, 0.0), float(wall))
    return costs


def assign_shards(keys: Sequence[tuple[str, str]], count: int,
                  durations: dict[tuple[str, str], float] | None = None) -> list[int]:
    """Shard index (0-based) for each (case, mode) key, balancing measured cost."""
    durations = durations or {}
    known = [durations[k] for k in keys if k in durations]
    default = statistics.median(known) if known else 1.0
    cost = [durations.get(k, default) for k in keys]
    order = sorted(range(len(keys)), key=lambda i: (-cost[i], keys[i]))
    loads = [(0.0, shard) for shard in range(count)]
    heapq.heapify(loads)
    shard_of = [0] * len(keys)
    for i in order:
        total, shard = heapq.heappop(loads)
        shard_of[i] = shard
        heapq.heappush(loads, (total + cost[i], shard))
    return shard_of


def shard_costs(keys: Sequence[tuple[str, str]], count: int,
                durations: dict[tuple[str, str], float]) -> list[float]:
    """Measured seconds per shard under `assign_shards` (for `bench/` and tests)."""
    totals = [0.0] * count
    known = [durations[k] for k in keys if k in durations]
    default = statistics.median(known) if known else 1.0
    for key, shard in zip(keys, assign_shards(keys, count, durations)):
        totals[shard] += durations.get(key, default)
    return totals
