"""Per-cycle deltas as text: `excess per cycle: [2, 2, 2, 2, …]` (the run summary, a failing test)."""

from __future__ import annotations

from typing import Sequence

from ..result import Result

#: cycles shown before the list is cut with its count
SHOWN = 12


def series_text(values: Sequence[float], shown: int = SHOWN) -> str:
    """`[2, 2, 2, …]` (n=20, sum=40): regrtest's list, cut to fit a line."""
    cells = [f"{v:g}" if isinstance(v, float) else str(v) for v in values[:shown]]
    more = ", …" if len(values) > shown else ""
    total = sum(values)
    return f"[{', '.join(cells)}{more}] (n={len(values)}, sum={total:g})"


def excess_per_cycle(result: Result, key: str = "blocks") -> str:
    """The excess row of `result`'s deltas as text ("" when the engine kept none)."""
    entry = (result.evidence.get("per_cycle_deltas") or {}).get(key)
    return series_text(entry["excess"]) if entry and entry.get("excess") else ""


def delta_lines(result: Result) -> list[str]:
    """case / control / excess per cycle for blocks and bytes, and what CPython keeps (interned)."""
    lines: list[str] = []
    for key, entry in (result.evidence.get("per_cycle_deltas") or {}).items():
        lines.append(f"{key} per cycle after the warm-up:")
        for row in ("case", "control", "excess", "interned"):
            if entry.get(row) is not None:
                label = "interned (CPython keeps)" if row == "interned" else row
                lines.append(f"  {label:24} {series_text(entry[row])}")
    return lines
