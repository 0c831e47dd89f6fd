"""Markdown report: for a CI job summary, a pull-request comment or a chat message.

Every cell that carries a module name or a message is escaped: case names
come from files and messages from tracebacks, and a stray `|` or `<` would
break the table or inject markup into the page that renders it.
"""

from __future__ import annotations

import re
from typing import Any

from ..result import VERDICTS
from ..results.load import ResultSet, python_label
from ..results.summary import (controls_sorted, excess_of, first_line, ranked, row_label,
                      total_counts, verdict_counts, with_verdicts)
from .terminal import fmt_bytes, fmt_number

_CELL_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+!|<>~])")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def cell(text: Any) -> str:
    """One table cell: Markdown and HTML specials backslash-escaped, on one line.

    Control characters (ANSI colour codes in a crash's output) are shown as
    \\xNN rather than written raw into the page.
    """
    flat = " ".join(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text)).split())
    return _CELL_SPECIALS.sub(r"\\\1", flat).replace("&", "&amp;")


def code_block(text: str) -> str:
    """A fenced block whose fence is longer than any backtick run inside."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if m.group() != "\t" else "\t", text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    align = ["---:" if i in right else "---" for i in range(len(header))]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def render_markdown(results: ResultSet, title: str = "leak-harness report") -> str:
    """The whole report as one Markdown document."""
    cases = results.case_lines()
    out = [f"# {cell(title)}", ""]
    totals = total_counts(cases)
    parts = [f"**{totals[v]} {v}**" if v == "leak" and totals[v] else f"{totals[v]} {v}"
             for v in VERDICTS if totals[v]]
    out += [f"{len(cases)} results: " + (", ".join(parts) if parts else "none")
            + f" — from {', '.join(cell(s) for s in results.sources)}", ""]
    for note in results.notes:
        out += [f"> note: {cell(note)}", ""]

    out += ["## Summary", ""]
    rows = [[cell(python), cell(mode)] + [str(counts[v]) for v in VERDICTS] + [str(sum(counts.values()))]
            for python, mode, counts in verdict_counts(cases)]
    rows.append(["**all**", ""] + [str(totals[v]) for v in VERDICTS] + [str(len(cases))])
    out += _table(["python", "mode", *VERDICTS, "total"], rows, set(range(2, len(VERDICTS) + 3)))

    out += ["", "## Per module (excess over the `pass` control, per cycle)", ""]
    judged = ranked(cases)
    if judged:
        rows = [[cell(row_label(line)), cell(python_label(line["python"])), cell(line["mode"]),
                 cell(line["backend"]), "**leak**" if line["verdict"] == "leak" else line["verdict"],
                 fmt_number(excess_of(line, "blocks")), fmt_bytes(excess_of(line, "bytes")),
                 fmt_number(excess_of(line, "refs")),
                 fmt_number((line.get("evidence") or {}).get("interned_strings_per_cycle"))]
                for line in judged]
        out += _table(["module", "python", "mode", "backend", "verdict", "blocks/cycle",
                       "bytes/cycle", "refs/cycle", "interned/cycle"], rows, {5, 6, 7, 8})
    else:
        out.append("No module ran to a verdict.")

    out += ["", "## CPython's own growth per cycle (`pass` control)", ""]
    controls = controls_sorted(results.control_lines())
    if controls:
        rows = [[cell(python_label(c["python"])), cell(c["mode"]), cell(c["backend"]),
                 fmt_number((c.get("per_cycle") or {}).get("blocks")),
                 fmt_bytes((c.get("per_cycle") or {}).get("bytes")),
                 fmt_number((c.get("per_cycle") or {}).get("refs")),
                 fmt_bytes((c.get("per_cycle") or {}).get("rss"))] for c in controls]
        out += _table(["python", "mode", "backend", "blocks/cycle", "bytes/cycle", "refs/cycle",
                       "rss/cycle"], rows, {3, 4, 5, 6})
    else:
        out.append("No control in these results.")

    for heading, verdicts in (("Crashes, timeouts and errors", ("crash", "timeout", "error")),
                              ("Unsupported", ("unsupported",))):
        chosen = with_verdicts(cases, verdicts)
        if not chosen:
            continue
        out += ["", f"## {heading} ({len(chosen)})", ""]
        for line in chosen:
            out.append(f"- **{cell(row_label(line))}** — {cell(python_label(line['python']))}, "
                       f"{cell(line['mode'])}, {cell(line['backend'])}: {line['verdict']} — "
                       f"{cell(first_line(line.get('message')))}")
            message = (line.get("message") or "").strip()
            if line["verdict"] != "unsupported" and "\n" in message:
                out += ["", "  <details><summary>full message</summary>", "",
                        *("  " + m for m in code_block(message).splitlines()), "", "  </details>"]
    return "\n".join(out) + "\n"
