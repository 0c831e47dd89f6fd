"""`leak-harness audit`: which extension modules are ready for a per-interpreter GIL."""

from __future__ import annotations

import argparse
import json
import os
import sys

from rich.table import Table
from rich.text import Text

from ..tools.audit.survey import SCOPES, Audit, ModuleRow, markdown_summary, run_audit
from ..engine import Engine
from ..settings import RunSettings
from ..report.terminal import fmt_bytes, fmt_number
from .common import make_console

HELP = "readiness of extension modules for one interpreter per thread (init kind, loads, leaks)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help=HELP)
    p.add_argument("--python", action="append", default=[], help="target (repeatable; default: this one)")
    p.add_argument("--module", action="append", default=[],
                   help="audit only these modules (repeatable); default: every extension module")
    p.add_argument("--scope", default="all", choices=SCOPES,
                   help="without --module: stdlib, installed packages, or both (default)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--cycles", type=int, default=20, help="measured cycles per mode (default 20)")
    p.add_argument("--warmup", type=int, default=5, help="cycles discarded first (default 5)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per host run (default 120)")
    p.add_argument("--json", action="store_true", help="print the audit as JSON")
    p.add_argument("--markdown", metavar="FILE",
                   help="write the Markdown summary to FILE ('-': print it instead of the table)")
    p.set_defaults(func=run)


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
        table.add_column(name, no_wrap=not wraps, overflow="fold" if wraps else "ellipsis",
                         min_width=16 if wraps else None)

    def key(row: ModuleRow):
        return (row.ready is not False, not row.leaks, row.module)

    for row in sorted(audit.rows, key=key):
        note = "" if row.crashes() else (
            row.refusal("subinterpreter") or row.probe_problem
            or row.refusal("legacy-subinterpreter") or row.refusal("finalize") or "")
        table.add_row(
            row.module, row.init, row.multiple_interpreters or "-", _mark(row.ready),
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
    return first[:100]


def run(args: argparse.Namespace) -> int:
    console = make_console()
    base = RunSettings(cycles=args.cycles, warmup=args.warmup, timeout=args.timeout)
    engine = Engine()
    audits = []
    with console.status("audit") as status:
        for python in args.python or [None]:
            audits.append(run_audit(python, base, modules=args.module or None, scope=args.scope,
                                    jobs=args.jobs, engine=engine,
                                    on_step=lambda text: status.update(f"audit: {text}")))
    markdown = "\n".join(markdown_summary(a) for a in audits)
    if args.markdown and args.markdown != "-":
        with open(args.markdown, "w", encoding="utf-8") as out:
            out.write(markdown)
    if args.json:
        print(json.dumps([a.to_json() for a in audits] if len(audits) > 1 else audits[0].to_json(),
                         indent=1))
    elif args.markdown == "-":
        sys.stdout.write(markdown)
    else:
        for audit in audits:
            console.print(audit_table(audit))
            console.print(markdown_summary(audit), markup=False, highlight=False)
            if audit.skipped:
                console.print("not audited: " + ", ".join(sorted(audit.skipped)), highlight=False)
    rows = [r for a in audits for r in a.rows]
    if any(r.crashes() for r in rows):
        return 3
    return 1 if any(r.leaks for r in rows) else 0
