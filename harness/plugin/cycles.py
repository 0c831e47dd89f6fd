"""pytest front end for `--leak-cycles`: a project's own tests inside interpreter cycles.

Each selected test (every test with `--leak-cycles`, or one marked
`@pytest.mark.leak_cycles(mode=..., cycles=..., control=...)`) becomes one
item per (python, mode): `test_x[leak-finalize]`.  Its setup runs the case
"import the test's module from its file; call the test" against the control
"import the test's module" in the host (harness/cases/pytest_tests.py), so
only the body is judged; the test is not also run in-process.

Outcomes, as pytest users read them:
- leak -> FAILED, status `L` / `LEAKED`, with the numbers and sites
- crash / timeout / error -> ERROR (measured in setup), with the stacks
- unsupported (CPython or the extension refuses the mode, a fixture the
  target cannot build) -> SKIPPED with why
- the test body's own pytest.skip() / importorskip() -> SKIPPED, its
  pytest.xfail() -> XFAIL (the target ran it; nothing to measure)
- `@pytest.mark.known_leak(reason=..., link=...)` -> xfail on a leak, and
  XPASS(strict), a failure, once it stopped leaking.

This module translates only; the case is built in cases/pytest_tests.py and
measured by the Engine the session owns (one control per module per worker).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import replace
from typing import Any

import pytest

from ..cases.model import check_control_code
from ..cases.pytest_tests import TestCall, case_for_test, unsupported_reason
from ..errors import HarnessError
from ..host.modes import MODES, mode_problem
from ..host.target import target_python
from ..report.pytest_text import failure_text
from .ids import python_prefix
from ..result import Result

#: the parameter that carries (python, mode) of one leak-cycles item
PARAM = "_leak_cycles_target"
MARKER_ARGS = ("mode", "cycles", "control")
RESULT = pytest.StashKey[Result]()
#: what --leak-cycles runs when no --leak-mode says otherwise
DEFAULT_MODES = ("finalize", "subinterpreter")


class LeakFound(pytest.fail.Exception):  # type: ignore[misc,name-defined]
    """A leak-cycles leak: a failure, or the exception a known_leak expects."""


def _marker_kwargs(definition: Any) -> dict[str, Any] | None:
    marker = definition.get_closest_marker("leak_cycles")
    if marker is None:
        return None
    unknown = sorted(set(marker.kwargs) - set(MARKER_ARGS))
    if marker.args or unknown:
        raise pytest.UsageError(f"{definition.nodeid}: @pytest.mark.leak_cycles takes keyword arguments "
                                f"{', '.join(MARKER_ARGS)}; got {list(marker.args) + unknown}")
    return dict(marker.kwargs)


class CyclesPlugin:
    """Registered by pytest_plugin.pytest_configure next to the LeakSession."""

    def __init__(self, session: Any) -> None:
        self.session = session

    # -- collection: one item per (python, mode) ----------------------------
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        marked = _marker_kwargs(metafunc.definition)
        if marked is None and not self.session.options.cycles_switch:
            return
        options = self.session.options
        modes = (marked or {}).get("mode") or options.modes
        modes = (modes,) if isinstance(modes, str) else tuple(modes or ())
        for mode in modes:
            if mode not in MODES:
                raise pytest.UsageError(f"{metafunc.definition.nodeid}: leak_cycles mode {mode!r} "
                                        f"is not one of {', '.join(MODES)}")
        targets = []
        for python in options.pythons:
            try:
                label = python_prefix(options.pythons, python)
            except HarnessError as exc:
                raise pytest.UsageError(f"--leak-python: {exc}") from None
            for mode in modes or self._default_modes(python):
                targets.append(((python, mode), f"leak-{label}{mode}"))
        metafunc.fixturenames.append(PARAM)
        metafunc.parametrize(PARAM, [t for t, _ in targets], ids=[i for _, i in targets],
                             indirect=True)

    @staticmethod
    def _default_modes(python: str | None) -> tuple[str, ...]:
        """finalize, and subinterpreter where the target has it (3.12+)."""
        try:
            target = target_python(python)
        except HarnessError:
            return DEFAULT_MODES   # the setup says why, per item
        return tuple(m for m in DEFAULT_MODES if m == "finalize" or not mode_problem(m, target))

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            known = item.get_closest_marker("known_leak")
            if known is None or PARAM not in getattr(getattr(item, "callspec", None), "params", {}):
                continue
            reason = known.kwargs.get("reason") or (known.args[0] if known.args else "known leak")
            link = known.kwargs.get("link")
            item.add_marker(pytest.mark.xfail(
                reason=f"known leak: {reason}" + (f" ({link})" if link else ""),
                strict=True, raises=LeakFound))

    # -- running: measure in setup, judge in call ---------------------------
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        target = _target_of(item)
        if target is None:
            return
        python, mode = target
        session = self.session
        try:
            problem = mode_problem(mode, target_python(python))
        except HarnessError as exc:
            pytest.fail(f"leak-harness: {exc}", pytrace=False)
        call, problem = _test_call(item), problem or _refusal(item)
        if problem:
            pytest.skip(problem)
        marked = _marker_kwargs(item) or {}
        control = marked.get("control")
        try:
            if control is not None:
                check_control_code(control, f"{item.nodeid}: leak_cycles(control=...)")
            case = case_for_test(call, module=_module_under_test(item), control=control)
            settings = session.options.settings(python, mode, cycles=marked.get("cycles"))
            result = session.engine.run(case, settings)
        except HarnessError as exc:
            pytest.fail(f"leak-harness: {exc}", pytrace=False)
        outcome = pytest_outcome(result)
        if outcome is not None:
            kind, reason = outcome
            cycle = (result.last_cycle or 0) + 1
            why = (f"leak-cycles: the test {'skipped itself' if kind == 'skip' else 'called pytest.xfail'}"
                   f" in cycle {cycle}: {reason}")
            session.record_result(item, replace(result, verdict="unsupported", message=why))
            (pytest.skip if kind == "skip" else pytest.xfail)(why)
        session.record_result(item, result)
        if result.verdict == "unsupported":
            pytest.skip(f"leak-harness: {result.message or 'unsupported'}")
        if result.verdict in ("crash", "timeout", "error"):
            pytest.fail(failure_text(result), pytrace=False)
        item.stash[RESULT] = result

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        result = pyfuncitem.stash.get(RESULT, None)
        if result is None:
            return None
        if result.verdict == "leak":
            raise LeakFound(failure_text(result), pytrace=False)
        return True   # judged in the host; not run again in-process


#: a traceback's last line when it ends in pytest's own outcome exceptions
#: (pytest.skip and importorskip raise Skipped, which pytest places in
#: `builtins` for display; pytest.xfail raises _pytest.outcomes.XFailed)
_OUTCOME_LINE = re.compile(r"^(?:_pytest\.outcomes\.)?(Skipped|XFailed)(?::\s?(.*))?$")
_FRAME_FILE = re.compile(r'^\s*File "([^"]*)", line \d+')


def pytest_outcome(result: Result) -> tuple[str, str] | None:
    """("skip" | "xfail", reason) when the test body itself ended with
    pytest.skip(), importorskip() or pytest.xfail() inside the target: what
    pytest reports in-process as SKIPPED or XFAIL is that here too, not an
    `error`.  Read from the traceback: its last line names the exception and
    its innermost frame must be pytest's outcomes module, so a class of the
    project's that happens to be called Skipped stays an error."""
    if result.verdict != "error" or not (result.message or "").startswith("the case raised"):
        return None
    lines = [ln for ln in (result.message or "").splitlines() if ln.strip()]
    found = _OUTCOME_LINE.match(lines[-1].strip()) if lines else None
    frames = [m.group(1) for m in map(_FRAME_FILE.match, lines) if m]
    if found is None or not frames or not frames[-1].replace("\\", "/").endswith("_pytest/outcomes.py"):
        return None
    return ("skip" if found.group(1) == "Skipped" else "xfail"), (found.group(2) or "").strip()


def _target_of(item: pytest.Item) -> tuple[str | None, str] | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(PARAM) if callspec is not None else None


def _own_params(item: pytest.Item) -> dict[str, Any]:
    callspec = getattr(item, "callspec", None)
    return {k: v for k, v in (callspec.params if callspec else {}).items() if k != PARAM}


def _refusal(item: pytest.Item) -> str | None:
    """Why the target cannot run this test: a fixture it cannot build, a value it cannot receive."""
    info = getattr(item, "_fixtureinfo", None)
    params = _own_params(item)
    # initialnames: the test's arguments, usefixtures and autouse fixtures
    wanted = [n for n in (info.initialnames if info else ()) if n != PARAM and n != "request"]
    fixtures = [n for n in wanted if n not in params or _has_fixture_def(info, n)]
    return unsupported_reason(fixtures, params, inspect.iscoroutinefunction(getattr(item, "obj", None)))


def _has_fixture_def(info: Any, name: str) -> bool:
    """A parameter that a fixture consumes (indirect=True) is not a plain argument."""
    defs = info.name2fixturedefs.get(name) or ()
    return any(getattr(d.func, "__name__", "") != "get_direct_param_fixture_func" for d in defs)


def _test_call(item: pytest.Item) -> TestCall:
    function = getattr(item, "originalname", None) or item.name.split("[")[0]
    cls = getattr(item, "cls", None)
    module = item.module  # type: ignore[attr-defined]
    info = getattr(item, "_fixtureinfo", None)
    return TestCall(nodeid=item.nodeid, module=module.__name__, path=str(item.path),
                    function=function, cls=cls.__qualname__ if cls else None,
                    params={k: v for k, v in _own_params(item).items()
                            if info is None or k in info.argnames},
                    fixtures=tuple(n for n in (info.argnames if info else ()) if n == "tmp_path"))


def _module_under_test(item: pytest.Item) -> str | None:
    """For reports: the test module's name (the case's own code is the test)."""
    return getattr(getattr(item, "module", None), "__name__", None)


@pytest.fixture
def _leak_cycles_target(request: pytest.FixtureRequest) -> Any:
    """(python, mode) of a leak-cycles item; parametrized by CyclesPlugin."""
    return request.param


def leaked(report: Any) -> bool:
    """Whether a report's test was judged a leak (its recorded verdict)."""
    return any(name == "leak_verdict" and value == "leak"
               for name, value in getattr(report, "user_properties", ()) or ())
