"""Did a host hand back exactly the samples it was asked for?

A host asked for W + C cycles writes one sample before the first cycle and
one after each: cycles 0, 1, ..., W + C, in that order.  Anything else means
the numbers cannot be trusted, whatever they say: a cycle count that
overflowed in the host (4294967296 cycles ran as 0, and no growth read as
`clean`), samples a case wrote itself, or lines lost.  The check is pure so
the verdict stage can call it on any run.
"""

from __future__ import annotations

from collections import Counter


def _ranges(numbers: list[int]) -> str:
    """'3, 5-7': a short spelling of sorted whole numbers."""
    parts: list[str] = []
    start = prev = None
    for n in numbers:
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = n
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(parts)


def sample_problem(samples: list[dict], total_cycles: int) -> str | None:
    """What is wrong with `samples` for a run of `total_cycles`, or None.

    Expected: exactly the cycles 0..total_cycles, each once, in order.
    """
    cycles = [s.get("cycle") if isinstance(s, dict) else None for s in samples]
    expected = list(range(total_cycles + 1))
    if cycles == expected:
        return None
    whole = [c for c in cycles if isinstance(c, int) and not isinstance(c, bool)]
    missing = sorted(set(expected) - set(whole))
    extra = sorted(c for c in set(whole) if c not in set(expected))
    repeated = sorted(c for c, n in Counter(whole).items() if n > 1)
    problems = []
    if missing:
        problems.append(f"missing cycle(s) {_ranges(missing)}")
    if extra:
        problems.append(f"unexpected cycle(s) {_ranges(extra)}")
    if repeated:
        problems.append(f"repeated cycle(s) {_ranges(repeated)}")
    if len(whole) != len(cycles):
        problems.append(f"{len(cycles) - len(whole)} sample(s) without a cycle number")
    if not problems:
        problems.append("cycles out of order")
    return (f"the host's samples are not cycles 0..{total_cycles} in order "
            f"({len(samples)} sample(s): {'; '.join(problems)}); its numbers are not a measurement")
