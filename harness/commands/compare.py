"""`leak-harness compare BASELINE NEW`: what leaks now that did not before; exit 1 if anything."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "compare new results with a baseline: new, grown, fixed, unchanged leaks, new crashes"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help=HELP, description=(
        "Exit 1 on new or grown leaks or new crashes (known leaks excepted), 0 otherwise. "
        "BASELINE and NEW are JSON-lines results or `report --format json` documents; "
        "several NEW files (shards) are merged."))
    p.add_argument("baseline", metavar="BASELINE")
    p.add_argument("new", nargs="+", metavar="NEW")
    p.add_argument("--known", metavar="TOML", help="known leaks (e.g. suppressions/known-leaks.toml)")
    p.add_argument("--grow-threshold", default="25%",
                   help="relative rise of excess per cycle that counts as grown (default 25%%)")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the comparison as JSON to FILE (no FILE: print JSON instead of text)")
    p.set_defaults(func=run)


def _fmt_excess(line: dict | None) -> str:
    from ..results.summary import excess_of
    from ..report.terminal import fmt_bytes, fmt_number

    if not line or line.get("verdict") != "leak":
        return (line or {}).get("verdict") or "absent"
    return f"{fmt_number(excess_of(line, 'blocks'))} blocks, {fmt_bytes(excess_of(line, 'bytes'))}"


def _where(change) -> str:
    from ..results.load import python_label
    from ..results.summary import row_label

    line = change.line
    return f"{row_label(line)}  [{python_label(line.get('python') or {})} {line.get('mode')} {line.get('backend')}]"


def render_text(comparison, baseline_name: str, new_names: list[str]) -> str:
    """The human summary: one block per non-empty list, then the outcome line."""
    from ..results.summary import first_line

    out = [f"baseline {baseline_name} ({comparison.baseline_count} results) -> "
           f"{', '.join(new_names)} ({comparison.new_count} results); "
           f"grow threshold {comparison.threshold:.0%}"]

    def block(title: str, changes, describe) -> None:
        if changes:
            out.append(f"\n{title} ({len(changes)})")
            out.extend(f"  {_where(c)}  {describe(c)}" for c in changes)

    block("NEW LEAKS", comparison.new,
          lambda c: f"{_fmt_excess(c.now)} per cycle (baseline: {_fmt_excess(c.before)})")
    block("GROWN", comparison.grown,
          lambda c: f"{_fmt_excess(c.before)} -> {_fmt_excess(c.now)} per cycle ("
          + ", ".join(f"{k} +{v:.0%}" for k, v in c.growth.items()) + ")")
    block("NEW CRASHES", comparison.new_crashes,
          lambda c: f"{c.now['verdict']}: {first_line(c.now.get('message'), 120)}")
    block("KNOWN", comparison.known,
          lambda c: f"{c.category}: {_fmt_excess(c.now) if c.now['verdict'] == 'leak' else c.now['verdict']}"
          f"  [{c.known.where}]")
    used = {c.known.where: c.known for c in comparison.known}
    for where, entry in used.items():   # each reason once, not once per result
        out.append(f"    {where}: {entry.reason}" + (f" <{entry.link}>" if entry.link else ""))
    block("FIXED", comparison.fixed,
          lambda c: f"was {_fmt_excess(c.before)}, now {c.now['verdict']}")
    block("UNCHANGED", comparison.unchanged,
          lambda c: f"{_fmt_excess(c.before)} -> {_fmt_excess(c.now)}")
    if comparison.stale:
        out.append(f"\nSTALE known-leaks entries ({len(comparison.stale)}): they match results of "
                   "this run, none of them leaks any more; remove them")
        out.extend(f"  {entry.describe()}" for entry in comparison.stale)
    if comparison.unexercised:
        out.append(f"\nknown-leaks entries not exercised by this run: {len(comparison.unexercised)}")
        if len(comparison.unexercised) <= 10:
            out.extend(f"  {entry.describe()}" for entry in comparison.unexercised)
    if comparison.not_rerun:
        out.append(f"baseline results not in this run: {len(comparison.not_rerun)}")
    if comparison.failed:
        parts = [f"{len(comparison.new)} new leak(s)" if comparison.new else "",
                 f"{len(comparison.grown)} grown" if comparison.grown else "",
                 f"{len(comparison.new_crashes)} new crash(es)" if comparison.new_crashes else ""]
        out.append("\nFAIL: " + ", ".join(p for p in parts if p))
    else:
        out.append(f"\nOK: no new or grown leaks, no new crashes ({len(comparison.known)} known, "
                   f"{len(comparison.unchanged)} unchanged, {len(comparison.fixed)} fixed)")
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    from ..results.compare import compare, parse_threshold
    from ..results.known_leaks import load_known_leaks
    from ..results.load import load_results
    from .report import write_output

    threshold = parse_threshold(args.grow_threshold)
    known = load_known_leaks(args.known) if args.known else []
    baseline = load_results([args.baseline])
    current = load_results(args.new)
    for note in baseline.notes + current.notes:
        print(f"leak-harness: note: {note}", file=sys.stderr)
    comparison = compare(baseline, current, known, threshold)
    document = json.dumps(comparison.to_json(), indent=1) + "\n"
    if args.json == "-":
        sys.stdout.write(document)
    else:
        sys.stdout.write(render_text(comparison, args.baseline, args.new))
        if args.json:
            write_output(document, args.json)
    return comparison.exit_code
