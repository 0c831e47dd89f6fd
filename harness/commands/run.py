"""`leak-harness run`: one case, one mode, one verdict."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..cases import Case, code_case, import_case
from ..engine import Engine
from ..errors import CaseError
from .common import add_run_options, make_console, settings_from_args

HELP = "run one case in one mode and judge it"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help=HELP)
    p.add_argument("case", nargs="?", help="a .py file, or a module name to import")
    p.add_argument("-c", dest="code", help="Python code to run each cycle")
    p.add_argument("--module", help="the module the case targets (for reports)")
    add_run_options(p)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)


def case_from_args(args: argparse.Namespace) -> Case:
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


def run(args: argparse.Namespace) -> int:
    case = case_from_args(args)
    result = Engine().run(case, settings_from_args(args, args.python, args.mode))
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        from ..report.terminal import render_result
        render_result(result, make_console())
    return result.exit_code
