"""`leak-harness` command line: parse, dispatch to harness/commands/, map errors.

Exit codes (the contract): 0 clean/unsupported, 1 leak, 2 usage or
environment error, 3 crash/timeout/error, 130 SIGINT, 143 SIGTERM, 141 the
reader of stdout went away (`run --json | head`).
"""

from __future__ import annotations

import argparse
import os
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


EXIT_BROKEN_PIPE = 141   # 128 + SIGPIPE, what `yes | head` leaves for `yes`


def main(argv: list[str] | None = None) -> int:
    # first of all: a signal during the imports below ends quietly too
    from . import interrupts
    try:
        interrupts.install()
    except ValueError:   # not the main thread (an embedding caller): keep its handlers
        pass
    return dispatch(argv)


def dispatch(argv: list[str] | None = None) -> int:
    """Parse and run one command, errors mapped to exit codes (no signal handlers set)."""
    from . import interrupts
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except HarnessError as exc:
        print(f"leak-harness: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"leak-harness: interrupted ({interrupts.received_signal_name()})", file=sys.stderr)
        return interrupts.exit_status()
    except BrokenPipeError:
        # the reader left: say nothing more, and keep the interpreter's own
        # flush at exit from failing again on the same pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
