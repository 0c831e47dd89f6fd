"""Baseline against new results: which leaks are new, grown, fixed or unchanged.

Results are matched on (python X.Y, debug or not, mode, backend, case): a
patch release of the runner's Python (3.12.1 -> 3.12.4) keeps its baseline,
and a leak that the patch release brings is exactly what should show as new.

Rules (the nightly job's exit status follows them):
- **new**: leaks now, and was not a leak in the baseline (clean, unsupported,
  crashed, or absent).
- **grown**: leaked before and now, and the excess per cycle (bytes or
  blocks) rose by more than the threshold *and* by more than the noise (the
  new result's tolerance for that counter), so a 30% rise of a 3-block leak
  that is within the control's jitter does not fail a night.
- **fixed**: leaked in the baseline, now clean or unsupported.
- **unchanged**: leaked before and now, not grown (or shrunk).
- **new crashes**: crash/timeout/error now, not one of those in the baseline;
  and a crash whose signature (the top native frames, harness/crash.py) no
  baseline crash of that Python series has, even where the baseline crashed
  too: a new signature is a new bug.
- **unchanged crashes**: a crash whose signature the baseline already has
  (in any module: the same bug hit from one more module is not a new one),
  and a crash where the baseline's crash of the same case has no signature
  (recorded before results carried stacks, as ci/baseline.json's are): with
  nothing to compare, crashed then and now is not new.
A current leak or crash matching a known-leaks entry goes to **known** instead
(with the category it would have had) and never fails the job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import HarnessError
from ..host.target import version_label
from .known_leaks import KnownLeak, first_match
from .load import ResultSet
from .summary import PROBLEM_VERDICTS, excess_of, module_name

GROWTH_COUNTERS = ("bytes", "blocks")
CompareKey = tuple[str, str, str, str]


def parse_threshold(text: str) -> float:
    """'25%' -> 0.25; '0.25' -> 0.25. Anything else is a usage error."""
    raw = text.strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(%?)", raw)
    if not match:
        raise HarnessError(f"--grow-threshold wants a percentage such as 25% (got {text!r})")
    value = float(match.group(1))
    if match.group(2):
        return value / 100.0
    if value > 1:
        raise HarnessError(f"--grow-threshold {text}: write a percentage (25%) or a fraction (0.25)")
    return value


def compare_key(line: dict[str, Any]) -> CompareKey:
    python = line.get("python") or {}
    numbers = re.findall(r"\d+", str(python.get("version", "")))[:2]
    series = version_label(".".join(numbers), bool(python.get("debug")))
    return (series, line.get("mode", "?"), line.get("backend", "?"), line.get("case", "?"))


@dataclass
class Change:
    """One result's fate between the baseline and now."""

    category: str                       # new | grown | fixed | unchanged | new-crash | unchanged-crash
    now: dict[str, Any] | None          # the new line (None only if absent now)
    before: dict[str, Any] | None       # the baseline line (None when absent)
    known: KnownLeak | None = None
    growth: dict[str, float] = field(default_factory=dict)   # counter -> relative growth

    @property
    def line(self) -> dict[str, Any]:
        return self.now or self.before or {}

    def to_json(self) -> dict[str, Any]:
        line = self.line
        out = {
            "category": self.category, "module": module_name(line), "case": line.get("case"),
            "python": (line.get("python") or {}).get("version"),
            "debug": bool((line.get("python") or {}).get("debug")),
            "mode": line.get("mode"), "backend": line.get("backend"),
            "verdict": (self.now or {}).get("verdict"),
            "baseline_verdict": (self.before or {}).get("verdict"),
            "excess": {c: excess_of(self.now or {}, c) for c in ("blocks", "bytes", "refs")},
            "baseline_excess": {c: excess_of(self.before or {}, c) for c in ("blocks", "bytes", "refs")},
            "message": (self.now or {}).get("message"),
        }
        signature = ((self.now or {}).get("crash") or {}).get("signature")
        if signature:
            out["signature"] = signature
        if self.growth:
            out["growth"] = self.growth
        if self.known:
            out["known"] = self.known.to_json()
        return out


@dataclass
class Comparison:
    threshold: float
    new: list[Change] = field(default_factory=list)
    grown: list[Change] = field(default_factory=list)
    fixed: list[Change] = field(default_factory=list)
    unchanged: list[Change] = field(default_factory=list)
    new_crashes: list[Change] = field(default_factory=list)
    unchanged_crashes: list[Change] = field(default_factory=list)
    known: list[Change] = field(default_factory=list)
    stale: list[KnownLeak] = field(default_factory=list)
    unexercised: list[KnownLeak] = field(default_factory=list)
    not_rerun: list[dict[str, Any]] = field(default_factory=list)
    baseline_count: int = 0
    new_count: int = 0

    @property
    def failed(self) -> bool:
        return bool(self.new or self.grown or self.new_crashes)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def to_json(self) -> dict[str, Any]:
        lists = {name: [c.to_json() for c in getattr(self, name)]
                 for name in ("new", "grown", "fixed", "unchanged", "new_crashes",
                              "unchanged_crashes", "known")}
        return {
            "grow_threshold": self.threshold, "failed": self.failed,
            "baseline_results": self.baseline_count, "new_results": self.new_count,
            **lists,
            "stale_known_leaks": [e.to_json() for e in self.stale],
            "unexercised_known_leaks": [e.to_json() for e in self.unexercised],
            "not_rerun": [{"case": l.get("case"), "module": module_name(l),
                           "python": (l.get("python") or {}).get("version"), "mode": l.get("mode"),
                           "backend": l.get("backend"), "verdict": l.get("verdict")}
                          for l in self.not_rerun],
        }


def _growth(before: dict[str, Any], now: dict[str, Any], threshold: float) -> dict[str, float]:
    """Counters whose excess grew past both the threshold and the noise, with the relative rise."""
    grown = {}
    tolerance = now.get("tolerance") or {}
    for counter in GROWTH_COUNTERS:
        old, new = excess_of(before, counter), excess_of(now, counter)
        if old is None or new is None:
            continue
        noise = float(tolerance.get(counter) or 0.0)
        if new > old * (1.0 + threshold) and new - old > noise:
            grown[counter] = round((new - old) / abs(old), 4) if old else float("inf")
    return grown


def compare(baseline: ResultSet, current: ResultSet, known: list[KnownLeak] | None = None,
            threshold: float = 0.25) -> Comparison:
    """Sort every current result (and every baseline leak) into the lists above."""
    known = known or []
    before = {compare_key(line): line for line in baseline.case_lines()}
    known_signatures = {(key[0], _signature(line)) for key, line in before.items() if _signature(line)}
    now_lines = current.case_lines()
    # a nightly whose sweep wrote nothing (or ran other targets) must not be green
    if not now_lines:
        raise HarnessError(f"the new results ({', '.join(current.sources) or 'none'}) hold no "
                           "case results: nothing to compare")
    if before and not any(compare_key(line) in before for line in now_lines):
        sample = next(iter(before))
        raise HarnessError(
            f"the new results cover none of the baseline's {len(before)} results (e.g. baseline "
            f"{'/'.join(sample)} vs new {'/'.join(compare_key(now_lines[0]))}): another "
            "Python, mode or backend?")
    result = Comparison(threshold=threshold, baseline_count=len(before), new_count=len(now_lines))
    seen: set[CompareKey] = set()
    for now in sorted(now_lines, key=lambda l: (module_name(l), compare_key(l))):
        key = compare_key(now)
        seen.add(key)
        old = before.get(key)
        old_verdict = (old or {}).get("verdict")
        change: Change | None = None
        if now["verdict"] == "leak":
            if old_verdict != "leak":
                change = Change("new", now, old)
            else:
                growth = _growth(old, now, threshold)
                change = Change("grown" if growth else "unchanged", now, old, growth=growth)
        elif _signature(now):
            known_bug = (key[0], _signature(now)) in known_signatures
            # the baseline crashed here before results carried stacks: no
            # signature to tell a new bug from the old one, so the verdict
            # rule decides (crashed then, crashes now: not new)
            unsigned = old_verdict == "crash" and _signature(old) is None
            change = Change("unchanged-crash" if known_bug or unsigned else "new-crash", now, old)
        elif now["verdict"] in PROBLEM_VERDICTS and old_verdict not in PROBLEM_VERDICTS:
            change = Change("new-crash", now, old)
        elif old_verdict == "leak" and now["verdict"] in ("clean", "unsupported"):
            result.fixed.append(Change("fixed", now, old))
        if change is None:
            continue
        change.known = first_match(known, now)
        if change.known:
            result.known.append(change)
        else:
            {"new": result.new, "grown": result.grown, "unchanged": result.unchanged,
             "new-crash": result.new_crashes,
             "unchanged-crash": result.unchanged_crashes}[change.category].append(change)
    result.not_rerun = [line for key, line in before.items() if key not in seen]
    for entry in known:
        if not any(entry.selects(line) for line in now_lines):
            result.unexercised.append(entry)
        elif not any(entry.matches(line) for line in now_lines):
            result.stale.append(entry)
    return result


def _signature(line: dict[str, Any]) -> str | None:
    """A crash result's signature; None for other verdicts and for crashes
    recorded before results carried stacks (those keep the verdict rule)."""
    if line.get("verdict") != "crash":
        return None
    return (line.get("crash") or {}).get("signature")
