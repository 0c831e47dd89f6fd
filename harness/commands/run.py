"""`leak-harness run`: one case, one mode, one verdict."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cases.catalog import CATALOG_DIR, CaseFile, find_case, load_case_file
from ..cases.model import Case, code_case, import_case, read_source
from ..host.target import target_python
from ..engine import Engine
from ..errors import CaseError
from .common import (add_control_option, add_explain_option, add_run_options, explaining, make_console,
                     settings_from_args, with_control)

HELP = "run one case in one mode and judge it"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help=HELP)
    p.add_argument("case", nargs="?", help="a .py file, a .toml case file, a case name "
                   "from the shipped catalog (harness/data/cases), or a module name to import")
    p.add_argument("-c", dest="code", help="Python code to run each cycle")
    p.add_argument("--module", help="the module the case targets (for reports)")
    add_run_options(p)
    add_control_option(p)
    add_explain_option(p)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)


def case_from_args(args: argparse.Namespace) -> Case:
    if args.code is not None and args.case:
        raise CaseError("give either CASE or -c CODE, not both")
    if args.code is not None:
        return code_case(args.code, module=args.module)
    if not args.case:
        raise CaseError("nothing to run: give CASE (a .py or .toml file, a case name or a module name) or -c CODE")
    path = Path(args.case)
    if path.suffix == ".py":
        if not path.is_file():
            raise CaseError(f"case file {path} does not exist")
        return Case(name=path.stem, code=read_source(path), module=args.module, source=str(path))
    if path.suffix == ".toml":
        return _checked(load_case_file(path), args)
    if args.case.replace(".", "").replace("_", "").isalnum():
        case = import_case(args.case)
        return case if not args.module else Case(case.name, case.code, args.module)
    catalog_case = find_case(args.case)
    if catalog_case is not None:
        return _checked(catalog_case, args)
    raise CaseError(f"CASE {args.case!r} is neither a .py file, a .toml case file, a case name "
                    f"from {CATALOG_DIR} nor a module name")


def _checked(case_file: CaseFile, args: argparse.Namespace) -> Case:
    """A case file's case, once its `requires` and `modes` fit the target and --mode."""
    problem = case_file.requires.problem(target_python(args.python))
    if problem:
        raise CaseError(f"case {case_file.name} ({case_file.path}) cannot run here: {problem}")
    if case_file.case.modes and args.mode not in case_file.case.modes:
        raise CaseError(f"case {case_file.name} runs in {', '.join(case_file.case.modes)} only, "
                        f"not in --mode {args.mode}")
    return case_file.case


def run(args: argparse.Namespace) -> int:
    case = with_control(case_from_args(args), args)
    settings = settings_from_args(args, args.python, args.mode, case.cycles)
    live = None
    if not args.json:
        from ..report.live import CycleLine
        chosen = case.control is not None and case.control.strip() not in ("", "pass")
        live = CycleLine(sys.stdout, settings.warmup, settings.cycles, "control" if chosen else "pass")
    try:
        result = explaining(Engine(), args).run(case, settings, on_sample=live)
    finally:
        if live is not None:
            live.finish()
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        from ..report.terminal import render_result
        render_result(result, make_console())
    return result.exit_code
