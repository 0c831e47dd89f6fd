"""`leak-harness audit`: which extension modules are ready for a per-interpreter GIL."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..tools.audit.survey import SCOPES, run_audit
from ..engine import Engine
from ..settings import RunSettings
from ..report.audit import audit_table, markdown_summary
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
    p.add_argument("--site", action="store_true",
                   help="run the target's `site` in every cycle (for .pth import hooks); by "
                        "default the hosts start from the target's sys.path, computed once")
    p.add_argument("--json", action="store_true", help="print the audit as JSON")
    p.add_argument("--markdown", metavar="FILE",
                   help="write the Markdown summary to FILE ('-': print it instead of the table)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    console = make_console()
    base = RunSettings(cycles=args.cycles, warmup=args.warmup, timeout=args.timeout,
                       site=args.site)
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
