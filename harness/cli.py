"""`leak-harness` command line: parse, dispatch to harness/commands/, map errors.

Exit codes (the contract): 0 clean/unsupported, 1 leak, 2 usage or
environment error, 3 crash/timeout/error, 130 SIGINT, 143 SIGTERM, 141 the
reader of stdout went away (`run --json | head`).
"""

from __future__ import annotations

import sys

# Nothing else at module level: a Ctrl-C or SIGTERM must find the handlers of
# main() installed as early as possible, so every import waits until then.

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141   # 128 + SIGPIPE, what `yes | head` leaves for `yes`


def build_parser():
    """The argparse parser of every subcommand (argparse.ArgumentParser)."""
    import argparse
    from importlib import import_module

    from .commands import COMMANDS

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # one line, exit 2, no traceback
            self.print_usage(sys.stderr)
            print(f"leak-harness: error: {message}", file=sys.stderr)
            sys.exit(EXIT_USAGE)

    parser = _Parser(prog="leak-harness", description=(
        "Does importing and using a module leave memory behind when the interpreter is "
        "finalized or a subinterpreter ends?"))
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        import_module(f"harness.commands.{name}").register(sub)
    return parser


class _EarlyInterrupt(KeyboardInterrupt):
    """SIGINT/SIGTERM before harness.interrupts took over (during the imports)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _early(signum: int, frame: object) -> None:
    raise _EarlyInterrupt(signum)


def console(argv: list[str] | None = None) -> int:
    """The `leak-harness` and `python -m harness` entry: `main`, and then the
    process only exits.  Its command has answered, so a SIGINT or SIGTERM
    from here on is ignored, not left to the interpreter's teardown, which
    puts SIG_DFL back (a SIGINT 0.4 s into `run -c pass` killed the process
    there, status -2, after its output was complete)."""
    return main(argv, restore_handlers=False)


def main(argv: list[str] | None = None, *, restore_handlers: bool = True) -> int:
    """Signal handlers first, then parse and run (see `dispatch`).

    The previous handlers are restored on return, for callers that run the
    command line in their own process (tests, an embedding tool); `console`
    leaves SIGINT and SIGTERM ignored instead.
    """
    import _signal   # built in: costs no import, unlike `signal`

    names = {_signal.SIGINT: "SIGINT", _signal.SIGTERM: "SIGTERM"}
    previous = {}
    try:
        for signum in names:
            previous[signum] = _signal.signal(signum, _early)
    except ValueError:   # not the main thread (an embedding caller): keep its handlers
        previous = {}
    # A signal that lands while a weakref callback or __del__ runs (the
    # import system's module-lock callbacks, during the imports below)
    # raises there, where Python prints "Exception ignored ... Traceback" and
    # goes on: kept here instead, and acted on once the imports are done.
    swallowed: list[int] = []
    earlier_hook = sys.unraisablehook

    def keep_early_interrupt(unraisable) -> None:
        if isinstance(unraisable.exc_value, _EarlyInterrupt):
            swallowed.append(unraisable.exc_value.signum)
        else:
            earlier_hook(unraisable)

    sys.unraisablehook = keep_early_interrupt
    try:
        try:
            from .host import interrupts
            if previous:
                # wraps the hook above, so a signal swallowed before the
                # handlers changed is still in `swallowed`; from here on the
                # interrupts module hands a swallowed signal back itself
                interrupts.install()
            if swallowed:
                raise _EarlyInterrupt(swallowed[0])
        except Exception as exc:
            # Python 3.11 wraps what __set_name__ raises (a dataclass field
            # being set up at import) in a RuntimeError, the signal its cause
            early = interrupt_cause(exc, _EarlyInterrupt)
            if early is None:
                raise
            return _interrupted(names, early.signum)
        except _EarlyInterrupt as exc:
            return _interrupted(names, exc.signum)
        return dispatch(argv)
    finally:
        sys.unraisablehook = earlier_hook
        for signum, handler in previous.items():
            _signal.signal(signum, handler if restore_handlers else _signal.SIG_IGN)


def _interrupted(names: dict[int, str], signum: int) -> int:
    print(f"leak-harness: interrupted ({names.get(signum, signum)})", file=sys.stderr)
    return 128 + signum


def interrupt_cause(exc: BaseException, kind: type = KeyboardInterrupt) -> BaseException | None:
    """The `kind` interrupt `exc` was raised from or while handling, if any:
    a signal whose handler raised inside code that wraps errors (__set_name__
    on 3.11) arrives as another exception whose cause it is."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, kind):
            return link
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return None


def dispatch(argv: list[str] | None = None) -> int:
    """Parse and run one command, errors mapped to exit codes (no signal handlers set)."""
    import os

    from .host import interrupts
    from .host.runner import HostsStopped
    from .errors import HarnessError
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (KeyboardInterrupt, HostsStopped):
        # HostsStopped: the signal landed in a callback (see host/interrupts.py)
        return _interrupted_by_signal(interrupts)
    except HarnessError as exc:
        print(f"leak-harness: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # the reader left: say nothing more, and keep the interpreter's own
        # flush at exit from failing again on the same pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        if interrupt_cause(exc) is None:
            raise
        return _interrupted_by_signal(interrupts)   # wrapped on its way out (see interrupt_cause)


def _interrupted_by_signal(interrupts) -> int:
    """The interrupt is handled here: said once, exit 128 + the signal received."""
    interrupts.acknowledge()
    print(f"leak-harness: interrupted ({interrupts.received_signal_name()})", file=sys.stderr)
    return interrupts.exit_status()


if __name__ == "__main__":
    sys.exit(console())
