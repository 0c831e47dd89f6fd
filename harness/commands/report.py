"""`leak-harness report`: render sweep results (one or many JSON-lines files) in a format."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import HarnessError

HELP = "render sweep results as markdown, html, junit or json"
FORMATS = ("markdown", "html", "junit", "json")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help=HELP, description=(
        "Render the JSON lines of `sweep --out` (several files, e.g. shards, are merged) as a "
        "report. Also reads a `report --format json` document."))
    p.add_argument("results", nargs="+", metavar="RESULTS", help="JSON-lines results file(s)")
    p.add_argument("--format", default="markdown", choices=FORMATS)
    p.add_argument("-o", "--output", help="write here instead of standard output")
    p.add_argument("--title", default="leak-harness report")
    p.add_argument("--no-samples", action="store_true",
                   help="json: leave out per-cycle samples (small baselines)")
    p.set_defaults(func=run)


def render(results, fmt: str, title: str, samples: bool = True) -> str:
    """The report text; each format's module is imported only when asked for."""
    if fmt == "markdown":
        from ..report.markdown import render_markdown
        return render_markdown(results, title)
    if fmt == "html":
        from ..report.html import render_html
        return render_html(results, title)
    if fmt == "junit":
        from ..report.junit import render_junit
        return render_junit(results)
    from ..report.jsonfmt import render_json
    return render_json(results, samples=samples)


def write_output(text: str, output: str | None) -> None:
    if not output or output == "-":
        sys.stdout.write(text)
        return
    path = Path(output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise HarnessError(f"cannot write {path}: {exc.strerror or exc}") from None


def require_results(results) -> None:
    """Refuses input with no result at all (an empty file, blank lines, one
    cut-off line): an empty JUnit file or table with exit 0 would turn a
    sweep that wrote nothing into a green CI step (compare refuses it too)."""
    if not results.case_lines() and not results.control_lines():
        sources = results.sources
        raise HarnessError(f"{', '.join(sources)} {'holds' if len(sources) == 1 else 'hold'} no "
                           "results (empty, or only a cut-off line): nothing to report")


def run(args: argparse.Namespace) -> int:
    from ..results.load import load_results

    results = load_results(args.results)
    for note in results.notes:
        print(f"leak-harness: note: {note}", file=sys.stderr)
    require_results(results)
    write_output(render(results, args.format, args.title, samples=not args.no_samples), args.output)
    if args.output and args.output != "-":
        print(f"{args.format} report: {args.output} ({len(results.case_lines())} results)",
              file=sys.stderr)
    return 0
