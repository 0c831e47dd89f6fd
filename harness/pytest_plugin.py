"""pytest plugin: leak checks inside the test runner (entry point `leak_harness`).

This module only translates pytest's world into calls on the engine and
`repeat.py`: options into `RunSettings`, a fixture call or a case file into
`Engine.run`, a marked test into `repeat_check`, results into outcomes,
JUnit properties and one summary table.  It holds no measuring logic.

- fixture `leak_check(code, ...)` -> `Result`; `leak_check.assert_clean(...)`
- marker `@pytest.mark.no_leaks(warmup=3, repeats=6, max_blocks=0, max_refs=0,
  max_fds=0)` and `--no-leaks` (every test), `--no-leaks-repeats W:R`
- case files (`cases/*.toml`, `leak_*.toml`) -> one item per (case, mode)
  (plugin/casefiles.py)
- `--leak-cycles` / `@pytest.mark.leak_cycles`: the project's own tests inside
  interpreter cycles; `known_leak` (plugin/cycles.py)
- pytest-xdist: one Engine (so one `pass` control per setting) per worker;
  each worker hands its rows to the controller through `workeroutput`.

`-p no:leak_harness` disables all of it.
"""

from __future__ import annotations

import inspect
import os
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from .cases.model import Case, check_control_code, code_case
from .engine import Engine
from .settings import RunSettings
from .errors import HarnessError, ModeUnavailableError
from .host.modes import MODES
from .host.target import version_label
from .tools.repeat import RepeatLimits, parse_repeats, repeat_check
from .result import Result
from .report.pytest_text import failure_text, summary_lines, top_site
from .plugin.cycles import CyclesPlugin, leaked
from .plugin.cycles import _leak_cycles_target  # noqa: F401  (a fixture: found by name)

WORKER_KEY = "leak_harness"
DEFAULT_CASE_GLOBS = ("leak_*.toml", "cases/*.toml")
MARKER_ARGS = ("warmup", "repeats", "max_blocks", "max_refs", "max_fds")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("leak-harness", "leak checks across interpreter lifecycles")
    group.addoption("--leak-python", action="append", metavar="PATH",
                    help="target interpreter for leak_check and case files (repeatable; "
                         "default: the one running pytest)")
    group.addoption("--leak-mode", action="append", choices=list(MODES),
                    help="lifecycle mode(s) to run (repeatable; default: each case's own, "
                         "finalize for leak_check)")
    group.addoption("--leak-backend", help="backend (default counters)")
    group.addoption("--leak-cycles", action="store_true", default=None,
                    help="run each test function inside the host, in each --leak-mode (default "
                         "finalize and subinterpreter), judged against importing its module")
    group.addoption("--leak-cycle-count", help="measured cycles per case at most (default 20, or the "
                    "case's): a case whose clean is settled earlier stops there")
    group.addoption("--leak-fixed-cycles", action="store_true", default=None,
                    help="every case runs all its cycles (no adaptive stop)")
    group.addoption("--leak-warmup", help="warm-up cycles dropped first (default 5)")
    group.addoption("--leak-timeout", help="seconds per host process (default 120)")
    group.addoption("--no-leaks", action="store_true", default=None,
                    help="repeat every test in-process and fail those that grow (regrtest -R)")
    group.addoption("--no-leaks-repeats", metavar="W:R",
                    help="warm-up and measured repetitions for no_leaks (default 3:6)")
    parser.addini("leak_python", "target interpreters (one per line)", type="linelist", default=[])
    parser.addini("leak_mode", "lifecycle modes (one per line)", type="linelist", default=[])
    parser.addini("leak_backend", "backend (default counters)", default="counters")
    parser.addini("leak_cycles", "run every test inside interpreter cycles (true/false; "
                  "a number is read as leak_cycle_count, its old meaning)", default="")
    parser.addini("leak_cycle_count", "measured cycles per case", default="")
    parser.addini("leak_fixed_cycles", "every case runs all its cycles (true/false)", type="bool",
                  default=False)
    parser.addini("leak_warmup", "warm-up cycles", default="5")
    parser.addini("leak_timeout", "seconds per host process", default="120")
    parser.addini("no_leaks", "apply no_leaks to every test", type="bool", default=False)
    parser.addini("no_leaks_repeats", "W:R for no_leaks", default="3:6")
    parser.addini("leak_case_files", "glob patterns (relative to rootdir or a file name) of "
                  "case files to collect", type="linelist", default=list(DEFAULT_CASE_GLOBS))


@dataclass(frozen=True)
class LeakOptions:
    """The command line over the ini file over the defaults, checked once."""

    pythons: tuple[str | None, ...]
    modes: tuple[str, ...]
    backend: str
    cycles: int | None
    cycles_switch: bool
    warmup: int
    timeout: float
    no_leaks: bool
    repeats: tuple[int, int]
    case_globs: tuple[str, ...]
    fixed_cycles: bool = False

    @classmethod
    def from_config(cls, config: pytest.Config) -> "LeakOptions":
        def pick(name: str) -> Any:
            value = config.getoption(name.replace("-", "_"))
            return value if value is not None else config.getini(name)

        def number(name: str, kind: type) -> Any:
            text = str(pick(name)).strip()
            try:
                return kind(text) if text else None
            except ValueError:
                raise pytest.UsageError(f"--{name.replace('_', '-')}: {text!r} is not a number") from None

        modes = tuple(pick("leak_mode"))
        for mode in modes:
            if mode not in MODES:
                raise pytest.UsageError(f"leak_mode: unknown mode {mode!r}; choose from {', '.join(MODES)}")
        try:
            repeats = parse_repeats(str(pick("no_leaks_repeats")))
        except ValueError as exc:
            raise pytest.UsageError(f"--no-leaks-repeats: {exc}") from None
        cycles_switch, old_count = _cycles_option(config)
        count = number("leak_cycle_count", int)
        count = old_count if count is None else count
        return cls(pythons=tuple(pick("leak_python")) or (None,), modes=modes,
                   backend=str(pick("leak_backend")), cycles=count, cycles_switch=cycles_switch,
                   warmup=number("leak_warmup", int), timeout=number("leak_timeout", float),
                   no_leaks=bool(pick("no_leaks")), repeats=repeats,
                   case_globs=tuple(config.getini("leak_case_files")),
                   fixed_cycles=bool(pick("leak_fixed_cycles")))

    def settings(self, python: str | None, mode: str, cycles: int | None = None,
                 **overrides: Any) -> RunSettings:
        values = dict(python=python, mode=mode, backend=self.backend, timeout=self.timeout,
                      cycles=self.cycles or cycles or 20, warmup=self.warmup,
                      pythonpath=import_dirs(), fixed_cycles=self.fixed_cycles)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return RunSettings(**values)


def _cycles_option(config: pytest.Config) -> tuple[bool, int | None]:
    """(the --leak-cycles switch, a cycle count from the old numeric ini `leak_cycles`)."""
    if config.getoption("leak_cycles"):
        return True, None
    text = str(config.getini("leak_cycles")).strip().lower()
    if text.isdigit():
        return False, int(text)
    if text in ("", "0", "false", "no", "off"):
        return False, None
    if text in ("true", "yes", "on"):
        return True, None
    raise pytest.UsageError(f"leak_cycles: {text!r} is neither true/false nor a cycle count")


def import_dirs() -> tuple[str, ...]:
    """The test process's own import directories, for the target to find test modules.

    Everything under the running interpreter's prefixes (its stdlib and
    site-packages) is left out: the target may be another Python version, and
    PYTHONPATH comes before the target's own stdlib.
    """
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    kept: list[str] = []
    for entry in sys.path:
        path = os.path.realpath(entry or os.getcwd())
        if os.path.isdir(path) and not any(path == p or path.startswith(p + os.sep) for p in prefixes) \
                and path not in kept:
            kept.append(path)
    return tuple(kept)


class LeakSession:
    """Per-process state: the options, one Engine, the result rows."""

    def __init__(self, config: pytest.Config, options: LeakOptions) -> None:
        self.config = config
        self.options = options
        self.rows: list[dict] = []
        self.controls_by_worker: dict[str, int] = {}
        self._engine: Engine | None = None
        # controller side of xdist: rows as seen in each worker's reports, for
        # a worker that dies before handing its rows over
        self._seen_rows: dict[str, dict[str, list[dict]]] = {}
        self._seen_leak_tests: dict[str, set[str]] = {}
        self._crashed: dict[str, list[str]] = {}
        self._delivered: set[str] = set()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine()
        return self._engine

    def controls_measured(self) -> int:
        # Engine keeps one ControlRun per settings key it measured.
        return self._engine.controls_measured if self._engine is not None else 0

    def record(self, item: pytest.Item, row: dict) -> None:
        row = {"test": item.nodeid, **row}
        self.rows.append(row)
        for key, value in row.items():
            if key != "test":
                item.user_properties.append((f"leak_{key}", value))

    def record_result(self, item: pytest.Item, result: Result) -> None:
        excess = result.excess or {}
        self.record(item, {"case": result.case, "module": result.module or "",
                           "python": version_label(result.python.get("version", "?"),
                                                   bool(result.python.get("debug"))),
                           "mode": result.mode, "cycles": result.cycles, "verdict": result.verdict,
                           "blocks": excess.get("blocks"), "bytes": excess.get("bytes"),
                           "refs": excess.get("refs"), "site": top_site(result)})

    # -- hooks ----------------------------------------------------------------
    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config):
        # a leak stays a failure (counted, exit 1) but reads as one: L / LEAKED
        if report.when == "call" and report.failed and not hasattr(report, "wasxfail") \
                and leaked(report):
            return "failed", "L", "LEAKED"
        return None

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:   # an xdist worker: hand the rows to the controller
            workeroutput[WORKER_KEY] = {"rows": self.rows, "controls": self.controls_measured()}

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        data = getattr(node, "workeroutput", {}).get(WORKER_KEY)
        if data:
            self.rows.extend(data["rows"])
            worker = _worker_id(node)
            self.controls_by_worker[worker] = data["controls"]
            self._delivered.add(worker)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        node = getattr(report, "node", None)
        if node is None:   # not xdist's controller
            return
        worker = _worker_id(node)
        if report.when == "???":   # xdist: the worker died while running this test
            self._crashed.setdefault(worker, []).append(report.nodeid)
            return
        rows = _rows_from_properties(report.nodeid, report.user_properties)
        if rows:
            self._seen_rows.setdefault(worker, {})[report.nodeid] = rows
        if rows or "no_leaks" in report.keywords or self.options.no_leaks:
            self._seen_leak_tests.setdefault(worker, set()).add(report.nodeid)

    def _crashed_worker_rows(self) -> tuple[list[dict], list[str]]:
        """Rows of workers that died before sessionfinish: what their reports
        showed, and an `error` row for each leak test they died in."""
        rows, notes = [], []
        shown = {row["test"] for row in self.rows}
        leak_tests = set().union(*self._seen_leak_tests.values()) if self._seen_leak_tests else set()
        for worker in sorted(set(self._seen_rows) | set(self._crashed)):
            if worker in self._delivered:
                continue
            known = [row for test_rows in self._seen_rows.get(worker, {}).values() for row in test_rows]
            # xdist may hand a test that killed its worker to the next one: one row each
            crashed = list(dict.fromkeys(
                test for test in self._crashed.get(worker, ())
                if (test in leak_tests or self.options.no_leaks) and test not in shown))
            shown.update(crashed)
            rows.extend(known)
            rows.extend({"test": test, "module": "", "python": "?", "mode": "?", "cycles": None,
                         "verdict": "error", "blocks": None, "bytes": None, "refs": None}
                        for test in crashed)
            if known or crashed:
                notes.append(f"worker {worker} crashed: {len(known)} row(s) from its reports, "
                             f"{len(crashed)} test(s) it died in shown as error")
        return rows, notes

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        crashed_rows, notes = self._crashed_worker_rows()
        rows = self.rows + crashed_rows
        if not rows:
            return
        if not self.controls_by_worker and self._engine is not None:
            self.controls_by_worker["main"] = self.controls_measured()
        terminalreporter.write_sep("=", "leak-harness summary")
        for line in summary_lines(rows, self.controls_by_worker) + notes:
            terminalreporter.write_line(line)


def _worker_id(node: Any) -> str:
    workerinput = getattr(node, "workerinput", None) or {}
    gateway = getattr(node, "gateway", None)
    return str(workerinput.get("workerid") or getattr(gateway, "id", "?"))


def _rows_from_properties(test: str, properties: list) -> list[dict]:
    """The rows `LeakSession.record` put into a test's user properties (each
    row starts with `leak_case`), rebuilt on the controller."""
    rows: list[dict] = []
    for name, value in properties or ():
        if not isinstance(name, str) or not name.startswith("leak_"):
            continue
        key = name[len("leak_"):]
        if key == "case" or not rows:
            rows.append({"test": test})
        rows[-1][key] = value
    return [row for row in rows if "verdict" in row]


STATE = pytest.StashKey[LeakSession]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "no_leaks(warmup=3, repeats=6, max_blocks=0, max_refs=0, max_fds=0): "
        "run the test body warmup+repeats times in-process and fail it when refs (debug "
        "builds), allocated blocks or fds grow beyond the limits in every repetition")
    config.addinivalue_line(
        "markers", "leak_cycles(mode=None, cycles=None, control=None): run this test inside "
        "interpreter cycles (as --leak-cycles does for every test); mode: one or a list")
    config.addinivalue_line(
        "markers", "known_leak(reason, link=None): under leak cycles a leak of this test is an "
        "expected failure (xfail); one that stopped leaking fails as XPASS(strict)")
    session = LeakSession(config, LeakOptions.from_config(config))
    config.stash[STATE] = session
    config.pluginmanager.register(session, "leak_harness_session")
    config.pluginmanager.register(CyclesPlugin(session), "leak_harness_cycles")


# -- the fixture --------------------------------------------------------------
class LeakCheck:
    """`leak_check(code, ...)` runs `code` through the engine; bound to one test."""

    def __init__(self, session: LeakSession, item: pytest.Item) -> None:
        self._session = session
        self._item = item
        self._calls = 0

    def __call__(self, code: str, module: str | None = None, mode: str | None = None,
                 backend: str | None = None, cycles: int | None = None, warmup: int | None = None,
                 python: str | None = None, setup: str = "", name: str | None = None,
                 timeout: float | None = None, control: str | None = None) -> Result:
        """`control`: code the control runs instead of `pass` (e.g. the
        import), so only what `code` adds beyond it is judged."""
        options = self._session.options
        self._calls += 1
        default_name = self._item.name + (f"-{self._calls}" if self._calls > 1 else "")
        base = code_case(code, module=module, name=name or default_name)
        case = Case(name=base.name, code=code, module=module, setup=setup, control=control)
        try:
            if control is not None:
                check_control_code(control, "leak_check(control=...)")
            settings = options.settings(python or options.pythons[0],
                                        mode or (options.modes[0] if options.modes else "finalize"),
                                        backend=backend, cycles=cycles, warmup=warmup, timeout=timeout)
            result = self._session.engine.run(case, settings)
        except ModeUnavailableError as exc:
            pytest.skip(str(exc))
        except HarnessError as exc:
            pytest.fail(f"leak-harness: {exc}", pytrace=False)
        self._session.record_result(self._item, result)
        return result

    def assert_clean(self, code: str, **kwargs: Any) -> Result:
        """Fail the test unless the verdict is clean (skip it when CPython refuses the module)."""
        result = self(code, **kwargs)
        if result.verdict == "unsupported":
            pytest.skip(f"leak-harness: {result.message}")
        if result.verdict != "clean":
            pytest.fail(failure_text(result), pytrace=False)
        return result


@pytest.fixture
def leak_check(request: pytest.FixtureRequest) -> LeakCheck:
    """Run code through the leak-harness engine: `leak_check("import m; m.f()", module="m")`."""
    return LeakCheck(request.config.stash[STATE], request.node)


# -- the marker ---------------------------------------------------------------
def _limits_for(item: pytest.Item, options: LeakOptions) -> RepeatLimits | None:
    marker = item.get_closest_marker("no_leaks")
    if marker is None and not options.no_leaks:
        return None
    kwargs = dict(marker.kwargs) if marker else {}
    unknown = sorted(set(kwargs) - set(MARKER_ARGS))
    if marker and (marker.args or unknown):
        pytest.fail(f"@pytest.mark.no_leaks takes keyword arguments {', '.join(MARKER_ARGS)}; "
                    f"got {list(marker.args) + unknown}", pytrace=False)
    kwargs.setdefault("warmup", options.repeats[0])
    kwargs.setdefault("repeats", options.repeats[1])
    try:
        return RepeatLimits(**kwargs)
    except (TypeError, ValueError) as exc:
        pytest.fail(f"@pytest.mark.no_leaks: {exc}", pytrace=False)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    session = pyfuncitem.config.stash[STATE]
    limits = _limits_for(pyfuncitem, session.options)
    if limits is None or inspect.iscoroutinefunction(pyfuncitem.obj):
        return None   # pytest (or an async plugin) runs it as usual
    function = pyfuncitem.obj
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    outcome = repeat_check(lambda: function(**arguments), limits)
    per = outcome.per_repeat
    session.record(pyfuncitem, {
        "case": pyfuncitem.name, "module": "", "mode": f"in-process {limits.warmup}:{limits.repeats}",
        "python": version_label("%d.%d.%d" % sys.version_info[:3], bool(outcome.debug_build)),
        "cycles": limits.repeats, "verdict": outcome.verdict, "blocks": per("blocks"), "bytes": None,
        "refs": per("refs")})
    if outcome.leaked:
        pytest.fail(f"no_leaks: {', '.join(outcome.leaked)} grew in every one of "
                    f"{limits.repeats} repetitions after {limits.warmup} warm-up\n"
                    f"{outcome.message()}", pytrace=False)
    return True


# case files (cases/*.toml, leak_*.toml) -> one item per (python, mode)
from .plugin.casefiles import pytest_collect_file  # noqa: E402,F401  (a hook: found by name)
