"""`leak-harness` command line: parse, call the engine, render. Nothing else.

Exit codes (the contract): 0 clean/unsupported, 1 leak, 2 usage or
environment error, 3 crash/timeout/error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.console import Console

from .cases import Case, code_case, import_case, stdlib_import_cases
from .engine import BACKENDS, Engine, RunSettings
from .errors import CaseError, HarnessError
from .modes import DEFAULT_SWEEP_MODES, MODES

EXIT_USAGE = 2


def make_console() -> Console:
    """A terminal gets its own width; a pipe or log file gets room for the tables."""
    return Console() if sys.stdout.isatty() else Console(width=160)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 already; keep one line
        self.print_usage(sys.stderr)
        print(f"leak-harness: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _add_run_options(p: argparse.ArgumentParser, *, sweep: bool = False) -> None:
    if not sweep:
        p.add_argument("--python", default=None, help="target interpreter (default: this one)")
        p.add_argument("--mode", default="finalize", choices=list(MODES))
    p.add_argument("--backend", default="counters", choices=list(BACKENDS))
    p.add_argument("--cycles", type=int, default=20, help="measured cycles (default 20)")
    p.add_argument("--warmup", type=int, default=5, help="cycles discarded first (default 5)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds before a host is killed, per case and mode (default 120)")
    p.add_argument("--site", action="store_true", help="import site in the target (off by default)")
    p.add_argument("-X", dest="xoptions", action="append", default=[], metavar="OPT",
                   help="an -X option for the target interpreter (repeatable)")
    p.add_argument("--host", default="auto", choices=("auto", "c", "python"),
                   help="C host (default) or the pure-Python one (subinterpreter mode only)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="leak-harness", description=(
        "Does importing and using a module leave memory behind when the interpreter is "
        "finalized or a subinterpreter ends?"))
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run one case in one mode and judge it")
    run.add_argument("case", nargs="?", help="a .py file, or a module name to import")
    run.add_argument("-c", dest="code", help="Python code to run each cycle")
    run.add_argument("--module", help="the module the case targets (for reports)")
    _add_run_options(run)
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")

    sweep = sub.add_parser("sweep", help="import every stdlib module (or --module ...) in each mode")
    sweep.add_argument("--python", action="append", default=[], help="target (repeatable)")
    sweep.add_argument("--mode", action="append", default=[], choices=list(MODES),
                       help=f"repeatable; default: {' and '.join(DEFAULT_SWEEP_MODES)}")
    sweep.add_argument("--module", action="append", default=[], help="only these modules")
    sweep.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    sweep.add_argument("--out", help="append JSON lines here as results arrive")
    sweep.add_argument("--shard", help="run only shard i of n (i/n)")
    _add_run_options(sweep, sweep=True)

    doctor = sub.add_parser("doctor", help="what works on this machine, what to install")
    doctor.add_argument("--python", action="append", default=[], help="check only these")
    return parser


def _settings(args: argparse.Namespace, python: str | None, mode: str) -> RunSettings:
    return RunSettings(
        python=python, mode=mode, backend=args.backend, cycles=args.cycles, warmup=args.warmup,
        timeout=args.timeout, site=args.site, xoptions=tuple(args.xoptions), host=args.host,
    )


def _case_from_args(args: argparse.Namespace) -> Case:
    if args.code is not None and args.case:
        raise CaseError("give either CASE or -c CODE, not both")
    if args.code is not None:
        return code_case(args.code, module=args.module)
    if not args.case:
        raise CaseError("nothing to run: give CASE (a .py file or a module name) or -c CODE")
    path = Path(args.case)
    if path.suffix == ".py":
        if not path.is_file():
            raise CaseError(f"case file {path} does not exist")
        return Case(name=path.stem, code=path.read_text(), module=args.module, source=str(path))
    if args.case.replace(".", "").replace("_", "").isalnum():
        case = import_case(args.case)
        return case if not args.module else Case(case.name, case.code, args.module)
    raise CaseError(f"CASE {args.case!r} is neither a .py file nor a module name")


def cmd_run(args: argparse.Namespace) -> int:
    case = _case_from_args(args)
    result = Engine().run(case, _settings(args, args.python, args.mode))
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        from .report.terminal import render_result
        render_result(result, make_console())
    return result.exit_code


def cmd_sweep(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .report.terminal import control_table, sweep_table, totals_line
    from .sweep import append_path, parse_shard, plan, run_sweep

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

    base = _settings(args, None, modes[0])
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


def cmd_doctor(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .doctor import run_checks

    checks = run_checks(args.python or None)
    table = Table(title="leak-harness doctor", title_justify="left")
    for col in ("check", "status", "detail", "to fix"):
        table.add_column(col, overflow="fold")
    for c in checks:
        table.add_row(c.name, "[green]ok[/]" if c.ok else "[red]missing[/]", c.detail, c.fix)
    make_console().print(table)
    return 0


COMMANDS = {"run": cmd_run, "sweep": cmd_sweep, "doctor": cmd_doctor}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except HarnessError as exc:
        print(f"leak-harness: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("leak-harness: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
