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


def stop_problem(asked_at: int | None, stopped_at: int | None, warmup: int,
                 cycles: int) -> str | None:
    """What is wrong with where a host stopped (adaptive cycles), or None.

    The harness answers the host's stop pipe; the host names the cycle it
    stopped after.  They must agree: a host that stopped where nobody asked,
    or did not stop where asked, read an answer that was not the harness's
    (the case can reach the pipe's fd), and what it counted is not the run
    the harness decided on.  A stop must also fall inside the window."""
    if asked_at is None and stopped_at is None:
        return None
    if asked_at is None:
        return (f"the host stopped after cycle {stopped_at}, but the harness never told it to stop "
                "(an answer on the stop pipe came from inside the process); its numbers are not a "
                "measurement")
    if stopped_at != asked_at:
        where = f"after cycle {stopped_at}" if stopped_at is not None else "not at all"
        return (f"the harness told the host to stop after cycle {asked_at}; it stopped {where} "
                "(the harness's answer was taken or a forged one read); its numbers are not a "
                "measurement")
    if not warmup < stopped_at <= warmup + cycles:
        return (f"the host stopped after cycle {stopped_at}, outside the measured window "
                f"({warmup + 1}..{warmup + cycles})")
    return None
