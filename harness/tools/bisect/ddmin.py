"""Shrink a leaking set to a minimal one: delta debugging (ddmin) over a predicate.

Pure machinery, no I/O: `Shrinker` is given `probe(subset) -> Probe` (which
runs the case built from the subset: a script, a set of imports, a set of
tests) and finds a 1-minimal subset that still leaks, i.e. one where
removing any single item makes it clean.  Zeller's ddmin tests halves,
then complements, then finer partitions, so a leak that needs two items
together (module B leaks only through module A's registry) is found as
the pair, not lost because each half alone is clean.

Measurements are slow (a host process each) and noisy, so:

- verdicts are cached by the subset's *key* (`canonical(subset)`: for a
  script, the statements actually run after the dependency closure), so
  two subsets that run the same program cost one measurement;
- the candidates of one ddmin round are independent: with `jobs > 1` they
  are measured `jobs` at a time, and the first leaking one in ddmin's own
  order is taken, so the result does not depend on `jobs`;
- a `leak` that would shrink the set is measured a second time before it
  is believed.  When the two disagree the subset is *flaky*: it is measured
  `retries` more times and the majority decides (a tie is not a leak, the
  set is then not shrunk on its evidence); every flaky subset is reported.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

Subset = tuple[int, ...]


@dataclass(frozen=True)
class Probe:
    """One measurement of one subset."""

    verdict: str                                   # leak / clean / crash / error / ...
    excess: dict[str, float | None] = field(default_factory=dict)   # growth per cycle over control
    message: str = ""
    wall_s: float = 0.0


@dataclass
class Trial:
    """Every measurement of one subset key, and what was decided from them."""

    key: Subset
    probes: list[Probe] = field(default_factory=list)

    @property
    def verdicts(self) -> list[str]:
        return [p.verdict for p in self.probes]

    @property
    def flaky(self) -> bool:
        return len(set(self.verdicts)) > 1

    @property
    def verdict(self) -> str:
        """Majority of the measurements; a tie between leak and not-leak is not a leak."""
        counts = Counter(self.verdicts)
        leaks = counts.get("leak", 0)
        if leaks * 2 > len(self.probes):
            return "leak"
        others = [v for v in self.verdicts if v != "leak"]
        return Counter(others).most_common(1)[0][0] if others else "leak"

    @property
    def representative(self) -> Probe:
        """A probe whose verdict is the decided one (the last such)."""
        for probe in reversed(self.probes):
            if probe.verdict == self.verdict:
                return probe
        return self.probes[-1]


@dataclass
class ShrinkOutcome:
    """What `Shrinker.shrink` found and what it cost."""

    minimal: Subset
    original: Trial
    result: Trial
    runs: int                      # measurements made (cache hits not counted)
    cache_hits: int
    rounds: int
    flaky: list[Trial]
    wall_s: float

    @property
    def leaks(self) -> bool:
        return self.original.verdict == "leak"


class Shrinker:
    """ddmin over `range(n)` with a verdict cache, parallel rounds and flaky retries."""

    def __init__(self, probe: Callable[[Subset], Probe], *,
                 canonical: Callable[[Subset], Subset] = lambda s: s,
                 jobs: int = 1, retries: int = 2,
                 on_trial: Callable[[Trial, str], None] | None = None) -> None:
        if jobs < 1:
            raise ValueError("jobs must be >= 1")
        self._probe = probe
        self._canonical = canonical
        self.jobs = jobs
        self.retries = max(0, retries)
        self._on_trial = on_trial or (lambda trial, why: None)
        self._trials: dict[Subset, Trial] = {}
        self._lock = threading.Lock()
        self.runs = 0
        self.cache_hits = 0
        self.rounds = 0

    # -- measuring ------------------------------------------------------------
    def _measure(self, key: Subset) -> Probe:
        probe = self._probe(key)
        with self._lock:
            self.runs += 1
            self._trials.setdefault(key, Trial(key)).probes.append(probe)
        return probe

    def trial(self, subset: Sequence[int], *, count_hit: bool = True) -> Trial:
        """The cached trial for a subset, measuring it once if it never was."""
        key = self._canonical(tuple(sorted(subset)))
        with self._lock:
            known = self._trials.get(key)
            if known is not None and known.probes:
                self.cache_hits += count_hit
                return known
        self._measure(key)
        trial = self._trials[key]
        self._on_trial(trial, "measured")
        return trial

    def confirmed_leak(self, subset: Sequence[int]) -> bool:
        """Is this subset's leak believed?  A second measurement must agree;
        when it does not, `retries` more decide by majority."""
        trial = self.trial(subset, count_hit=False)
        if trial.verdict != "leak":
            return False
        if len(trial.probes) >= 2 and not trial.flaky:
            return True
        if len(trial.probes) < 2:
            self._measure(trial.key)
            if not trial.flaky:
                self._on_trial(trial, "confirmed")
                return True
        while trial.flaky and len(trial.probes) < 2 + self.retries:
            self._measure(trial.key)
        self._on_trial(trial, "flaky")
        return trial.verdict == "leak"

    def _first_leak(self, candidates: list[Subset]) -> Subset | None:
        """The first candidate (in ddmin order) whose leak is confirmed.

        Candidates are measured `jobs` at a time; a batch is judged only
        once all of it is measured, in order, so `jobs` changes the wall
        time, never the answer."""
        for start in range(0, len(candidates), self.jobs):
            batch = candidates[start:start + self.jobs]
            if len(batch) > 1:
                with ThreadPoolExecutor(max_workers=len(batch)) as pool:
                    list(pool.map(self.trial, batch))
            else:
                self.trial(batch[0])
            for candidate in batch:
                if self.confirmed_leak(candidate):
                    return candidate
        return None

    # -- ddmin ----------------------------------------------------------------
    def shrink(self, count: int) -> ShrinkOutcome:
        """Find a 1-minimal leaking subset of range(count).

        When the whole set does not leak (after confirmation) nothing is
        shrunk: `minimal` is the whole set and `leaks` is False.
        """
        started = time.monotonic()
        current: Subset = tuple(range(count))
        original_leaks = count > 0 and self.confirmed_leak(current)
        original = self.trial(current, count_hit=False)
        granularity = 2
        while original_leaks and len(current) >= 2:
            self.rounds += 1
            chunks = _split(current, granularity)
            found = self._first_leak(chunks)
            if found is not None:
                current, granularity = found, 2
                continue
            if granularity > 2:
                complements = [tuple(i for i in current if i not in set(c)) for c in chunks]
                found = self._first_leak(complements)
                if found is not None:
                    current, granularity = found, max(granularity - 1, 2)
                    continue
            if granularity >= len(current):
                break
            granularity = min(len(current), granularity * 2)
        result = self.trial(current, count_hit=False)
        flaky = [t for t in self._trials.values() if t.flaky]
        return ShrinkOutcome(
            minimal=self._canonical(current), original=original, result=result,
            runs=self.runs, cache_hits=self.cache_hits, rounds=self.rounds, flaky=flaky,
            wall_s=time.monotonic() - started,
        )


def _split(items: Subset, parts: int) -> list[Subset]:
    """`items` cut into `parts` contiguous chunks of near-equal size."""
    parts = min(parts, len(items))
    size, extra = divmod(len(items), parts)
    chunks, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        chunks.append(items[start:end])
        start = end
    return chunks
