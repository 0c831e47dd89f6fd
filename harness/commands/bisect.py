"""`leak-harness bisect`: the minimal statements, modules or tests that leak; `bisect git`.

Each kind turns a subset of its items into something measurable and hands
`probe(subset)` to the ddmin `Shrinker` (harness/bisect.py):

- statements (`-c CODE`, `--file SCRIPT.py`): the kept statements plus
  what they need (harness/statements.py), one case per subset;
- modules (`--modules a,b,c`, `--stdlib`): `import a` lines, one case;
- tests (`--tests PATH_OR_NODEIDS`): the subset run in-process by pytest,
  regrtest -R style (harness/bisect_tests.py).

Exit status: 1 when a leaking minimal set (or a first bad commit) was found,
0 when the original does not leak, 3 when it crashes or errors, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from ..tools.bisect.ddmin import Probe, Shrinker, ShrinkOutcome, Trial
from ..cases.model import Case, import_case
from ..engine import Engine
from ..settings import RunSettings
from ..errors import CaseError
from ..host.target import target_python
from ..result import EXIT_CODES
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


def _probe_of(result) -> Probe:
    return Probe(verdict=result.verdict, excess=dict(result.excess or {}),
                 message=result.message or "", wall_s=result.wall_s)


# -- shrinking kinds --------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise CaseError(f"--jobs must be at least 1 (got {args.jobs})")
    if args.code is not None or args.file:
        kind, labels, shrinker = _statements(args)
    elif args.modules or args.stdlib:
        kind, labels, shrinker = _modules(args)
    elif args.tests:
        kind, labels, shrinker = _tests(args)
    else:
        raise CaseError("nothing to bisect: give -c CODE, --file SCRIPT.py, --modules a,b,c, "
                        "--stdlib, --tests PATH, or `bisect git ...`")
    outcome = shrinker.shrink(len(labels))
    report = shrink_report(kind, labels, outcome)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        _render_shrink(report, outcome)
    if outcome.leaks:
        return 1
    return EXIT_CODES.get(outcome.original.verdict, 3)


def _statements(args: argparse.Namespace):
    from ..tools.bisect.statements import closure, render, split_statements
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise CaseError(f"--file {path} does not exist")
        source, name = path.read_text(), path.stem
    else:
        source, name = args.code, "code"
    statements = split_statements(source, args.file or "<-c>")
    if not statements:
        raise CaseError("the script has no statements to shrink")
    settings, engine = _settings(args), Engine()

    def probe(key):
        return _probe_of(engine.run(Case(name=f"{name}-bisect", code=render(statements, key)), settings))

    labels = [s.source for s in statements]
    shrinker = Shrinker(probe, canonical=lambda subset: closure(statements, subset),
                        jobs=args.jobs, retries=args.retries)
    return "statements", labels, shrinker


def _modules(args: argparse.Namespace):
    excluded = {m.strip() for m in args.exclude.split(",") if m.strip()}
    if args.stdlib:
        from ..cases.model import stdlib_import_cases
        names = [c.module for c in stdlib_import_cases(target_python(args.python))[0]]
    else:
        names = [m.strip() for m in args.modules.split(",") if m.strip()]
    for name in names:
        if not name.replace(".", "").replace("_", "").isalnum():
            raise CaseError(f"--modules: {name!r} is not a module name")
    names = [n for n in dict.fromkeys(names) if n not in excluded]
    if not names:
        raise CaseError("no modules left to bisect")
    settings, engine = _settings(args), Engine()

    def probe(key):
        code = "".join(import_case(names[i]).code + "\n" for i in key)
        return _probe_of(engine.run(Case(name="modules-bisect", code=code), settings))

    return "modules", names, Shrinker(probe, jobs=args.jobs, retries=args.retries)


def _tests(args: argparse.Namespace):
    from ..tools.bisect.by_tests import collect_test_ids, run_subset
    python = target_python(args.python).executable
    ids = collect_test_ids(python, args.tests)

    def probe(key):
        cycles = args.cycles if args.cycles is not None else DEFAULT_CYCLES
        outcome = run_subset(python, [ids[i] for i in key], args.warmup, cycles, args.timeout)
        per_repeat = outcome.get("per_repeat") or {}
        return Probe(verdict=outcome["verdict"], excess={k: per_repeat.get(k) for k in ("blocks", "refs")},
                     message=outcome.get("message", ""))

    return "tests", ids, Shrinker(probe, jobs=args.jobs, retries=args.retries)


def _trial_json(trial: Trial) -> dict:
    probe = trial.representative
    return {"verdict": trial.verdict, "verdicts": trial.verdicts, "excess": probe.excess,
            "message": probe.message}


def shrink_report(kind: str, labels: list[str], outcome: ShrinkOutcome) -> dict:
    """The `--json` object: kind, minimal, runs, original, result (+ flaky, cache_hits, wall_s)."""
    return {
        "kind": kind,
        "minimal": [labels[i] for i in outcome.minimal] if outcome.leaks else [],
        "runs": outcome.runs,
        "original": {"items": len(labels), **_trial_json(outcome.original)},
        "result": {"items": len(outcome.minimal) if outcome.leaks else 0, **_trial_json(outcome.result)},
        "flaky": [{"minimal": [labels[i] for i in t.key], "verdicts": t.verdicts} for t in outcome.flaky],
        "cache_hits": outcome.cache_hits,
        "rounds": outcome.rounds,
        "wall_s": round(outcome.wall_s, 2),
    }


def _fmt_excess(trial: dict) -> str:
    excess = trial.get("excess") or {}
    parts = [f"{excess[k]:+g} {k}/cycle" for k in ("blocks", "bytes", "refs") if excess.get(k) is not None]
    return ", ".join(parts) or "-"


def _render_shrink(report: dict, outcome: ShrinkOutcome) -> None:
    console = make_console()
    original = report["original"]
    if not outcome.leaks:
        console.print(f"the original ({original['items']} {report['kind']}) does not leak: verdict "
                      f"{original['verdict']} ({_fmt_excess(original)}); nothing to shrink")
        if original["verdict"] not in ("clean", "unsupported"):
            console.print(original["message"], markup=False)
        return
    console.print(f"minimal leaking {report['kind']}: {report['result']['items']} of {original['items']}",
                  style="bold")
    for label in report["minimal"]:
        console.print("    " + label.replace("\n", "\n    "), markup=False, highlight=False)
    console.print(f"leak per cycle: original {_fmt_excess(original)}; minimal {_fmt_excess(report['result'])}")
    console.print(f"{report['runs']} runs ({report['cache_hits']} cache hits, {report['rounds']} rounds) "
                  f"in {report['wall_s']:.1f} s")
    for flaky in report["flaky"]:
        console.print(f"flaky: {len(flaky['minimal'])} {report['kind']} gave {flaky['verdicts']}", style="yellow")


# -- git ----------------------------------------------------------------------------
def run_git(args: argparse.Namespace) -> int:
    from ..tools.bisect.git import git_bisect
    from .run import case_from_args
    args.module = None
    case = case_from_args(args)
    repo = Path(args.repo).resolve()
    settings = _settings(args, extra_path=(str(repo),))
    outcome = git_bisect(repo, args.good, args.bad, args.build, case, settings)
    bad_step = outcome.step_for(outcome.first_bad) or (outcome.bad if outcome.first_bad == outcome.bad["commit"] else None)
    good_step = outcome.step_for(outcome.last_good)
    report = {
        "kind": "git",
        "minimal": {"commit": outcome.first_bad, "subject": outcome.subject, "candidates": outcome.candidates},
        "runs": len(outcome.steps),
        "original": {"good": _step_json(outcome.good), "bad": _step_json(outcome.bad)},
        "result": {"first_bad": _step_json(bad_step), "last_good": _step_json(good_step),
                   "skipped": [s["commit"] for s in outcome.steps if s["exit"] == 125]},
        "steps": [_step_json(s) for s in outcome.steps],
        "wall_s": round(outcome.wall_s, 2),
    }
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        _render_git(report)
    return 1


def _step_json(step: dict | None) -> dict | None:
    if step is None:
        return None
    return {k: step.get(k) for k in ("commit", "subject", "verdict", "excess", "build_ok", "wall_s")}


def _render_git(report: dict) -> None:
    console = make_console()
    minimal, result = report["minimal"], report["result"]
    if minimal["commit"]:
        console.print(f"first bad commit: {minimal['commit']} {minimal['subject']}", style="bold", markup=False)
    else:
        console.print("skipped commits leave the first bad commit open; it is one of:", style="bold")
        for commit in minimal["candidates"]:
            console.print(f"    {commit}")
    for side, label in (("last_good", "good side"), ("first_bad", "bad side")):
        step = result[side]
        if step:
            console.print(f"{label}: {step['commit'][:12]} {step['verdict']:5} {_fmt_excess(step)}  "
                          f"({step['subject']})", markup=False)
    for step in report["steps"]:
        console.print(f"  step {step['commit'][:12]} {step['verdict']:12} {_fmt_excess(step)} "
                      f"{step['wall_s']:.1f} s  {step['subject']}", markup=False, highlight=False)
    console.print(f"{report['runs']} steps in {report['wall_s']:.1f} s; bisect state reset")
