"""`leak-harness doctor`: what works here, what to install."""

from __future__ import annotations

import argparse

from .common import make_console

HELP = "what works on this machine, what to install"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help=HELP)
    p.add_argument("--python", action="append", default=[], help="check only these")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..tools.doctor import run_checks

    checks = run_checks(args.python or None)
    table = Table(title="leak-harness doctor", title_justify="left")
    for col in ("check", "status", "detail", "to fix"):
        table.add_column(col, overflow="fold")
    for c in checks:
        table.add_row(c.name, "[green]ok[/]" if c.ok else "[red]missing[/]", c.detail, c.fix)
    make_console().print(table)
    return 0
