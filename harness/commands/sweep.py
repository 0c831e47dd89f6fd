"""`leak-harness sweep`: every stdlib module (or --module ...) in each mode."""

from __future__ import annotations

import argparse
import os

from ..cases.model import import_case, stdlib_import_cases
from ..engine import Engine
from ..host.modes import DEFAULT_SWEEP_MODES, MODES
from .common import add_run_options, make_console, settings_from_args

HELP = "import every stdlib module (or --module ...) in each mode"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help=HELP)
    p.add_argument("--python", action="append", default=[], help="target (repeatable)")
    p.add_argument("--mode", action="append", default=[], choices=list(MODES),
                   help=f"repeatable; default: {' and '.join(DEFAULT_SWEEP_MODES)}")
    p.add_argument("--module", action="append", default=[], help="only these modules")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", help="append JSON lines here as results arrive")
    p.add_argument("--shard", help="run only shard i of n (i/n)")
    add_run_options(p, sweep=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..report.terminal import control_table, sweep_table, totals_line
    from ..tools.sweep import append_path, parse_shard, plan, run_sweep

    console = make_console()
    pythons = args.python or [None]
    modes = args.mode or list(DEFAULT_SWEEP_MODES)
    shard = parse_shard(args.shard)
    skipped_modules: dict[str, str] = {}

    def cases_for(target):
        if args.module:
            return [import_case(m) for m in args.module]
        cases, skipped = stdlib_import_cases(target)
        skipped_modules.update(skipped)
        return cases

    base = settings_from_args(args, None, modes[0])
    jobs, skipped = plan(cases_for, pythons, modes, base, shard)
    for line in skipped:
        console.print(f"[yellow]skipped[/] {line}", highlight=False)
    out = append_path(args.out)
    engine = Engine()
    try:
        with Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TextColumn("{task.description}"),
                      console=console, transient=True) as progress:
            task = progress.add_task("", total=len(jobs))

            def advance(result):
                progress.update(task, advance=1,
                                description=f"{result.module or result.case} [{result.mode}] {result.verdict}")

            outcome = run_sweep(jobs, engine, args.jobs, out=out, on_result=advance)
    finally:
        if out:
            out.close()
    console.print(sweep_table(outcome.results))
    console.print(control_table(outcome.controls))
    if skipped_modules and not args.module:
        console.print(f"not swept ({len(skipped_modules)}): " + ", ".join(
            f"{name} ({why})" for name, why in sorted(skipped_modules.items())), highlight=False)
    console.print(totals_line(outcome.results))
    if args.out:
        console.print(f"results: {args.out}")
    if outcome.interrupted:
        console.print("[red]interrupted[/]: partial results kept")
        return 130
    return 1 if any(r.verdict == "leak" for r in outcome.results) else 0
