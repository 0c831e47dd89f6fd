"""Per-cycle deltas as text: `excess per cycle: [2, 2, 2, 2, …]` (the run summary, a failing test)."""

from __future__ import annotations

from typing import Sequence

from ..result import Result

#: cycles shown before the list is cut with its count
SHOWN = 12


def series_text(values: Sequence[float], shown: int = SHOWN) -> str:
    """`[2, 2, 2, …]` (n=20, sum=40): regrtest's list, cut to fit a line."""
    cells = [_plain(v) for v in values[:shown]]
    more = ", …" if len(values) > shown else ""
    return f"[{', '.join(cells)}{more}] (n={len(values)}, sum={_plain(sum(values))})"


def _plain(value: float) -> str:
    """Whole numbers as integers, others with up to 3 decimals: never 1.07554e+06."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


def excess_per_cycle(result: Result, key: str = "blocks") -> str:
    """The excess row of `result`'s deltas as text ("" when the engine kept none)."""
    entry = (result.evidence.get("per_cycle_deltas") or {}).get(key)
    return series_text(entry["excess"]) if entry and entry.get("excess") else ""


def delta_lines(result: Result) -> list[str]:
    """Blocks of the case, the control and the excess per cycle (and what CPython keeps:
    interned strings, discounted by the verdict, when any); the bytes' excess."""
    found = result.evidence.get("per_cycle_deltas") or {}
    lines: list[str] = []
    blocks, size = found.get("blocks"), found.get("bytes")
    if blocks:
        lines += ["per cycle after the warm-up, blocks:",
                  f"  case     {series_text(blocks['case'])}",
                  f"  control  {series_text(blocks['control'])}",
                  f"  excess per cycle: {series_text(blocks['excess'])}"]
        if any(blocks.get("interned") or ()):
            lines.append(f"  of which interned strings CPython keeps (discounted): "
                         f"{series_text(blocks['interned'])}")
    if size:
        lines.append(f"  bytes excess per cycle: {series_text(size['excess'])}")
    return lines
