"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import sys

from dataclasses import replace

from rich.console import Console

from ..backends import backend_names
from ..cases.model import Case, check_control_code
from ..settings import BackendOptions, RunSettings
from ..errors import HarnessError
from ..host.modes import MODES
from ..tools.explain import EXPLAIN_BACKENDS


def make_console() -> Console:
    """A terminal gets its own width; a pipe or log file gets room for the tables."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def add_run_options(p: argparse.ArgumentParser, *, sweep: bool = False) -> None:
    """--python/--mode (single, unless sweep), --backend, --cycles, --warmup, ..."""
    if not sweep:
        p.add_argument("--python", default=None, help="target interpreter (default: this one)")
        p.add_argument("--mode", default="finalize", choices=list(MODES))
    p.add_argument("--backend", default="counters", choices=backend_names())
    p.add_argument("--cycles", type=int, default=None,
                   help=f"measured cycles at most (default {DEFAULT_CYCLES}, or the case file's "
                        "`cycles`): a case whose `clean` is settled earlier stops there")
    p.add_argument("--min-cycles", type=int, default=None, metavar="N",
                   help="adaptive cycles: never stop before N measured cycles (default: the "
                        "fewest that can settle a verdict, 7 of 20)")
    p.add_argument("--fixed-cycles", action="store_true",
                   help="run every case for all --cycles (no adaptive stop)")
    p.add_argument("--warmup", type=int, default=5, help="cycles discarded first (default 5)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds before a host is killed, per case and mode (default 120)")
    p.add_argument("--site", action="store_true", help="import site in the target (off by default)")
    p.add_argument("-X", dest="xoptions", action="append", default=[], metavar="OPT",
                   help="an -X option for the target interpreter (repeatable)")
    p.add_argument("--host", default="auto", choices=("auto", "c", "python"),
                   help="C host (default) or the pure-Python one (subinterpreter mode only)")
    p.add_argument("--suppressions", action="append", default=[], metavar="FILE",
                   help="an extra valgrind suppression file (repeatable; --backend valgrind)")
    p.add_argument("--keep-capture", default=None, metavar="DIR",
                   help="--backend memray: keep the case's capture file in DIR (for "
                        "`memray flamegraph --leaks`); the result names it")
    p.add_argument("--trace-depth", type=int, default=10, metavar="N",
                   help="--backend tracemalloc: frames kept per traceback (default 10)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="parallel mode: N threads, each running its own isolated "
                        "subinterpreters (default: the CPU count)")


DEFAULT_CYCLES = 20


def add_control_option(p: argparse.ArgumentParser) -> None:
    """--control CODE: what the control runs instead of `pass`."""
    p.add_argument("--control", default=None, metavar="CODE",
                   help="the control runs CODE instead of `pass` (same Python, mode, backend, "
                        "cycles), so the verdict is on what the case adds beyond it, e.g. "
                        "--control 'import ujson' to judge the calls, not the import; "
                        "beats a case file's `control`")


def add_explain_option(p: argparse.ArgumentParser) -> None:
    """--explain BACKEND: each leak is rerun with a tracing backend for its sites."""
    p.add_argument("--explain", default=None, choices=EXPLAIN_BACKENDS,
                   help="counters (or --backend) decide; each leak is then rerun briefly with "
                        "this tracing backend and its sites join the result "
                        "(evidence.explained_by); auto: the counting host's own callers of malloc and "
                        "PyMem when they account for the leak, else valgrind for finalize, memray "
                        "(else tracemalloc, else valgrind) for the subinterpreter modes")


def explaining(engine, args: argparse.Namespace):
    """The engine, or one that explains each leak when --explain was given."""
    wanted = getattr(args, "explain", None)
    if wanted is None:
        return engine
    from ..tools.explain import ExplainingEngine, check_explain

    check_explain(wanted, args.backend)
    return ExplainingEngine(engine, wanted)


def with_control(case: Case, args: argparse.Namespace) -> Case:
    """The case with --control as its control, checked to compile; unchanged without it."""
    code = getattr(args, "control", None)
    if code is None:
        return case
    check_control_code(code, "--control")
    return replace(case, control=code)


def settings_from_args(args: argparse.Namespace, python: str | None, mode: str,
                       case_cycles: int | None = None) -> RunSettings:
    """RunSettings from the common options; --cycles beats a case's own `cycles`."""
    threads = getattr(args, "threads", None)
    modes = args.mode if isinstance(getattr(args, "mode", None), list) else [mode]
    if threads is not None and not any(MODES[m].threaded for m in modes if m in MODES):
        raise HarnessError("--threads applies to --mode parallel only")
    return RunSettings(
        python=python, mode=mode, backend=args.backend,
        cycles=args.cycles if args.cycles is not None else (case_cycles or DEFAULT_CYCLES),
        warmup=args.warmup,
        timeout=args.timeout, site=args.site, xoptions=tuple(args.xoptions), host=args.host,
        threads=threads, fixed_cycles=getattr(args, "fixed_cycles", False),
        min_cycles=getattr(args, "min_cycles", None), backend_options=BackendOptions(
            suppressions=tuple(getattr(args, "suppressions", None) or ()),
            keep_capture=getattr(args, "keep_capture", None),
            trace_depth=getattr(args, "trace_depth", 10)),
    )
