"""The readiness audit as a terminal table and as Markdown (tools/audit/survey.py
gives the data: rows, counts; this file only renders it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from .numbers import fmt_bytes, fmt_number

if TYPE_CHECKING:
    from ..tools.audit.survey import Audit, ModuleRow


def markdown_summary(audit: Audit) -> str:
    """The headline and counts, then one line per module that is not ready or leaks."""
    c = audit.counts()
    version = audit.python["version"]
    leaking = [r for r in audit.rows if r.leaks]
    leak_names = ", ".join(f"`{r.module}` ({'/'.join(r.leaks)})" for r in leaking) or "none"
    lines = [f"## Extension module readiness: Python {version}", ""]
    if c["ready"] is None:
        lines.append(f"Python {version} has no per-interpreter GIL (3.12+): "
                     f"{c['multi_phase']} of {c['extension_modules']} extension modules use "
                     f"multi-phase init; these {c['leaking']} leak per cycle: {leak_names}.")
    else:
        lines.append(f"**{c['ready']} of {c['extension_modules']} extension modules are ready for "
                     f"per-interpreter GIL; these {c['leaking']} leak per cycle:** {leak_names}.")
    lines += ["", "| | modules |", "|---|---:|"]
    labels = {"extension_modules": "extension modules", "multi_phase": "multi-phase init",
              "single_phase": "single-phase init",
              "declare_per_interpreter_gil": "declare Py_MOD_PER_INTERPRETER_GIL_SUPPORTED",
              "load_isolated": "load in an isolated subinterpreter",
              "ready": "ready (multi-phase, load isolated, no crash)",
              "leaking": "leak per cycle (any mode)", "crashing": "crash (any mode or the probe)"}
    lines += [f"| {labels[k]} | {v} |" for k, v in c.items() if v is not None]
    not_ready = [r for r in audit.rows if r.ready is False]
    if not_ready:
        lines += ["", "Not ready:", ""]
        for r in not_ready:
            why = r.refusal("subinterpreter") or r.probe_problem or (
                "; ".join(r.crashes()) or f"{r.init} init")
            lines.append(f"- `{r.module}` ({r.init}, slot: {r.multiple_interpreters or '-'}): "
                         f"{why.replace('|', '/')}")
    if audit.builtins:
        lines += ["", f"Not audited: {len(audit.builtins)} built-in modules compiled into the "
                      f"interpreter (pass them with --module to audit them)."]
    return "\n".join(lines) + "\n"


def _mark(value: bool | None) -> Text:
    if value is None:
        return Text("-", style="dim")
    return Text("yes", style="green") if value else Text("no", style="bold red")


def _leak_cell(leak: dict | None) -> Text:
    if leak is None:
        return Text("-", style="dim")
    text = f"{fmt_number(leak['blocks'])} blk {fmt_bytes(leak['bytes'])}"
    return Text(text, style="bold red" if leak["verdict"] == "leak" else "")


def audit_table(audit: Audit) -> Table:
    table = Table(title=f"extension module readiness, Python {audit.python['version']}: slot = "
                        f"Py_mod_multiple_interpreters, leak = excess per cycle over the pass "
                        f"control after Py_EndInterpreter / Py_FinalizeEx", title_justify="left")
    for name in ("module", "init", "slot", "ready", "isolated", "legacy",
                 "leak/End", "leak/Finalize", "crash", "note"):
        wraps = name in ("note", "crash")
        # fold, never cut: a piped table must keep every name and reason whole
        table.add_column(name, no_wrap=not wraps, overflow="fold", min_width=16 if wraps else None)

    def key(row: ModuleRow):
        return (row.ready is not False, not row.leaks, row.module)

    for row in sorted(audit.rows, key=key):
        note = "" if row.crashes() else (
            row.refusal("subinterpreter") or row.probe_problem
            or row.refusal("legacy-subinterpreter") or row.refusal("finalize") or "")
        dist = row.distribution
        table.add_row(
            row.module + (f" ({dist['name']} {dist['version']})" if dist else ""), row.init, row.multiple_interpreters or "-", _mark(row.ready),
            _mark(row.loads("subinterpreter")), _mark(row.loads("legacy-subinterpreter")),
            _leak_cell(row.end_interpreter_leak()), _leak_cell(row.leak("finalize")),
            Text(row.crash_summary(), style="bold magenta"),
            Text(_short(note)),
        )
    return table


def _short(note: str) -> str:
    """First line, without the verdict and exception type CPython's message repeats."""
    first = note.splitlines()[0] if note else ""
    for prefix in ("unsupported: ", "ImportError: "):
        first = first.removeprefix(prefix)
    return first
