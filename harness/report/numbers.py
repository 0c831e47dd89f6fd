"""Numbers for people: thousands separators, kB/MB, never scientific notation.

Every renderer and message formats through here, and nothing here imports
rich, so the Markdown, HTML and JUnit reports (and verdict messages) do not
load the terminal library.
"""

from __future__ import annotations


def fmt_number(value: float | None, unit: str = "") -> str:
    """+1,487 / +0.33 / -: signed, separated, two decimals only below 100."""
    if value is None:
        return "-"
    if abs(value) >= 100 or value == int(value):
        text = f"{value:+,.0f}"
    else:
        text = f"{value:+,.2f}"
    return text + unit


def fmt_bytes(value: float | None) -> str:
    """+842 B / +22.8 kB / +3.3 MB (decimal units, as `ls -h --si` and pip print)."""
    if value is None:
        return "-"
    sign = "+" if value >= 0 else "-"
    size = abs(value)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{sign}{size:,.0f} {unit}" if unit == "B" else f"{sign}{size:,.1f} {unit}"
        size /= 1000
    return "-"


def fmt_count(value: float | None) -> str:
    """1,068 / 0.33: unsigned, for counts that are not growth."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:,.2f}"
