"""`leak-harness bisect`: the minimal statements, modules or tests that leak; `bisect git`.

Each kind turns a subset of its items into something measurable and hands
`probe(subset)` to the ddmin `Shrinker` (harness/tools/bisect/):

- statements (`-c CODE`, `--file SCRIPT.py`): the kept statements plus
  what they need (tools/bisect/statements.py), one case per subset;
- modules (`--modules a,b,c`, `--stdlib`): `import a` lines, one case;
- tests (`--tests PATH_OR_NODEIDS`): the subset run in-process by pytest,
  regrtest -R style (tools/bisect/by_tests.py).

Exit status: 1 when a leaking minimal set (or a first bad commit) was found,
0 when the original does not leak, 3 when it crashes or errors, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from ..errors import CaseError
from ..report.bisect_text import render_git, render_shrink
from ..result import EXIT_CODES
from ..settings import RunSettings
from ..tools.bisect.probes import modules_shrinker, script_source, statements_shrinker, tests_shrinker
from ..tools.bisect.report import git_report, shrink_report
from .common import DEFAULT_CYCLES, add_run_options, make_console, settings_from_args

HELP = "shrink a leaking script, module set or test set to its minimal culprit; bisect git history"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bisect", help=HELP, description=HELP)
    what = p.add_mutually_exclusive_group()
    what.add_argument("-c", dest="code", help="a script to shrink, statement by statement")
    what.add_argument("--file", help="a .py script to shrink, statement by statement")
    what.add_argument("--modules", help="comma-separated modules: the minimal set whose import leaks")
    what.add_argument("--stdlib", action="store_true", help="every importable stdlib module of --python")
    what.add_argument("--tests", nargs="+", metavar="PATH_OR_NODEID",
                      help="pytest paths or node ids: the minimal subset whose in-process run leaks")
    p.add_argument("--exclude", default="", help="comma-separated modules to leave out (--modules/--stdlib)")
    _add_common(p)
    p.set_defaults(func=run, git_command=False)
    git = p.add_subparsers(dest="bisect_command", metavar="{git}")
    g = git.add_parser("git", help="find the commit that introduced a leak (drives `git bisect run`)")
    g.add_argument("case", nargs="?", help="a .py file, or a module name to import")
    g.add_argument("-c", dest="code", help="Python code to run each cycle")
    g.add_argument("--repo", required=True, help="the git work tree to bisect")
    g.add_argument("--good", required=True, help="a revision without the leak")
    g.add_argument("--bad", required=True, help="a revision with the leak")
    g.add_argument("--build", required=True, metavar="CMD",
                   help="shell command run in the repo at each commit; failure skips the commit")
    _add_common(g)
    g.set_defaults(func=run_git)


def _add_common(p: argparse.ArgumentParser) -> None:
    add_run_options(p)
    p.add_argument("--pythonpath", action="append", default=[], metavar="DIR",
                   help="a directory put on the target's sys.path (repeatable)")
    p.add_argument("--jobs", type=int, default=1, help="measurements run at once within a ddmin round")
    p.add_argument("--retries", type=int, default=2,
                   help="extra measurements of a subset whose verdict changed between two runs")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _settings(args: argparse.Namespace, extra_path: tuple[str, ...] = ()) -> RunSettings:
    base = settings_from_args(args, args.python, args.mode)
    paths = tuple(str(Path(d).resolve()) for d in args.pythonpath) + extra_path
    return replace(base, pythonpath=paths)


def run(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise CaseError(f"--jobs must be at least 1 (got {args.jobs})")
    if args.code is not None or args.file:
        source, name = script_source(args.file, args.code)
        kind, labels, shrinker = statements_shrinker(source, name, args.file or "<-c>", _settings(args),
                                                     args.jobs, args.retries)
    elif args.modules or args.stdlib:
        kind, labels, shrinker = modules_shrinker(args.modules, args.python, args.exclude, _settings(args),
                                                  args.jobs, args.retries, use_stdlib=args.stdlib)
    elif args.tests:
        cycles = args.cycles if args.cycles is not None else DEFAULT_CYCLES
        kind, labels, shrinker = tests_shrinker(args.python, args.tests, args.warmup, cycles,
                                                args.timeout, args.jobs, args.retries)
    else:
        raise CaseError("nothing to bisect: give -c CODE, --file SCRIPT.py, --modules a,b,c, "
                        "--stdlib, --tests PATH, or `bisect git ...`")
    outcome = shrinker.shrink(len(labels))
    report = shrink_report(kind, labels, outcome)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        render_shrink(make_console(), report)
    if outcome.leaks:
        return 1
    return EXIT_CODES.get(outcome.original.verdict, 3)


def run_git(args: argparse.Namespace) -> int:
    from ..tools.bisect.git import git_bisect
    from .run import case_from_args
    args.module = None
    case = case_from_args(args)
    repo = Path(args.repo).resolve()
    settings = _settings(args, extra_path=(str(repo),))
    report = git_report(git_bisect(repo, args.good, args.bad, args.build, case, settings))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        render_git(make_console(), report)
    return 1
