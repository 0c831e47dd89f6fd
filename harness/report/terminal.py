"""Rich rendering of results for people at a terminal. Never used for --json."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..result import Result
from .deltas import delta_lines
from .numbers import fmt_bytes, fmt_number  # noqa: F401  (re-exported for old imports)

VERDICT_STYLE = {
    "leak": "bold red", "clean": "green", "unsupported": "yellow",
    "crash": "bold magenta", "timeout": "magenta", "error": "red",
}


def verdict_text(verdict: str) -> Text:
    return Text(verdict, style=VERDICT_STYLE.get(verdict, ""))


def _cycles_text(result: Result) -> str:
    """'20 cycles', or '7 of 20 cycles (settled)' for a case adaptive cycles stopped early."""
    stop = result.cycle_stop or {}
    if stop.get("stopped_early"):
        return f"{result.cycles} of {stop.get('max_cycles')} cycles (settled)"
    return f"{result.cycles} cycles"


def render_result(result: Result, console: Console) -> None:
    """The `run` summary: what ran, the verdict, the growth table, the message."""
    py = result.python
    head = Text.assemble(
        (result.case, "bold"), f"  ({result.module or 'no module'})  ",
        f"Python {py['version']}{' debug' if py.get('debug') else ''}  mode {result.mode}  "
        f"backend {result.backend}  host {result.host}  "
        f"{result.warmup} warm-up + {_cycles_text(result)}   verdict: ",
        verdict_text(result.verdict),
    )
    console.print(head)
    if result.per_cycle is not None:
        table = Table(title="growth per cycle", title_justify="left")
        table.add_column("counter")
        table.add_column("case", justify="right")
        code = (result.control or {}).get("code") or "pass"
        chosen = code != "pass"
        table.add_column(f"control ({_shorten(code)})", justify="right")
        table.add_column("excess", justify="right")
        table.add_column("tolerance", justify="right")
        if chosen:   # CPython's own row beside the chosen control
            table.add_column("pass control", justify="right")
        control = (result.control or {}).get("per_cycle", {})
        passed = (result.control or {}).get("pass_per_cycle") or {}
        for key in ("blocks", "bytes", "refs", "rss", "native_blocks", "native_bytes",
                    "raw_blocks", "raw_bytes", "heap_in_use_bytes", "fds"):
            if key.startswith(("native_", "raw_")) and result.per_cycle.get(key) is None:
                continue  # a host without native counting (valgrind, memray), or no RAW count
            in_bytes = key in ("bytes", "rss", "native_bytes", "raw_bytes", "heap_in_use_bytes")
            show = fmt_bytes if in_bytes else fmt_number
            table.add_row(
                key, show(result.per_cycle.get(key)), show(control.get(key)),
                show((result.excess or {}).get(key)),
                show(result.tolerance.get(key)) if key in result.tolerance else "",
                *([show(passed.get(key))] if chosen else []),
            )
        console.print(table)
        for line in delta_lines(result):
            console.print(line, markup=False, highlight=False)
    if result.sites:
        console.print(sites_table(result.sites))
    explained = result.evidence.get("explained_by")
    if explained:
        console.print(_explained_line(explained), markup=False, highlight=False)
    for error in getattr(result, "errors", None) or []:
        console.print(Text.assemble(("memcheck error ", "bold red"),
                                    f"{error.get('kind')} x{error.get('count', 1)} in "
                                    f"{error.get('module')}: {error.get('what', '')}"))
    if result.message:
        console.print(result.message, markup=False, highlight=False)


def _explained_line(explained: dict) -> str:
    """Who named the sites of a counters verdict (--explain), or why nobody could."""
    if explained.get("error"):
        return f"not explained ({explained.get('backend') or explained.get('wanted')}): {explained['error']}"
    if explained.get("pymem_sites"):
        return (f"sites by a {explained['backend']} rerun naming PyMem callers "
                f"({explained['warmup']}+{explained['cycles']} cycles, {explained['wall_s']:.1f} s), "
                f"no {explained['instead_of']} run: {explained['why']}")
    if explained.get("instead_of"):
        return (f"sites by the {explained['backend']} run itself, no {explained['instead_of']} run: "
                f"{explained['why']}")
    line = (f"sites by {explained['backend']} ({explained['warmup']}+{explained['cycles']} cycles, "
            f"{explained['wall_s']:.1f} s; {explained['why']}); the verdict is the counters'")
    traced = explained.get("verdict")
    if traced and traced != "leak":
        # msgpack 1.2.4, 3.13.0 finalize: counters +1 block beyond 1,228 interned
        # strings; valgrind's own run was `clean`, its sites CPython's strings
        line += (f"; but {explained['backend']}'s own run judged the case {traced}, so these sites "
                 "are its growth over the control and need not be this leak's")
    return line


def sites_table(sites: list[dict], limit: int = 8) -> Table:
    """Where the growth was allocated, per module, largest first (non-counters backends)."""
    table = Table(title="sites (growth per cycle over the control)", title_justify="left")
    for name, justify in (("module", "left"), ("bytes/cycle", "right"),
                          ("blocks/cycle", "right"), ("at", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for site in sites[:limit]:
        size = site.get("excess_bytes_per_cycle", site.get("bytes_per_cycle"))
        blocks = site.get("excess_blocks_per_cycle", site.get("blocks_per_cycle"))
        at = str(site.get("at") or site.get("where") or _top_frame(site))
        if site.get("kind") == "native" and site.get("function"):
            at = f"{site['function']}  {at}"  # the counting host's caller
        table.add_row(str(site.get("module")), fmt_bytes(size), fmt_number(blocks), at)
    return table


def _top_frame(site: dict) -> str:
    """The innermost frame of the site's biggest stack (memray/tracemalloc sites)."""
    stacks = site.get("top_stacks") or []
    frames = stacks[0].get("frames") if stacks else None
    if not frames:
        return ""
    frame = frames[0]
    if isinstance(frame, dict):
        where = frame.get("where") or frame.get("file") or ""
        function = frame.get("function")
        return f"{function} {where}".strip() if function else str(where)
    return ":".join(str(part) for part in frame if part is not None)


def sweep_table(results: Iterable[Result], title: str = "per-module results") -> Table:
    """Module, python, mode, verdict, excess per cycle; leaks first, biggest first."""
    rows = sorted(
        results,
        key=lambda r: (r.verdict != "leak", -((r.excess or {}).get("bytes") or 0), r.case),
    )
    table = Table(title=title, title_justify="left")
    for name, justify in (("module", "left"), ("python", "left"), ("mode", "left"),
                          ("verdict", "left"), ("blocks/cycle", "right"),
                          ("bytes/cycle", "right"), ("interned/cycle", "right")):
        table.add_column(name, justify=justify, no_wrap=True, overflow="fold")
    # the note wraps rather than being cut: piped output must keep the reason
    table.add_column("note", overflow="fold", min_width=20)
    for r in rows:
        excess = r.excess or {}
        dist = r.distribution
        table.add_row(
            (r.module or r.case) + (f" ({dist['name']} {dist['version']})" if dist else ""),
            r.python["version"], r.mode, verdict_text(r.verdict),
            fmt_number(excess.get("blocks")), fmt_bytes(excess.get("bytes")),
            fmt_number(r.evidence.get("interned_strings_per_cycle")),
            Text("" if r.verdict in ("clean", "leak") else note_of(r.message)),
        )
    return table


def note_of(message: str | None) -> str:
    """First line of a message, and its last (the exception itself) when a traceback follows."""
    lines = [ln.strip() for ln in (message or "").strip().splitlines() if ln.strip()]
    hints = [ln for ln in lines if ln.startswith("hint:")]
    lines = [ln for ln in lines if not ln.startswith("hint:")]
    if len(lines) > 1 and lines[-1] != lines[0]:
        lines = [lines[0], lines[-1]]
    return " ".join(lines[:2] + hints)


def control_table(controls: Iterable[Result]) -> Table:
    """CPython's own leak per cycle: the `pass` control of each python and mode."""
    table = Table(title="CPython's own growth per cycle (pass control)", title_justify="left")
    for name in ("python", "mode", "blocks/cycle", "bytes/cycle", "rss/cycle"):
        table.add_column(name, justify="left" if name in ("python", "mode") else "right")
    for r in controls:
        pc = r.per_cycle or {}
        table.add_row(r.python["version"], r.mode, fmt_number(pc.get("blocks")),
                      fmt_bytes(pc.get("bytes")), fmt_bytes(pc.get("rss")))
    return table


def totals_line(results: list[Result]) -> str:
    counts = Counter(r.verdict for r in results)
    parts = [f"{counts[v]} {v}" for v in ("leak", "clean", "unsupported", "crash", "timeout", "error")
             if counts[v]]
    return f"{len(results)} results: " + (", ".join(parts) if parts else "none")


def crash_groups_table(results: Iterable[Result]) -> Table | None:
    """Crashes grouped by signature ('22 crashes, 4 signatures'), None when none crashed."""
    from .crashes import crash_groups, groups_headline, modules_text

    groups = crash_groups([r.to_json() for r in results])
    if not groups:
        return None
    table = Table(title=groups_headline(groups), title_justify="left")
    for name, justify in (("signature", "left"), ("crashes", "right"), ("modules", "left"),
                          ("without hook", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for group in groups:
        table.add_row(group.signature, str(len(group.lines)), modules_text(group.modules),
                      group.without_hook)
    return table
def _shorten(code: str, width: int = 32) -> str:
    """One line of a control's code, cut to fit a column header."""
    line = " ".join(code.split())
    return line if len(line) <= width else line[: width - 1] + "…"
