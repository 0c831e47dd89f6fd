"""`leak-harness scale`: interpreter cycles per second at 1..N threads."""

from __future__ import annotations

import argparse
import json
import os

from rich.table import Table

from ..cases.model import Case, code_case
from ..tools.scale import ScaleTable, measure_scaling, parse_thread_counts
from .common import make_console

HELP = "throughput of isolated subinterpreters (create, run, end) at 1..N threads"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scale", help=HELP)
    p.add_argument("case", nargs="?", help="a .py file, or a module name to import")
    p.add_argument("-c", dest="code", help="Python code to run in each interpreter")
    p.add_argument("--python", action="append", default=[],
                   help="target, 3.12+ (repeatable; default: this one)")
    p.add_argument("--threads", default=None, metavar="1,2,4",
                   help="thread counts (default: 1 up to the CPU count, doubling)")
    p.add_argument("--cycles", type=int, default=20, help="timed cycles per thread (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed cycles per thread first (default 3)")
    p.add_argument("--repeats", type=int, default=3,
                   help="runs per thread count; the best is kept (default 3)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per host run (default 120)")
    p.add_argument("--counters", action="store_true",
                   help="run the counters host (allocator hook on) instead of the bare one, "
                        "and show the raw growth per interpreter cycle")
    p.add_argument("--plot", metavar="FILE", help="write the plot to FILE.png or FILE.html")
    p.add_argument("--json", action="store_true", help="print the tables as JSON")
    p.set_defaults(func=run)


def _case(args: argparse.Namespace) -> Case:
    from .run import case_from_args
    args.module = None
    return case_from_args(args) if (args.case or args.code is not None) else code_case("pass")


def _default_counts() -> str:
    counts, n = [], 1
    while n < (os.cpu_count() or 1):
        counts.append(n)
        n *= 2
    return ",".join(str(c) for c in [*counts, os.cpu_count() or 1])


def scale_table(table: ScaleTable) -> Table:
    out = Table(title=f"{table.case}  Python {table.python['version']}  "
                      f"{table.host_mode} host, best of {table.repeats} x {table.cycles} cycles/thread",
                title_justify="left")
    for name in ("threads", "cycles/s", "vs 1 thread", "efficiency", "runs (cycles/s)"):
        out.add_column(name, justify="right")
    if table.host_mode == "parallel":
        out.add_column("blocks/interp. cycle", justify="right")
    out.add_column("problem", justify="left")
    for p in table.points:
        ratio, eff = table.ratio(p), table.efficiency(p)
        row = [str(p.threads), "-" if p.cycles_per_s is None else f"{p.cycles_per_s:,.1f}",
               "-" if ratio is None else f"{ratio:.2f}x", "-" if eff is None else f"{eff:.0%}",
               " ".join(f"{r:.1f}" for r in p.rates)]
        if table.host_mode == "parallel":
            row.append("-" if p.blocks_per_cycle is None else f"{p.blocks_per_cycle:+,.0f}")
        out.add_row(*row, p.problem or "")
    return out


def run(args: argparse.Namespace) -> int:
    case = _case(args)
    counts = parse_thread_counts(args.threads or _default_counts())
    console = make_console()
    tables = []
    with console.status("") as status:
        for python in args.python or [None]:
            def progress(threads: int, repeat: int) -> None:
                status.update(f"{case.name}: {threads} thread(s), run {repeat + 1} of {args.repeats}")
            tables.append(measure_scaling(
                case, python, counts, cycles=args.cycles, warmup=args.warmup,
                repeats=args.repeats, timeout_s=args.timeout, hooked=args.counters,
                on_run=progress))
    if args.plot:
        from ..report.scale_plot import write_plot
        write_plot(tables, args.plot)
    if args.json:
        print(json.dumps([t.to_json() for t in tables], indent=1))
    else:
        for table in tables:
            console.print(scale_table(table))
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        if load is not None:
            console.print(f"load average {load:.1f} on {os.cpu_count()} CPUs: rounds wait for their "
                          "slowest thread, so other load lowers the ratios", highlight=False)
        if args.plot:
            console.print(f"plot: {args.plot}")
    return 0 if all(t.ok for t in tables) else 3
