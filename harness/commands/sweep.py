"""`leak-harness sweep`: every stdlib module (or --module ...) in each mode."""

from __future__ import annotations

import argparse
import os

from rich.markup import escape

from ..host import interrupts
from ..cases.catalog import cases_for_target, select_cases
from ..cases.model import check_module_name, import_case
from ..cases.packages import package_import_cases
from ..errors import HarnessError
from ..engine import Engine
from ..host.modes import DEFAULT_SWEEP_MODES, MODES
from .common import (add_control_option, add_explain_option, add_run_options, explaining, make_console,
                     settings_from_args, with_control)

HELP = "import every stdlib module (--scope packages: installed ones; --package DIST) in each mode"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help=HELP)
    p.add_argument("--python", action="append", default=[], help="target (repeatable)")
    p.add_argument("--mode", action="append", default=[], choices=list(MODES),
                   help=f"repeatable; default: {' and '.join(DEFAULT_SWEEP_MODES)}")
    p.add_argument("--module", action="append", default=[], help="only these modules")
    p.add_argument("--scope", default=None, choices=("stdlib", "packages", "all"),
                   help="stdlib modules (default), the target environment's installed "
                        "packages (a venv's own), or both")
    p.add_argument("--package", action="append", default=[], metavar="DIST",
                   help="every module of this installed distribution (repeatable; "
                        "instead of --scope)")
    p.add_argument("--catalog", nargs="*", default=None, metavar="NAME",
                   help="the curated cases (harness/data/cases/*.toml) instead of imports: "
                        "all of them, or those NAMEs; a case whose `requires` the target "
                        "does not meet is skipped with its reason")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", help="append JSON lines here as results arrive")
    p.add_argument("--shard", help="run only shard i of n (i/n)")
    p.add_argument("--durations", action="append", default=[], metavar="RESULTS",
                   help="an earlier run's results (repeatable): --shard splits by their measured cost")
    add_run_options(p, sweep=True)
    add_control_option(p)
    add_explain_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..tools.sweep import append_path

    console = make_console()
    if args.jobs < 1:
        raise HarnessError(f"--jobs must be at least 1 (got {args.jobs})")
    for name in args.module:
        check_module_name(name)
    if args.catalog is not None and (args.module or args.package or args.scope):
        raise HarnessError("--catalog runs the curated cases: give it no --module, --package or --scope")
    # each selector alone says what is swept; together one was dropped
    # without a word (--package msgpack --module json swept json: green CI,
    # msgpack never run)
    if args.module and args.package:
        raise HarnessError("give --module or --package, not both: --module names the modules, "
                           "--package takes a distribution's")
    if args.scope and (args.module or args.package):
        raise HarnessError(f"--scope {args.scope} sweeps a whole scope: give it no "
                           f"{'--module' if args.module else '--package'}")
    args.scope = args.scope or "stdlib"
    modes = args.mode or list(DEFAULT_SWEEP_MODES)
    explaining(None, args)   # a bad --explain is refused before any work
    base = settings_from_args(args, None, modes[0])
    # --out next: a file that cannot be written is found before any work
    out = append_path(args.out)
    try:
        return _sweep(args, console, out, modes, base)
    finally:
        if out:
            out.close()


#: the progress bar's redraws a second on a terminal: rich's default, 10, cost
#: 1.8% of a core in the harness process (0.8% with nothing shown)
PROGRESS_REFRESHES_PER_S = 2


def sweep_progress(console):
    """The sweep's progress bar.  Redrawn by itself only on a terminal: elsewhere
    (a pipe, a file, the nightly job) it shows nothing, and rich would still
    build it ten times a second (0.8% of a core measured, about 2 s of CPU in
    a stdlib sweep, 1% of the harness's whole overhead over the bare hosts)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("{task.description}"),
                    console=console, transient=True, auto_refresh=console.is_terminal,
                    refresh_per_second=PROGRESS_REFRESHES_PER_S)


def _sweep(args: argparse.Namespace, console, out, modes: list[str], base) -> int:
    from ..report.terminal import control_table, crash_groups_table, sweep_table, totals_line
    from ..tools.shards import durations_from
    from ..tools.sweep import parse_shard, plan, run_sweep

    for note in (out.notes if out else ()):
        console.print(f"[yellow]note[/]: {escape(note)}", highlight=False)
    pythons = args.python or [None]
    shard = parse_shard(args.shard)
    skipped_modules: dict[str, str] = {}
    skipped_cases: dict[str, None] = {}   # once each, though asked per mode

    catalog = select_cases(args.catalog) if args.catalog is not None else None

    def cases_for(target):
        if catalog is not None:
            cases, unfit = cases_for_target(catalog, target)
            skipped_cases.update(dict.fromkeys(f"{name} on Python {target.label}: {why}"
                                               for name, why in unfit.items()))
            return [with_control(case, args) for case in cases]
        if args.module:
            return [with_control(import_case(m), args) for m in args.module]
        cases, skipped = package_import_cases(target, args.scope, args.package)
        skipped_modules.update(skipped)
        return [with_control(case, args) for case in cases]

    base = settings_from_args(args, None, modes[0])
    durations = durations_from(args.durations) if args.durations else None
    jobs, skipped = plan(cases_for, pythons, modes, base, shard, durations)
    for line in [*skipped, *skipped_cases]:
        console.print(f"[yellow]skipped[/] {escape(line)}", highlight=False)
    engine = explaining(Engine(), args)
    with sweep_progress(console) as progress:
        task = progress.add_task("", total=len(jobs))

        def advance(result):
            progress.update(task, advance=1, description=escape(
                f"{result.module or result.case} [{result.mode}] {result.verdict}"))

        outcome = run_sweep(jobs, engine, args.jobs, out=out, on_result=advance)
    console.print(sweep_table(outcome.results))
    console.print(control_table(outcome.controls))
    crashes = crash_groups_table(outcome.results)
    if crashes is not None:
        console.print(crashes)
    if skipped_modules and not args.module and catalog is None:
        console.print(f"not swept ({len(skipped_modules)}): " + ", ".join(
            f"{name} ({why})" for name, why in sorted(skipped_modules.items())), highlight=False)
    console.print(totals_line(outcome.results))
    if args.out:
        console.print(f"results: {args.out}")
    problem = out.problem() if out else None
    if problem:
        console.print(f"[red]error[/]: {escape(problem)}", highlight=False)
    if outcome.interrupted:
        console.print(f"[red]interrupted[/] ({interrupts.received_signal_name()}): partial results kept")
        return interrupts.exit_status()
    if problem:
        return 2
    return 1 if any(r.verdict == "leak" for r in outcome.results) else 0
