"""`leak-harness` command line: parse, dispatch to harness/commands/, map errors.

Exit codes (the contract): 0 clean/unsupported, 1 leak, 2 usage or
environment error, 3 crash/timeout/error.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from .commands import COMMANDS
from .errors import HarnessError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no traceback
        self.print_usage(sys.stderr)
        print(f"leak-harness: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="leak-harness", description=(
        "Does importing and using a module leave memory behind when the interpreter is "
        "finalized or a subinterpreter ends?"))
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        import_module(f"harness.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HarnessError as exc:
        print(f"leak-harness: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("leak-harness: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
