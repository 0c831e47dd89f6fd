"""`leak-harness merge`: join the results of sweep shards (or re-runs) into one JSON-lines file."""

from __future__ import annotations

import argparse
import io
import sys

HELP = "merge sweep results (e.g. shards) into one JSON-lines file"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help=HELP, description=(
        "Join JSON-lines results: a case given twice keeps the later file's line; CPython's own "
        "`pass` control is kept once per python, mode and backend."))
    p.add_argument("results", nargs="+", metavar="RESULTS")
    p.add_argument("-o", "--output", help="write here instead of standard output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..results.load import load_results, write_lines
    from .report import require_results, write_output

    results = load_results(args.results)
    for note in results.notes:
        print(f"leak-harness: note: {note}", file=sys.stderr)
    require_results(results)   # all empty: nothing merged is an error (one empty shard is not)
    buffer = io.StringIO()
    count = write_lines(results, buffer)
    write_output(buffer.getvalue(), args.output)
    print(f"merged {len(args.results)} file(s): {count} lines "
          f"({len(results.case_lines())} results, {len(results.control_lines())} controls)",
          file=sys.stderr)
    return 0
