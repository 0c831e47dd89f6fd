"""The pytest plugin's text: its end-of-session table and a failing check's message.

Pure formatting, kept apart from the plugin so that pytest_plugin.py only
translates pytest's world into engine calls.
"""

from __future__ import annotations

from ..result import Result
from .deltas import excess_per_cycle
from .numbers import fmt_number as _fmt


def summary_lines(rows: list[dict], controls_by_worker: dict[str, int]) -> list[str]:
    """The table: one row per result, growth per cycle over the control (per repetition for
    in-process checks)."""
    header = ("test", "module", "python", "mode", "verdict", "blocks/cycle", "bytes/cycle", "refs/cycle",
              "top site")
    body = [(r["test"], r.get("module") or "", r.get("python", ""), r.get("mode", ""), r["verdict"],
             _fmt(r.get("blocks")), _fmt(r.get("bytes")), _fmt(r.get("refs")), r.get("site") or "")
            for r in sorted(rows, key=lambda r: (r["test"], r.get("mode", "")))]
    widths = [max(len(str(line[i])) for line in (header, *body)) for i in range(len(header))]

    def join(cells: tuple) -> str:
        return "  ".join(str(c).ljust(w) if i < 5 or i == 8 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [join(header), *map(join, body)]
    verdicts: dict[str, int] = {}
    for row in rows:
        verdicts[row["verdict"]] = verdicts.get(row["verdict"], 0) + 1
    lines.append(", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())))
    if any(r.get("mode", "").startswith("in-process") for r in rows):
        lines.append("in-process rows: growth per repetition of the test body (no control)")
    if controls_by_worker:
        per = ", ".join(f"{w}: {n}" for w, n in sorted(controls_by_worker.items()))
        lines.append(f"controls measured (`pass`, and a chosen one such as a test module's import): "
                     f"{sum(controls_by_worker.values())} ({per})")
    return lines


def top_site(result: Result) -> str:
    """The biggest site in one line ("" when the backend names none)."""
    if not result.sites:
        return ""
    site = result.sites[0]
    size = site.get("excess_bytes_per_cycle", site.get("bytes_per_cycle"))
    at = site.get("at") or site.get("where") or ""
    if site.get("function"):
        at = f"{site['function']} {at}".strip()
    return f"{site.get('module')} {_fmt(size)} B/cycle {at}".strip()


def failure_text(result: Result) -> str:
    """What a failing leak check says: verdict, growth over the control, top sites."""
    lines = [f"leak-harness: {result.case} ({result.module or 'no module'}) on Python "
             f"{result.python.get('version')} in mode {result.mode}: {result.verdict}"]
    if result.excess:
        control = (result.control or {}).get("per_cycle", {})
        for key in ("blocks", "bytes", "refs"):
            if result.excess.get(key) is not None:
                lines.append(f"  {key:6} per cycle: case {_fmt((result.per_cycle or {}).get(key))}, "
                             f"control {_fmt(control.get(key))}, excess {_fmt(result.excess[key])}, "
                             f"tolerance {_fmt(result.tolerance.get(key))}")
    excess = excess_per_cycle(result)
    if excess:
        lines.append(f"  excess per cycle (blocks): {excess}")
    for site in result.sites[:5]:
        lines.append(f"  site: {site}")
    if result.verdict == "leak" and not result.sites:
        lines.append("  sites: none from the counters backend; rerun with --leak-backend tracemalloc "
                     "(Python objects) or memray/valgrind (native) to see where")
    if result.message:
        lines.append(result.message)
    return "\n".join(lines)
